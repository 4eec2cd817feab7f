"""Finding ganzoo models in the BentoML model store and loading the latest of each name.

The store is BentoML's (``$BENTOML_HOME/models``, or the Bento's own models once built);
a model is ours when it carries the label ``ganzoo=true``. One unreadable entry must not
hide the others, so entries are read one version at a time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import bentoml
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml._internal.models.model import ModelStore
from bentoml._internal.tag import Tag

from serving.config import Settings
from serving.runtime import GanModel, load_model

log = logging.getLogger("bentoml.ganzoo")
LABEL = "ganzoo"


class _Stored(Protocol):  # what select_latest needs of a bentoml.Model (fakes in tests)
    @property
    def tag(self) -> Any: ...
    @property
    def info(self) -> Any: ...
    @property
    def creation_time(self) -> Any: ...


def model_store(home: str | Path | None = None) -> ModelStore:
    """The store under ``home`` (a BENTOML_HOME), or the one BentoML is configured with."""
    if home is None:
        return BentoMLContainer.model_store.get()
    base = Path(home) / "models"
    base.mkdir(parents=True, exist_ok=True)
    return ModelStore(base)


def list_models(store: ModelStore, name: str | None = None) -> list[bentoml.Model]:
    """Every readable model version in ``store`` (of ``name`` only, when given).

    Unreadable entries are logged and skipped.
    """
    base = Path(store._path)  # BentoML has no public per-version listing that survives one bad entry
    if not base.is_dir():
        return []
    found: list[bentoml.Model] = []
    for name_dir in sorted(p for p in base.iterdir() if p.is_dir() and (name is None or p.name == name)):
        for ver_dir in sorted(p for p in name_dir.iterdir() if p.is_dir()):
            try:
                found.append(store.get(Tag(name_dir.name, ver_dir.name)))
            except Exception as e:  # corrupt model.yaml, partial copy, ...
                log.warning("skipping unreadable store entry %s:%s: %s", name_dir.name, ver_dir.name, e)
    return found


def is_ganzoo(model: _Stored) -> bool:
    return str(model.info.labels.get(LABEL, "")).lower() == "true"


def select_latest(models: Iterable[_Stored], only: Iterable[str] | None = None) -> dict[str, _Stored]:
    """Newest ganzoo-labelled version per name, restricted to ``only`` when given."""
    wanted = set(only) if only is not None else None
    latest: dict[str, _Stored] = {}
    for m in models:
        name = m.tag.name
        if not is_ganzoo(m) or (wanted is not None and name not in wanted):
            continue
        if name not in latest or m.creation_time > latest[name].creation_time:
            latest[name] = m
    return dict(sorted(latest.items()))


def read_card(model: bentoml.Model) -> dict[str, Any]:
    """card.json as stored next to the graphs (full fidelity), else the model's metadata."""
    path = Path(model.path) / "card.json"
    if path.is_file():
        return json.loads(path.read_text())
    return dict(model.info.metadata)


def load_served(
    providers: list[str],
    only: Iterable[str] | None = None,
    threads: int = 0,
    store: ModelStore | None = None,
    chunk: int = 64,
    precision: str = "fp32",
    settings: Settings | None = None,
) -> tuple[dict[str, GanModel], dict[str, str]]:
    """Load the latest version of every ganzoo model: (served by name, failed name -> reason).

    Each model's cost bounds (``max_work_pixels``, ``max_output_pixels``) come from
    ``settings``, read from the environment when not given.
    """
    settings = settings or Settings.from_env()
    store = store or model_store()
    chosen = select_latest(list_models(store), only)
    if only is not None:
        for name in sorted(set(only) - chosen.keys()):
            log.warning("GANZOO_MODELS names %r but the store has no ganzoo model of that name", name)
    served: dict[str, GanModel] = {}
    failed: dict[str, str] = {}
    for name, stored in chosen.items():
        try:
            card = read_card(stored)  # type: ignore[arg-type]
            model = load_model(name, stored.tag.version, Path(stored.path), card, providers, threads,  # type: ignore[attr-defined]
                               precision, spin=settings.ort_spin)
        except Exception as e:  # a broken model must never stop the others from being served
            failed[name] = str(e)
            log.error("model %s:%s failed to load and is not served: %s", name, stored.tag.version, e)
            continue
        model.chunk = chunk
        model.max_work_pixels = settings.max_work_pixels
        model.max_output_pixels = settings.max_output_pixels
        model.translate_size = settings.translate_size
        served[name] = model
        log.info(
            "model %s:%s serves %s on %s in %s (roles: %s)",
            name,
            stored.tag.version,
            ", ".join(model.capabilities),
            model.provider,
            model.info()["precision"],
            ", ".join(sorted(model.graphs)),
        )
    return served, failed
