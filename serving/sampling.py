"""Latents from seeds, per tile, and paths between latents.

ARTIFACTS.md: tile ``i`` of a request with seed ``s`` draws its standard normals from
``numpy.random.default_rng([s, i])``, in the order ``z``, ``z2``, ``noise``. A tile's
latents therefore depend only on (seed, index), never on the batch size or on how the
server chunks a batch. Draws are float64 ``standard_normal`` cast to float32 (drawing
with ``dtype=float32`` gives different numbers; exporters reproducing a grid must match).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

_Z = re.compile(r"^z\d*$")
_NOISE = re.compile(r"^noise\w*$")
MAX_SEED = 2**63 - 1


def is_random_input(name: str) -> bool:
    """Inputs serving fills with standard normals: ``z``, ``z2``, ..., ``noise*``."""
    return bool(_Z.match(name) or _NOISE.match(name))


def draw_order(names: Iterable[str]) -> list[str]:
    """Random inputs in the contract's draw order: ``z``, then other ``z*``, then ``noise*``."""
    names = list(names)
    zs = [n for n in names if _Z.match(n)]
    return [n for n in zs if n == "z"] + [n for n in zs if n != "z"] + [n for n in names if _NOISE.match(n)]


def draw_tile(seed: int, index: int, specs: Sequence[tuple[str, tuple[int, ...]]]) -> dict[str, np.ndarray]:
    """Standard normals for tile ``index``; ``specs`` is ``(name, per-tile shape)`` in draw order.

    Each input takes prod(shape) values, reshaped to the graph's declared per-tile shape, so a
    ``z`` of [B, D, 1, 1] (a textbook DCGAN) gets the same D numbers as a ``z`` of [B, D]."""
    rng = np.random.default_rng([seed, index])
    return {
        name: rng.standard_normal(int(np.prod(shape, dtype=np.int64))).astype(np.float32).reshape(shape)
        for name, shape in specs
    }


def draw_tiles(
    seed: int, indices: Iterable[int], specs: Sequence[tuple[str, tuple[int, ...]]]
) -> dict[str, np.ndarray]:
    """``draw_tile`` for each index, stacked on a leading batch axis."""
    tiles = [draw_tile(seed, i, specs) for i in indices]
    return {name: np.stack([t[name] for t in tiles]) for name, _ in specs}


def stack_draws(draws: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-tile draws (as from ``draw_tile``) -> one batch."""
    return {name: np.stack([d[name] for d in draws]) for name in draws[0]}


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation between two latents; the path stays on the Gaussian shell.

    Falls back to linear interpolation when the vectors are (anti)parallel.
    """
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    if na == 0 or nb == 0:
        return lerp(a, b, t)
    cos = float(np.clip(np.dot(a64 / na, b64 / nb), -1.0, 1.0))
    omega = np.arccos(cos)
    if np.sin(omega) < 1e-6:
        return lerp(a, b, t)
    out = (np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)
    return out.reshape(a.shape).astype(np.float32)


def lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Linear interpolation; the right path in StyleGAN's w space."""
    return ((1 - t) * a.astype(np.float64) + t * b.astype(np.float64)).astype(np.float32)


def row_labels(n: int, num_classes: int) -> np.ndarray:
    """Default labels for a grid: tile ``i`` gets class ``i % num_classes``."""
    return (np.arange(n) % max(num_classes, 1)).astype(np.int64)
