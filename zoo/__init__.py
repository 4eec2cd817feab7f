"""ganzoo's variants and their registry. Look names up with ``zoo.list_variants()``.

Only the registry is imported eagerly: ``zoo.spec`` needs torch, and ``python -m zoo list``
must work in the serving-only install (it reports the variants that need torch).
"""

from __future__ import annotations

from typing import Any

from zoo.registry import broken, get_variant, list_variants

_SPEC = ("DataInfo", "ExportGraph", "StepContext", "Variant", "VariantConfig")

__all__ = [*_SPEC, "broken", "get_variant", "list_variants"]


def __getattr__(name: str) -> Any:
    """``zoo.Variant`` and friends, imported from zoo.spec (torch) on first use."""
    if name in _SPEC:
        from zoo import spec

        return getattr(spec, name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
