"""ganzoo serving: the BentoML service, and ``load`` to use a model in-process (serving.api)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.api import Model


def load(model: Any, **kwargs: Any) -> Model:
    """``serving.api.load``: a model by store name or artifact directory, run in-process.

    Imported lazily so that ``import serving.images`` stays free of onnxruntime."""
    from serving.api import load as _load

    return _load(model, **kwargs)


__all__ = ["load"]
