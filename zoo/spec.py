"""What a variant is: the contract between a plugin, the shared training loop and export.

A variant (mimicry-style) brings its networks and owns its ``train_step``; the loop in
``training/`` brings data, optimisers, the adversarial loss, EMA, checkpoints and logging.
Serving never imports this module: it only sees the ONNX graphs a variant declares in
``export_graphs`` and the metadata written next to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

TASKS = ("generate", "translate", "reconstruct")


class VariantConfig(BaseModel):
    """Hyperparameters of a variant; subclass per variant. Unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")

    image_size: int = 32
    latent_dim: int = 100


@dataclass
class DataInfo:
    """What the loop learned about the dataset; the variant sizes its networks from it."""

    channels: int
    num_classes: int
    name: str = ""
    domains: tuple[str, ...] = ()


@dataclass
class ExportGraph:
    """One ONNX graph: a module, example inputs (name -> tensor) and its dynamic axes.

    ``role`` tells serving what the graph does: ``generator`` (inputs ``z`` and optionally
    ``label``/``psi``/...; output ``image`` in [-1, 1]), ``encoder`` (``image`` -> ``code``),
    ``decoder``, or a translation direction such as ``a2b``.
    """

    role: str
    module: nn.Module
    inputs: dict[str, torch.Tensor]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class StepContext:
    """Everything the loop hands a variant's ``train_step``."""

    nets: dict[str, nn.Module]
    opts: dict[str, torch.optim.Optimizer]
    loss: Any  # training.losses.AdversarialLoss: .discriminator(critic, real, fake) / .generator(fake_logits)
    step: int
    d_steps: int
    next_batch: Callable[[], dict[str, torch.Tensor]]
    replay: Callable[[str, torch.Tensor], torch.Tensor]  # image pool of past fakes, per discriminator
    device: torch.device = torch.device("cpu")  # where nets live; the loop moves batches there
    # fp16: multiplies a loss by the gradient scaler's factor before ``backward()``; identity otherwise.
    # A variant with its own ``train_step`` calls ``ctx.scale(loss).backward()`` to train in fp16.
    scale: Callable[[torch.Tensor], torch.Tensor] = field(default=lambda loss: loss)


class Variant:
    """Base class for every GAN variant. Subclass, set the class attributes, fill the hooks.

    The default ``train_step`` is the textbook algorithm: ``k`` discriminator steps, each on
    a fresh real batch, then one generator step. Variants whose step is not of this shape
    (AAE, CycleGAN) override ``train_step`` entirely.
    """

    name: ClassVar[str]
    task: ClassVar[str] = "generate"
    Config: ClassVar[type[VariantConfig]] = VariantConfig
    ema_modules: ClassVar[tuple[str, ...]] = ("G",)
    # optimiser groups: optimiser name -> modules it updates
    optimizer_groups: ClassVar[dict[str, tuple[str, ...]]] = {"G": ("G",), "D": ("D",)}
    description: ClassVar[str] = ""

    def __init__(self, config: VariantConfig, data: DataInfo) -> None:
        self.config = config
        self.data = data

    # -- what the rest of the system reads -------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return int(getattr(self.config, "latent_dim", 0))

    @property
    def num_classes(self) -> int:
        return 0

    @property
    def channels(self) -> int:
        return self.data.channels

    @property
    def image_size(self) -> int:
        return int(self.config.image_size)

    # -- hooks -----------------------------------------------------------------------------
    def build(self) -> dict[str, nn.Module]:
        """Return the networks by name, e.g. ``{"G": ..., "D": ...}``."""
        raise NotImplementedError

    def train_step(self, ctx: StepContext) -> dict[str, float]:
        logs: dict[str, float] = {}
        for _ in range(ctx.d_steps):
            batch = ctx.next_batch()
            ctx.opts["D"].zero_grad(set_to_none=True)
            d_loss = self.d_loss(ctx, batch)
            ctx.scale(d_loss).backward()
            ctx.opts["D"].step()
        ctx.opts["G"].zero_grad(set_to_none=True)
        g_loss = self.g_loss(ctx, batch)
        ctx.scale(g_loss).backward()
        ctx.opts["G"].step()
        logs["loss_d"] = float(d_loss.detach())
        logs["loss_g"] = float(g_loss.detach())
        return logs

    def d_loss(self, ctx: StepContext, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, ctx: StepContext, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, nets: dict[str, nn.Module], n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` images in [-1, 1] for grids and evaluation, drawn with ``generator``."""
        raise NotImplementedError

    def preview(self, nets: dict[str, nn.Module], fixed: dict[str, torch.Tensor]) -> torch.Tensor:
        """Images for the sample grid from fixed inputs made once by ``preview_inputs``."""
        raise NotImplementedError

    def preview_inputs(self, n: int, generator: torch.Generator, batches: Iterator[dict] | None = None) -> dict:
        return {"z": torch.randn(n, self.latent_dim, generator=generator)}

    def export_graphs(self, nets: dict[str, nn.Module]) -> list[ExportGraph]:
        raise NotImplementedError

    def metadata(self) -> dict[str, str]:
        """Variant-specific ONNX/model-store metadata, merged into the common keys."""
        return {}
