"""Adversarial losses, selectable for any variant by configuration.

``nonsaturating`` is the default (the notes' practical fix: G maximises log D(G(z)) instead
of minimising log(1 - D(G(z))), whose gradient vanishes when D wins early). ``wgan-gp``,
``hinge`` and ``lsgan`` are the usual alternatives; ``gp_weight`` and ``r1_weight`` add the
gradient penalties (GP on interpolates for WGAN-GP; R1 on reals, Mescheder et al. 2018).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

Critic = Callable[[torch.Tensor], torch.Tensor]
LOSSES = ("nonsaturating", "saturating", "wgan-gp", "hinge", "lsgan")
# the fp16 gradient scaler of the running step, if any (a context variable, not an AdversarialLoss
# attribute: plugins build their own AdversarialLoss, and their penalties must be scaled too)
_SCALER: contextvars.ContextVar[Any] = contextvars.ContextVar("ganzoo_grad_scaler", default=None)


@contextlib.contextmanager
def penalty_scaler(scaler: Any) -> Iterator[None]:
    """Penalties computed inside take their input gradients through ``scaler`` (fp16 training)."""
    token = _SCALER.set(scaler)
    try:
        yield
    finally:
        _SCALER.reset(token)


def _input_grad(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """d out.sum() / d x, kept differentiable (double backward).

    Under an fp16 gradient scaler this is done the way torch.amp asks: the gradient of the
    scaled output, so small fp16 gradients do not flush to zero, then divided by the scale."""
    scaler = _SCALER.get()
    total = out.sum()
    if scaler is None:
        (grad,) = torch.autograd.grad(total, x, create_graph=True)
        return grad
    (grad,) = torch.autograd.grad(scaler.scale(total), x, create_graph=True)
    return grad / scaler.get_scale()


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Gulrajani et al. 2017: (||grad D(x_hat)|| - 1)^2 on random interpolates."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    grad = _input_grad(critic(x_hat), x_hat)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def r1_penalty(critic: Critic, real: torch.Tensor) -> torch.Tensor:
    """0.5 * E ||grad D(x_real)||^2, which keeps D from overshooting on the data manifold."""
    x = real.detach().requires_grad_(True)
    grad = _input_grad(critic(x), x)
    return 0.5 * grad.flatten(1).pow(2).sum(1).mean()


class AdversarialLoss:
    def __init__(self, kind: str = "nonsaturating", gp_weight: float = 10.0, r1_weight: float = 0.0,
                 top_k: float = 1.0) -> None:
        if kind not in LOSSES:
            raise ValueError(f"unknown loss {kind!r}; known: {', '.join(LOSSES)}")
        if not 0 < top_k <= 1:
            raise ValueError(f"top_k is a fraction of the batch in (0, 1], got {top_k}")
        self.kind = kind
        self.gp_weight = gp_weight if kind == "wgan-gp" else 0.0
        self.r1_weight = r1_weight
        self.top_k = top_k  # the loop may lower it step by step (--top-k-ramp)

    def d_from_logits(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """The discriminator's loss from its outputs alone (no penalties)."""
        r, f = real_logits, fake_logits
        if self.kind in ("nonsaturating", "saturating"):
            return F.softplus(-r).mean() + F.softplus(f).mean()
        if self.kind == "wgan-gp":
            return f.mean() - r.mean()
        if self.kind == "hinge":
            return F.relu(1 - r).mean() + F.relu(1 + f).mean()
        return 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean()

    def discriminator(self, critic: Critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        loss = self.d_from_logits(critic(real), critic(fake.detach()))
        if self.gp_weight:
            loss = loss + self.gp_weight * gradient_penalty(critic, real, fake)
        if self.r1_weight:
            loss = loss + self.r1_weight * r1_penalty(critic, real)
        return loss

    def keep_top(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Top-k training (Sinha et al. 2020): only the fakes D finds most real update G.

        A sample's score is the mean of its logits (one per image, or a PatchGAN's map), so a
        batch of n keeps ``ceil(top_k * n)`` whole samples; the gradient of the others, which
        pulls G towards regions D already rejects, is dropped."""
        n = fake_logits.shape[0]
        k = max(1, math.ceil(self.top_k * n))
        if k >= n:
            return fake_logits
        scores = fake_logits.detach().reshape(n, -1).float().mean(1)
        return fake_logits[scores.topk(k).indices]

    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        f = self.keep_top(fake_logits)
        if self.kind == "nonsaturating":
            return F.softplus(-f).mean()
        if self.kind == "saturating":
            return -F.softplus(f).mean()
        if self.kind == "lsgan":
            return 0.5 * ((f - 1) ** 2).mean()
        return -f.mean()
