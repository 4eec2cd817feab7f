"""Differentiable augmentation for small data (DiffAugment, Zhao et al. 2020; ADA, Karras et al. 2020).

With few real images D memorises them and G's signal collapses. Augmenting *every* image D
sees, reals and fakes alike, with transformations that are differentiable w.r.t. the image,
stops D from memorising without teaching G to produce augmented images: G's gradient flows
back through the same augmentation. The loop wraps each discriminator network in
:class:`AugmentedDiscriminator`, so every variant gets it without touching its code.

Policies (DiffAugment's, images in [-1, 1]): ``color`` (brightness +U(-0.5, 0.5), saturation
x U(0, 2) (a no-op on one channel), contrast x U(0.5, 1.5)), ``translation`` (up to 1/8 of
the size, zero padding) and ``cutout`` (a square of 1/2 the size set to zero). Each is drawn
per sample and applied with probability ``p``; with ``ada_target > 0`` the
:class:`AugmentPipe` adapts ``p`` as StyleGAN2-ADA does, from E[sign(D(real))].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

POLICIES = ("color", "translation", "cutout")
ADA_INTERVAL = 4  # steps between p updates (StyleGAN2-ADA's ada_interval)


def parse_policies(spec: str | None) -> tuple[str, ...]:
    """``"color,translation"`` -> ``("color", "translation")``; an unknown name is an error."""
    names = tuple(s.strip() for s in (spec or "").split(",") if s.strip())
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation policy {', '.join(map(repr, unknown))}; known: {', '.join(POLICIES)}")
    return names


def _uniform(x: torch.Tensor) -> torch.Tensor:
    """One U(0, 1) draw per sample, broadcastable over [B, C, H, W]."""
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)


def rand_color(x: torch.Tensor) -> torch.Tensor:
    """Brightness, saturation (colour images only) and contrast, each drawn per sample."""
    x = x + (_uniform(x) - 0.5)
    if x.shape[1] > 1:  # saturation scales the deviation from the grey value: nothing to scale on grey
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (_uniform(x) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x) + 0.5) + mean


def _shift_index(size: int, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Source index per (sample, position) for a shift of ``shift`` pixels, and where it is in range."""
    src = torch.arange(size, device=shift.device)[None, :] - shift[:, None]
    valid = (src >= 0) & (src < size)
    return src.clamp(0, size - 1), valid


