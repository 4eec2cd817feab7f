"""CycleGAN (Zhu et al. 2017): unpaired image-to-image translation, sized for a CPU.

Two ResNet-style generators (``G_ab``: A -> B, ``G_ba``: B -> A) and two 70x70-style
PatchGAN discriminators (``D_a``, ``D_b``) that score overlapping patches. The generators
learn from the adversarial loss (LSGAN in the paper), a cycle-consistency L1 loss
(A -> B -> A should give A back) and an identity L1 loss (G_ab on a B image should leave it
alone), which keeps colours stable. Discriminators see fakes replayed from an image pool.

Changes from the paper for a CPU: narrower networks (``ngf`` 32, ``ndf`` 32), fewer residual
blocks (6 rather than 9), nearest-neighbour upsampling + convolution instead of transposed
convolutions (no checkerboard artifacts), and 64x64 training crops. The generators are fully
convolutional, so they translate any image whose height and width are multiples of 4.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from zoo.spec import ExportGraph, StepContext, Variant, VariantConfig


class CycleGANConfig(VariantConfig):
    image_size: int = Field(64, description="training crop; generators are fully convolutional")
    latent_dim: int = Field(0, description="no latent code: translation is deterministic")
    ngf: int = Field(32, description="generator width at full resolution (x2, x4 after the downsamplings)")
    n_blocks: int = Field(6, description="residual blocks at 1/4 resolution")
    ndf: int = Field(32, description="discriminator width of the first layer")
    d_layers: int = Field(3, description="stride-2 layers in the PatchGAN (3 = the 70x70 receptive field)")
    lambda_cycle: float = Field(10.0, description="weight of the cycle-consistency L1 loss")
    lambda_identity: float = Field(0.5, description="identity L1 weight, as a fraction of lambda_cycle (0 = off)")


def _norm(ch: int) -> nn.Module:
    return nn.InstanceNorm2d(ch, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), _norm(ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), _norm(ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 convolution (Odena et al. 2016: no checkerboard)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3), _norm(cout), nn.ReLU(True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResnetGenerator(nn.Module):
    """c7s1-ngf, d(2ngf), d(4ngf), n_blocks x R(4ngf), u(2ngf), u(ngf), c7s1-3 + tanh."""

    def __init__(self, channels: int, ngf: int, n_blocks: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), _norm(ngf), nn.ReLU(True)]
        ch = ngf
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch * 2, 3, 2, 1), _norm(ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [ResidualBlock(ch) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [Upsample(ch, ch // 2)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class PatchDiscriminator(nn.Module):
    """PatchGAN: C64-C128-C256 (stride 2), C512 (stride 1), 1-channel logit map."""

    def __init__(self, channels: int, ndf: int, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = ndf
        for i in range(1, n_layers):
            nxt = ndf * min(2**i, 8)
            layers += [nn.Conv2d(ch, nxt, 4, 2, 1), _norm(nxt), nn.LeakyReLU(0.2, True)]
            ch = nxt
        nxt = ndf * min(2**n_layers, 8)
        layers += [nn.Conv2d(ch, nxt, 4, 1, 1), _norm(nxt), nn.LeakyReLU(0.2, True), nn.Conv2d(nxt, 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # [B, 1, h, w] map of patch logits; the losses take means


def init_weights(m: nn.Module) -> None:
    """CycleGAN's initialisation: N(0, 0.02) convolutions, zero biases."""
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class CycleGAN(Variant):
    name = "cyclegan"
    task = "translate"
    Config = CycleGANConfig
    ema_modules = ("G_ab", "G_ba")
    optimizer_groups = {"G": ("G_ab", "G_ba"), "D": ("D_a", "D_b")}
    description = "CycleGAN: unpaired image-to-image translation (Zhu et al. 2017)"

    @property
    def latent_dim(self) -> int:
        return 0

    def build(self) -> dict[str, nn.Module]:
        c, ch = self.config, self.channels
        nets: dict[str, nn.Module] = {
            "G_ab": ResnetGenerator(ch, c.ngf, c.n_blocks),
            "G_ba": ResnetGenerator(ch, c.ngf, c.n_blocks),
            "D_a": PatchDiscriminator(ch, c.ndf, c.d_layers),
            "D_b": PatchDiscriminator(ch, c.ndf, c.d_layers),
        }
        for m in nets.values():
            m.apply(init_weights)
        return nets

    def train_step(self, ctx: StepContext) -> dict[str, float]:
        c, nets = self.config, ctx.nets
        G_ab, G_ba, D_a, D_b = nets["G_ab"], nets["G_ba"], nets["D_a"], nets["D_b"]
        batch = ctx.next_batch()
        real_a, real_b = batch["A"].to(ctx.device), batch["B"].to(ctx.device)

        # generators: fool both discriminators, come back round the cycle, leave the target domain alone
        for p in (*D_a.parameters(), *D_b.parameters()):
            p.requires_grad_(False)
        ctx.opts["G"].zero_grad(set_to_none=True)
        fake_b, fake_a = G_ab(real_a), G_ba(real_b)
        loss_adv = ctx.loss.generator(D_b(fake_b)) + ctx.loss.generator(D_a(fake_a))
        loss_cycle = F.l1_loss(G_ba(fake_b), real_a) + F.l1_loss(G_ab(fake_a), real_b)
        loss_g = loss_adv + c.lambda_cycle * loss_cycle
        loss_idt = real_a.new_zeros(())
        if c.lambda_identity > 0:
            loss_idt = F.l1_loss(G_ab(real_b), real_b) + F.l1_loss(G_ba(real_a), real_a)
            loss_g = loss_g + c.lambda_cycle * c.lambda_identity * loss_idt
        ctx.scale(loss_g).backward()
        ctx.opts["G"].step()
        for p in (*D_a.parameters(), *D_b.parameters()):
            p.requires_grad_(True)

        # discriminators: real vs fakes replayed from each one's pool of past fakes
        ctx.opts["D"].zero_grad(set_to_none=True)
        loss_d_b = ctx.loss.discriminator(D_b, real_b, ctx.replay("D_b", fake_b.detach()))
        loss_d_a = ctx.loss.discriminator(D_a, real_a, ctx.replay("D_a", fake_a.detach()))
        loss_d = loss_d_a + loss_d_b
        ctx.scale(loss_d).backward()
        ctx.opts["D"].step()
        return {
            "loss_g": float(loss_g.detach()),
            "loss_gan": float(loss_adv.detach()),
            "loss_cycle": float(loss_cycle.detach()),
            "loss_idt": float(loss_idt.detach()),
            "loss_d": float(loss_d.detach()),
        }

    # -- translation, previews, export -------------------------------------------------------
    @torch.no_grad()
    def translate(self, nets: dict[str, nn.Module], images: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        """Translate images in [-1, 1] (H, W multiples of 4): ``a2b`` with G_ab, ``b2a`` with G_ba."""
        if direction not in ("a2b", "b2a"):
            raise ValueError(f"direction must be 'a2b' or 'b2a', got {direction!r}")
        return nets["G_ab" if direction == "a2b" else "G_ba"](images)

    def sample(self, nets: dict[str, nn.Module], n: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError("CycleGAN translates images and has no prior to sample; use translate()")

    def preview_inputs(self, n: int, generator: torch.Generator, batches: Iterator[dict] | None = None) -> dict:
        """4 fixed A and 4 fixed B images (noise of the crop size when no data is given)."""
        want = 4
        if batches is None:
            size = (want, self.channels, self.image_size, self.image_size)
            return {"A": torch.rand(size, generator=generator) * 2 - 1,
                    "B": torch.rand(size, generator=generator) * 2 - 1}
        a: list[torch.Tensor] = []
        b: list[torch.Tensor] = []
        while sum(len(t) for t in a) < want or sum(len(t) for t in b) < want:
            batch = next(batches)
            a.append(batch["A"])
            b.append(batch["B"])
        return {"A": torch.cat(a)[:want], "B": torch.cat(b)[:want]}

    def preview(self, nets: dict[str, nn.Module], fixed: dict[str, torch.Tensor]) -> torch.Tensor:
        """Three rows of 8: [A, B] inputs, [G_ab(A), G_ba(B)] translations, reconstructions."""
        a, b = fixed["A"], fixed["B"]
        fake_b, fake_a = nets["G_ab"](a), nets["G_ba"](b)
        rec_a, rec_b = nets["G_ba"](fake_b), nets["G_ab"](fake_a)
        return torch.cat([a, b, fake_b, fake_a, rec_a, rec_b])

    def export_graphs(self, nets: dict[str, nn.Module]) -> list[ExportGraph]:
        size = self.image_size
        axes = {0: "batch", 2: "height", 3: "width"}
        return [
            ExportGraph(
                role=role,
                module=nets[key],
                inputs={"image": torch.randn(1, self.channels, size, size)},
                output_names=["translated"],
                dynamic_axes={"image": dict(axes), "translated": dict(axes)},
            )
            for role, key in (("a2b", "G_ab"), ("b2a", "G_ba"))
        ]

    def metadata(self) -> dict[str, str]:
        return {"domains": ",".join(self.data.domains) or "A,B"}
