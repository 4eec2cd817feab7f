"""Exponential moving average of generator weights: smoother samples than the raw G."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class EMA:
    """EMA copies of some modules.

    ``warmup``: the effective decay at update ``t`` is ``min(decay, (1 + t) / (10 + t))``, so
    the first hundreds of steps are not dominated by the random initial weights (with 0.999
    and no warm-up, a 1000-step run's EMA is still ~37% init). Buffers are copied from the
    live modules; BatchNorm statistics then belong to the live weights, not to the averaged
    ones, so call :func:`recalibrate_batchnorm` before the copies are used.
    """

    def __init__(self, modules: dict[str, nn.Module], decay: float, warmup: bool = True) -> None:
        self.decay = decay
        self.warmup = warmup
        self.copies = {k: copy.deepcopy(m).eval().requires_grad_(False) for k, m in modules.items()}

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, modules: dict[str, nn.Module], step: int) -> None:
        """Average in the live weights after optimiser step ``step`` (0-based)."""
        decay = self.decay_at(step)
        for k, m in modules.items():
            ema = self.copies[k]
            for pe, p in zip(ema.parameters(), m.parameters(), strict=True):
                pe.lerp_(p, 1.0 - decay)
            for be, b in zip(ema.buffers(), m.buffers(), strict=True):
                be.copy_(b)

    def state_dict(self) -> dict:
        return {k: m.state_dict() for k, m in self.copies.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, sd in state.items():
            self.copies[k].load_state_dict(sd)


def batchnorms(modules: dict[str, nn.Module]) -> list[_BatchNorm]:
    return [m for mod in modules.values() for m in mod.modules()
            if isinstance(m, _BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_batchnorm(modules: dict[str, nn.Module], forward: Callable[[], Any], batches: int = 16) -> bool:
    """Re-estimate the BatchNorm running statistics of ``modules`` for their own weights.

    An EMA generator run with the live generator's running mean/var sees activations those
    statistics were not measured on; its eval-mode samples then drift (washed-out or
    saturated strokes). ``forward()`` runs the modules on fresh inputs (e.g. a variant's
    ``sample``); each BatchNorm it reaches gets the plain average of ``batches`` batch
    statistics, and those it does not reach (an encoder, when sampling decodes) keep theirs.
    Returns whether it recalibrated: not when there is no BatchNorm, nor when ``forward``
    raises NotImplementedError (a variant without a prior to sample), in which case the
    statistics are left as they were.
    """
    bns = batchnorms(modules)
    if not bns:
        return False
    saved = [(m.momentum, m.training, {k: v.clone() for k, v in m.state_dict().items()}) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    done = False
    try:
        for _ in range(batches):
            forward()
        done = True
    except NotImplementedError:
        pass
    finally:
        for m, (momentum, training, state) in zip(bns, saved, strict=True):
            m.momentum = momentum
            m.train(training)
            if not done or int(m.num_batches_tracked) == 0:  # not reached by forward(): keep as found
                m.load_state_dict(state)
    return done
