"""ganzoo's variants and their registry. Look names up with ``zoo.list_variants()``."""

from zoo.registry import broken, get_variant, list_variants
from zoo.spec import DataInfo, ExportGraph, StepContext, Variant, VariantConfig

__all__ = [
    "DataInfo",
    "ExportGraph",
    "StepContext",
    "Variant",
    "VariantConfig",
    "broken",
    "get_variant",
    "list_variants",
]
