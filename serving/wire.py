"""Arrays across the HTTP service -> inference service hop, when that hop is JSON.

Between two services of one ``bentoml serve`` BentoML sends pickles, and numpy arrays
travel as they are. To an inference service started on its own (``GANZOO_INFERENCE_URL``,
docs/DEPLOY.md) it sends JSON, rightly: a server must never unpickle what the network
sends. There an array travels as ``{"npy": <base64 of its .npy bytes>}``, exact in dtype
and shape, and the inference service answers in kind.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

KEY = "npy"


def pack(value: Any) -> Any:
    """Arrays anywhere in ``value`` (dicts, lists) -> JSON-safe ``{"npy": ...}``."""
    if isinstance(value, np.ndarray):
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return {KEY: base64.b64encode(buf.getvalue()).decode("ascii")}
    if isinstance(value, dict):
        return {k: pack(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [pack(v) for v in value]
    return value


def unpack(value: Any) -> Any:
    """The inverse of ``pack``; plain values and arrays pass through unchanged."""
    if isinstance(value, dict):
        if set(value) == {KEY} and isinstance(value[KEY], str):
            return np.load(io.BytesIO(base64.b64decode(value[KEY])), allow_pickle=False)
        return {k: unpack(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unpack(v) for v in value]
    return value


def packed(value: Any) -> bool:
    """Whether ``value`` holds a packed array (then the answer is packed too)."""
    if isinstance(value, dict):
        return (set(value) == {KEY} and isinstance(value[KEY], str)) or any(packed(v) for v in value.values())
    if isinstance(value, list):
        return any(packed(v) for v in value)
    return False
