"""Exponential moving average of generator weights: smoother samples than the raw G."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, modules: dict[str, nn.Module], decay: float) -> None:
        self.decay = decay
        self.copies = {k: copy.deepcopy(m).eval().requires_grad_(False) for k, m in modules.items()}

    @torch.no_grad()
    def update(self, modules: dict[str, nn.Module]) -> None:
        for k, m in modules.items():
            ema = self.copies[k]
            for pe, p in zip(ema.parameters(), m.parameters(), strict=True):
                pe.lerp_(p, 1.0 - self.decay)
            for be, b in zip(ema.buffers(), m.buffers(), strict=True):
                be.copy_(b)

    def state_dict(self) -> dict:
        return {k: m.state_dict() for k, m in self.copies.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, sd in state.items():
            self.copies[k].load_state_dict(sd)
