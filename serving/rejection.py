"""Discriminator rejection sampling: the acceptance rule and its per-tile draws (numpy only).

A model whose card has a ``rejection`` entry ships a ``critic`` graph (image -> logit, fitted by
``python -m training critic``: training/critic.py says why). Each candidate image with critic
logit d is accepted with probability ``min(1, exp((d - threshold) / temperature))``: DRS
(Azadi et al. 2019) with a temperature, since the critic's logit estimates log(p_data / p_g) only
up to its calibration. Candidates that look more like data than the median sample are always
kept; the rest are kept less the worse they look.

Deterministic per tile (ARTIFACTS.md): candidate 0 of tile ``i`` of seed ``s`` is the unfiltered
tile (``sampling.draw_tile(s, i)``), candidate ``j >= 1`` draws from
``default_rng([s, i, j])`` in the same order, and candidate ``j``'s uniform is
``default_rng([s, i, j, 1]).random()``. So a tile is a function of (seed, index) alone, however
it is batched, and the first accepted candidate is what is served. After ``max_candidates`` the
candidate with the highest logit seen is served, which bounds the cost of a tile. Rounds may grow
(``rounds``' look-ahead), which changes the cost, never the tile.

Neither BentoML nor ONNX Runtime has rejection sampling; it is a loop around two graph calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving import sampling

Specs = Sequence[tuple[str, tuple[int, ...]]]
FILTERS = ("critic", "none")
MAX_CANDIDATES = 16


class RuleError(ValueError):
    """A card's ``rejection`` entry that cannot be used."""


@dataclass(frozen=True)
class Rule:
    threshold: float
    temperature: float
    max_candidates: int = MAX_CANDIDATES

    def __post_init__(self) -> None:
        if not np.isfinite(self.threshold):
            raise RuleError(f"rejection threshold must be finite, got {self.threshold}")
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise RuleError(f"rejection temperature must be > 0, got {self.temperature}")
        if not 1 <= self.max_candidates <= 64:
            raise RuleError(f"rejection max_candidates must be in 1..64, got {self.max_candidates}")

    @classmethod
    def from_card(cls, entry: Any) -> Rule:
        if not isinstance(entry, dict):
            raise RuleError(f"card.json 'rejection' must be an object, got {type(entry).__name__}")
        try:
            return cls(float(entry["threshold"]), float(entry["temperature"]),
                       int(entry.get("max_candidates", MAX_CANDIDATES)))
        except (KeyError, TypeError, ValueError) as e:
            raise RuleError(f"card.json 'rejection' needs numeric threshold and temperature: {e}") from e

    def accept_prob(self, logits: np.ndarray) -> np.ndarray:
        z = (np.asarray(logits, dtype=np.float64) - self.threshold) / self.temperature
        return np.exp(np.minimum(z, 0.0))


def candidate(seed: int, index: int, j: int, specs: Specs) -> dict[str, np.ndarray]:
    """Latents of candidate ``j`` of tile ``index`` (candidate 0 is the unfiltered tile)."""
    if j == 0:
        return sampling.draw_tile(seed, index, specs)
    rng = np.random.default_rng([seed, index, j])
    return {name: rng.standard_normal(int(np.prod(shape, dtype=np.int64))).astype(np.float32).reshape(shape)
            for name, shape in specs}


def uniform(seed: int, index: int, j: int) -> float:
    return float(np.random.default_rng([seed, index, j, 1]).random())


@dataclass
class Filtered:
    images: np.ndarray  # float NCHW, one per tile
    candidates: int  # images generated (and scored) in all
    fallbacks: int  # tiles that took the best of max_candidates


def rounds(max_candidates: int, lookahead: bool = False) -> list[range]:
    """The candidates each round tries: 0 | 1 | 2-3 | 4-7 | 8-15 with ``lookahead`` (5 rounds
    for 16 candidates), else one candidate per round. Looking ahead changes no tile (the first
    accepted candidate in index order is served either way); it trades a little extra work on
    tiles that would have stopped early for fewer, larger graph calls. Off by default: on the
    shipped dcgan it cost more than it saved (PERFORMANCE.md, benchmarks/rejection_cost.py)."""
    out, j, k = [], 0, 1
    while j < max_candidates:
        take = min(k, max_candidates - j)
        out.append(range(j, j + take))
        j += take
        if lookahead and j >= 2:
            k *= 2
    return out


def rejection_sample(
    seeds: Sequence[int], indices: Sequence[int], specs: Specs, rule: Rule,
    sample: Callable[[dict[str, np.ndarray]], np.ndarray], score: Callable[[np.ndarray], np.ndarray],
    first: dict[str, np.ndarray] | None = None, lookahead: bool = False,
) -> Filtered:
    """One image per (seed, index) tile by the rule; ``sample`` maps stacked latents to images,
    ``score`` images to critic logits. Runs in ``rounds``: each generates that round's candidates
    of every tile still open, in one ``sample`` and one ``score`` call. ``first``: candidate 0's
    latents when the caller has drawn them already."""
    seeds, indices = [int(s) for s in seeds], [int(i) for i in indices]
    n = len(seeds)
    open_ = np.arange(n)
    out: np.ndarray | None = None
    best: np.ndarray | None = None
    best_score = np.full(n, -np.inf)
    total = 0
    for js in rounds(rule.max_candidates, lookahead):
        k = len(js)
        if js.start == 0 and first is not None:
            draws = first
        else:  # tile-major: row t * k + c is candidate js[c] of open tile t
            draws = sampling.stack_draws([candidate(seeds[t], indices[t], j, specs) for t in open_ for j in js])
        x = sample(draws)
        d = np.asarray(score(x), dtype=np.float64).reshape(len(open_), k)
        x = x.reshape(len(open_), k, *x.shape[1:])
        total += len(open_) * k
        if out is None:
            out = np.empty((n, *x.shape[2:]), dtype=x.dtype)
            best = np.empty_like(out)
        assert best is not None
        top = d.argmax(axis=1)
        rows = np.arange(len(open_))
        better = d[rows, top] > best_score[open_]
        best[open_[better]] = x[rows[better], top[better]]
        best_score[open_[better]] = d[rows[better], top[better]]
        u = np.array([[uniform(seeds[t], indices[t], j) for j in js] for t in open_]).reshape(len(open_), k)
        accepted = u < rule.accept_prob(d)
        take = accepted.any(axis=1)
        pick = accepted.argmax(axis=1)  # the first accepted candidate in index order
        out[open_[take]] = x[rows[take], pick[take]]
        open_ = open_[~take]
        if not len(open_):
            break
    assert out is not None and best is not None
    out[open_] = best[open_]
    return Filtered(out, total, len(open_))
