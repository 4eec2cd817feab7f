"""Import artifact directories (docs/ARTIFACTS.md) into the BentoML model store.

This is the only way a model reaches serving: the service reads the store, never a run
directory. Importing is idempotent (a model whose ``card.json["sha256"]`` is already
stored under the same name is skipped) and only ever adds versions, never deletes.

    python -m serving.import_models runs/dcgan-mnist/export/dcgan ...
    python -m serving.import_models            # every directory under serving/pretrained/
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import bentoml

from serving.runtime import graph_files
from serving.store import is_ganzoo, list_models, model_store

log = logging.getLogger("bentoml.ganzoo")
PRETRAINED = Path(__file__).resolve().parent / "pretrained"


def _metadata(value: Any) -> Any:
    """card.json -> BentoML metadata: BentoML rejects ``None``, so null entries are dropped."""
    if isinstance(value, dict):
        return {str(k): _metadata(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_metadata(v) for v in value if v is not None]
    return value


def _sha256(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.read_bytes())
    return h.hexdigest()


def read_artifact(path: str | Path) -> tuple[dict[str, Any], list[Path]]:
    """Validated (card, graph files) of an artifact directory; ``ValueError`` says what is wrong."""
    path = Path(path)
    card_path = path / "card.json"
    if not card_path.is_file():
        raise ValueError(f"{path}: no card.json (not an artifact directory)")
    try:
        card = json.loads(card_path.read_text())
    except ValueError as e:
        raise ValueError(f"{card_path}: not valid JSON: {e}") from None
    if not isinstance(card, dict):
        raise ValueError(f"{card_path}: must hold a JSON object")
    files = {*graph_files(path, card).values(), *graph_files(path, card, "fp16").values()}
    return card, sorted(files)


def _import(path: Path, home: str | Path | None) -> tuple[str, bool]:
    card, files = read_artifact(path)
    name = str(card.get("name") or path.name)
    sha = card.get("sha256")
    if not sha:
        sha = _sha256(files)
        log.warning("%s: card.json has no sha256; using the graphs' hash %s", path, sha)
    store = model_store(home)
    for stored in list_models(store, name):
        if is_ganzoo(stored) and stored.info.metadata.get("sha256") == sha:
            return str(stored.tag), False
    labels = {"ganzoo": "true", "task": str(card.get("task") or ""), "variant": str(card.get("variant") or name)}
    metadata = _metadata({**card, "sha256": sha})
    root = path.resolve()
    with bentoml.models.create(name, labels=labels, metadata=metadata, _model_store=store) as model:
        for src in [root / "card.json", root / "card.md", *files]:
            if src.is_file():
                dst = Path(model.path) / src.relative_to(root)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
    return str(model.tag), True


def import_artifact(path: str | Path, *, home: str | Path | None = None) -> str:
    """Import one artifact directory; returns the model tag (the existing one when skipped).

    ``home`` is a BENTOML_HOME to use instead of the configured one (tests, scripts).
    """
    return _import(Path(path), home)[0]


def default_dirs(pretrained: Path = PRETRAINED) -> list[Path]:
    if not pretrained.is_dir():
        return []
    return sorted(p for p in pretrained.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def main(argv: list[str] | None = None, pretrained: Path = PRETRAINED) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.import_models", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="*", type=Path, help=f"artifact directories (default: every one in {pretrained})")
    args = parser.parse_args(argv)
    dirs = args.dirs or default_dirs(pretrained)
    if not dirs:
        print(f"nothing to import: no artifact directory given and none under {pretrained}")
        return 0
    status = 0
    for d in dirs:
        try:
            tag, created = _import(d, None)
        except Exception as e:  # report every directory, then fail
            print(f"error: {d}: {e}", file=sys.stderr)
            status = 1
            continue
        print(f"{'imported' if created else 'already stored, skipped'}: {tag} <- {d}")
    return status


if __name__ == "__main__":
    sys.exit(main())
