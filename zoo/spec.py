"""What a variant is: the contract between a plugin, the shared training loop and export.

A variant (mimicry-style) brings its networks and owns its ``train_step``; the loop in
``training/`` brings data, optimisers, the adversarial loss, EMA, checkpoints and logging.
Serving never imports this module: it only sees the ONNX graphs a variant declares in
``export_graphs`` and the metadata written next to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

TASKS = ("generate", "translate", "reconstruct")
LossOut = Union[torch.Tensor, tuple[torch.Tensor, dict[str, float]]]  # noqa: UP007 (a runtime alias)


def split_loss(out: LossOut) -> tuple[torch.Tensor, dict[str, float]]:
    """A loss hook's result as (loss, extra scalars to log)."""
    if isinstance(out, tuple):
        loss, extra = out
        return loss, {str(k): float(v) for k, v in extra.items()}
    return out, {}


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
    classes: tuple[str, ...] = ()  # the dataset's class names, in label order (empty when unlabelled)


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
    # roles of export_graphs that serving does not use (shipped in the artifact, never loaded);
    # any other role outside docs/ARTIFACTS.md is refused at export
    unserved_roles: ClassVar[tuple[str, ...]] = ()

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
    def classes(self) -> list[str]:
        """Class names for the card and /models; the dataset's when the variant is conditional."""
        return [str(c) for c in self.data.classes] if self.num_classes else []

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
        """``ctx.d_steps`` steps of every optimiser group named ``D*``, each on a fresh batch, then
        one step of every other group. ``d_loss``/``g_loss`` may return ``(loss, {name: scalar})``
        to log more scalars."""
        d_groups = [g for g in ctx.opts if g.startswith("D")]
        g_groups = [g for g in ctx.opts if not g.startswith("D")]
        logs: dict[str, float] = {}
        batch: dict[str, torch.Tensor] = {}
        for _ in range(ctx.d_steps):
            batch = ctx.next_batch()
            for g in d_groups:
                ctx.opts[g].zero_grad(set_to_none=True)
            d_loss, extra = split_loss(self.d_loss(ctx, batch))
            ctx.scale(d_loss).backward()
            for g in d_groups:
                ctx.opts[g].step()
            logs.update(extra)
        for g in g_groups:
            ctx.opts[g].zero_grad(set_to_none=True)
        g_loss, extra = split_loss(self.g_loss(ctx, batch))
        ctx.scale(g_loss).backward()
        for g in g_groups:
            ctx.opts[g].step()
        logs.update(extra)
        logs["loss_d"] = float(d_loss.detach())
        logs["loss_g"] = float(g_loss.detach())
        return logs

    def d_loss(self, ctx: StepContext, batch: dict[str, torch.Tensor]) -> LossOut:
        """The discriminator groups' loss on ``batch`` (optionally with extra scalars to log)."""
        raise NotImplementedError

    def g_loss(self, ctx: StepContext, batch: dict[str, torch.Tensor]) -> LossOut:
        """The other groups' loss; ``batch`` is the last one the discriminator saw."""
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