def rand_translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its height and width; vacated pixels are zero."""
    b, c, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    rows, valid_r = _shift_index(h, torch.randint(-sy, sy + 1, (b,), device=x.device))
    cols, valid_c = _shift_index(w, torch.randint(-sx, sx + 1, (b,), device=x.device))
    out = x.gather(2, rows[:, None, :, None].expand(b, c, h, w))
    out = out.gather(3, cols[:, None, None, :].expand(b, c, h, w))
    return out * (valid_r[:, None, :, None] & valid_c[:, None, None, :]).to(x.dtype)


def rand_cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ``ratio`` of the size per image, centred anywhere (clipped at the border)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # DiffAugment's offsets: the centre may sit on any pixel (one more for an even size)
    top = torch.randint(0, h + (1 - ch % 2), (b, 1), device=x.device) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (b, 1), device=x.device) - cw // 2
    r, c = torch.arange(h, device=x.device)[None, :], torch.arange(w, device=x.device)[None, :]
    in_r = (r >= top) & (r < top + ch)
    in_c = (c >= left) & (c < left + cw)
    keep = ~(in_r[:, :, None] & in_c[:, None, :])
    return x * keep[:, None].to(x.dtype)


FUNCS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "color": rand_color, "translation": rand_translation, "cutout": rand_cutout}


def diff_augment(x: torch.Tensor, policies: tuple[str, ...], p: float = 1.0) -> torch.Tensor:
    """Apply each policy in order, to each sample with probability ``p``; ``p == 0`` returns ``x`` itself."""
    if p <= 0 or not policies:
        return x
    for name in policies:
        y = FUNCS[name](x)
        if p < 1:
            y = torch.where(torch.rand(x.shape[0], 1, 1, 1, device=x.device) < p, y, x)
        x = y
    return x


def is_image(x: Any) -> bool:
    """The rule for what gets augmented: a floating-point [B, C, H, W] batch (a code [B, K] is not)."""
    return isinstance(x, torch.Tensor) and x.dim() == 4 and x.is_floating_point()


class AugmentPipe:
    """The run's policies and probability ``p``, shared by every wrapped discriminator, and the ADA controller.

    ADA: every ``ADA_INTERVAL`` steps, r_t = E[sign(D(x))] over the real batches D saw (averaged
    over processes), and p += sign(r_t - target) * images / (ada_kimg * 1000), clamped to [0, 1],
    where images = batch x processes x interval: p can go from 0 to 1 in ``ada_kimg`` thousand images."""

    def __init__(self, policies: tuple[str, ...], p: float = 1.0, ada_target: float = 0.0,
                 ada_kimg: float = 500.0, batch_images: int = 64) -> None:
        self.policies, self.p = policies, float(p)
        self.ada_target, self.ada_kimg, self.batch_images = float(ada_target), float(ada_kimg), int(batch_images)
        self.rt: float | None = None  # the last r_t measured (None before the first update)
        self.sign_sum, self.count, self.steps = 0.0, 0, 0  # over the current interval
        self._reals: list[torch.Tensor] = []
        self._pending: list[torch.Tensor] = []  # sign sums not yet read off the device

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.policies, self.p)

    # -- which inputs are reals: the very tensors the loop's next_batch() returned this step --
    def watch(self, next_batch: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        """``next_batch`` that also remembers its image tensors, so D outputs on them count for ADA."""
        def wrapped() -> dict[str, Any]:
            batch = next_batch()
            self._reals += [v for v in batch.values() if is_image(v)]
            return batch
        return wrapped

    def is_real(self, x: torch.Tensor) -> bool:
        return any(x is r for r in self._reals)

    def record(self, logits: torch.Tensor) -> None:
        """D's output on a real batch: its signs accumulate into r_t (kept on the device until read)."""
        if self.ada_target > 0:
            self._pending.append(logits.detach().float().sign().sum())
            self.count += logits.numel()

    def end_step(self) -> None:
        """After each train_step: forget this step's reals; every ``ADA_INTERVAL`` steps move p."""
        self._reals.clear()
        if self.ada_target <= 0:
            return
        if self._pending:
            self.sign_sum += float(torch.stack(self._pending).sum())
            self._pending.clear()
        self.steps += 1
        if self.steps < ADA_INTERVAL:
            return
        stats = torch.tensor([self.sign_sum, float(self.count)], dtype=torch.float64)
        world = 1
        if dist.is_initialized() and dist.get_world_size() > 1:
            world = dist.get_world_size()
            if dist.get_backend() == "nccl":
                stats = stats.cuda()
            dist.all_reduce(stats)
        total, count = (float(v) for v in stats.cpu())
        if count > 0:
            self.rt = total / count
            images = self.batch_images * world * self.steps
            step = math.copysign(images / (self.ada_kimg * 1000), self.rt - self.ada_target)
            self.p = min(1.0, max(0.0, self.p + (step if self.rt != self.ada_target else 0.0)))
        self.sign_sum, self.count, self.steps = 0.0, 0, 0

    def scalars(self) -> dict[str, float]:
        """``aug_p`` always, ``ada_rt`` once measured: logged to metrics.csv and TensorBoard."""
        out = {"aug_p": self.p}
        if self.ada_target > 0 and self.rt is not None:
            out["ada_rt"] = self.rt
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p, "rt": self.rt, "sign_sum": self.sign_sum, "count": self.count, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the ADA state; a fixed ``p`` (ADA off) stays the one this run was configured with."""
        if self.ada_target > 0:
            self.p = float(state["p"])
            self.sign_sum, self.count, self.steps = float(state["sign_sum"]), int(state["count"]), int(state["steps"])
        self.rt = state.get("rt")


class AugmentedDiscriminator(nn.Module):
    """``D(augment(x), *args)``: what the variant's train_step calls instead of D.

    Only the first argument is augmented, and only when it is an image batch (:func:`is_image`);
    labels and other arguments pass through. The wrapped network's ``state_dict`` is returned
    unchanged (no prefix), and attributes it has (``D.features``) are reachable through the
    wrapper, though calling them bypasses the augmentation."""

    def __init__(self, module: nn.Module, pipe: AugmentPipe) -> None:
        super().__init__()
        self.module = module
        self.pipe = pipe

    def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        out = self.module(self.pipe(x) if is_image(x) else x, *args, **kwargs)
        if isinstance(x, torch.Tensor) and self.pipe.is_real(x):
            self.pipe.record(out)
        return out

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return self.module.load_state_dict(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":
                raise
            return getattr(self.module, name)


def discriminator_names(optimizer_groups: dict[str, tuple[str, ...]]) -> list[str]:
    """The networks of every optimiser group whose name starts with ``D`` (the loop's rule for ``--lr-d``)."""
    return sorted({n for group, names in optimizer_groups.items() if group.startswith("D") for n in names})


def wrap(nets: dict[str, nn.Module], optimizer_groups: dict[str, tuple[str, ...]],
         pipe: AugmentPipe | None) -> dict[str, nn.Module]:
    """The nets a train_step sees: discriminators wrapped (a new dict; ``nets`` itself is untouched)."""
    if pipe is None:
        return nets
    names = set(discriminator_names(optimizer_groups))
    return {k: AugmentedDiscriminator(m, pipe) if k in names else m for k, m in nets.items()}


def from_config(cfg: Any) -> AugmentPipe | None:
    """The pipe a TrainConfig asks for (None when ``--augment`` is empty)."""
    policies = parse_policies(cfg.augment)
    if not policies:
        return None
    p = cfg.augment_p if cfg.augment_p is not None else (0.0 if cfg.ada_target > 0 else 1.0)
    return AugmentPipe(policies, p, cfg.ada_target, cfg.ada_kimg, cfg.batch_size)
