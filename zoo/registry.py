"""The one place to look variants up (timm-style): entry points in ``ganzoo.variants``.

Built-ins are registered in ``pyproject.toml`` exactly like a third-party package would.
A plugin that fails to import (any exception, ``SystemExit`` included; only Ctrl-C passes)
or declares itself wrongly is recorded in ``broken()`` with its reason and skipped, so one bad
package never takes the registry down. Without torch (the serving-only install) every variant
that needs it is reported as such instead of crashing: ``zoo.spec`` is imported lazily.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, entry_points, packages_distributions, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoo.spec import Variant

GROUP = "ganzoo.variants"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    name: str
    cls: type[Variant]
    distribution: str


@dataclass(frozen=True)
class Broken:
    name: str
    distribution: str
    reason: str
    needs_torch: bool = False  # failed only because torch is not installed (serving-only install)


TORCH_HINT = "needs torch, which this install lacks (pip install 'ganzoo[train]')"


def _missing_torch(exc: BaseException) -> bool:
    return isinstance(exc, ImportError) and (exc.name or "").split(".")[0] in ("torch", "torchvision")


_cache: tuple[dict[str, Entry], list[Broken]] | None = None


def _check(cls: object, name: str) -> str | None:
    """Why ``cls`` is not a usable variant, or None."""
    from zoo.spec import TASKS, Variant, VariantConfig

    if not isinstance(cls, type) or not issubclass(cls, Variant):
        return f"{cls!r} is not a subclass of zoo.spec.Variant"
    if getattr(cls, "name", None) != name:
        return f"declares name {getattr(cls, 'name', None)!r} but is registered as {name!r}"
    if cls.task not in TASKS:
        return f"unknown task {cls.task!r} (known: {', '.join(TASKS)})"
    if not (isinstance(cls.Config, type) and issubclass(cls.Config, VariantConfig)):
        return "Config is not a subclass of zoo.spec.VariantConfig"
    for hook in ("build", "export_graphs"):
        if getattr(cls, hook) is getattr(Variant, hook):
            return f"does not implement {hook}()"
    return None


def _discover() -> tuple[dict[str, Entry], list[Broken]]:
    found: dict[str, Entry] = {}
    broken: list[Broken] = []
    for ep in entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        try:
            cls = ep.load()
            reason = _check(cls, ep.name)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 (SystemExit too): a plugin must not take us down
            if _missing_torch(exc):
                broken.append(Broken(ep.name, dist, TORCH_HINT, needs_torch=True))
            else:
                broken.append(Broken(ep.name, dist, f"import failed: {type(exc).__name__}: {exc}"))
            continue
        if reason is None and ep.name in found and found[ep.name].distribution != dist:
            reason = f"name already registered by {found[ep.name].distribution}"
        if reason is not None:
            broken.append(Broken(ep.name, dist, reason))
            continue
        found[ep.name] = Entry(ep.name, cls, dist)
    for b in broken:
        if b.needs_torch:
            continue  # expected in the serving-only install; `python -m zoo list` says so
        log.warning("skipping broken ganzoo plugin %r from %s: %s", b.name, b.distribution, b.reason)
    return dict(sorted(found.items())), broken


def _registry() -> tuple[dict[str, Entry], list[Broken]]:
    global _cache
    if _cache is None:
        _cache = _discover()
    return _cache


def refresh() -> None:
    """Forget what was discovered (after a pip install in the same process)."""
    global _cache
    _cache = None


def list_variants(task: str | None = None) -> list[str]:
    return [n for n, e in _registry()[0].items() if task is None or e.cls.task == task]


def entries() -> list[Entry]:
    return list(_registry()[0].values())


def broken() -> list[Broken]:
    return list(_registry()[1])


def get_variant(name: str) -> type[Variant]:
    found, bad = _registry()
    if name in found:
        return found[name].cls
    for b in bad:
        if b.name == name:
            raise KeyError(f"variant {name!r} from {b.distribution} is broken: {b.reason}")
    raise KeyError(f"unknown variant {name!r}; known: {', '.join(found) or 'none'}")


def plugin_info(cls: type) -> dict[str, str]:
    """Distribution name and version that provide ``cls`` (for the model card)."""
    dist = next((e.distribution for e in entries() if e.cls is cls), None)
    if dist is None:
        top = cls.__module__.split(".")[0]
        dist = (packages_distributions().get(top) or ["?"])[0]
    try:
        ver = version(dist)
    except (PackageNotFoundError, ValueError):
        ver = "?"
    return {"distribution": dist, "version": ver}
