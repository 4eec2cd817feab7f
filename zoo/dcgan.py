"""DCGAN (Radford et al. 2015), following the lecture notes' rules.

Strided (transposed) convolutions instead of pooling, BatchNorm everywhere except the
generator's output and the discriminator's input, ReLU in G with a tanh output, LeakyReLU
in D. Sized for a CPU: ``width`` 64 trains MNIST at 32x32 in minutes.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn

from zoo.spec import ExportGraph, StepContext, Variant, VariantConfig


class DCGANConfig(VariantConfig):
    image_size: int = Field(32, description="side of the square training images, in pixels")
    latent_dim: int = Field(100, description="size of the latent code z")
    width: int = Field(64, description="channels of the widest-resolution layer; doubles at each downsampling")


def _levels(image_size: int) -> int:
    n = int(math.log2(image_size)) - 2
    if 2 ** (n + 2) != image_size or n < 1:
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    return n


class Generator(nn.Module):
    def __init__(self, latent_dim: int, channels: int, image_size: int, width: int) -> None:
        super().__init__()
        n = _levels(image_size)
        ch = width * 2 ** (n - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, ch, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(True),
        ]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, channels: int, image_size: int, width: int, extra_in: int = 0) -> None:
        super().__init__()
        n = _levels(image_size)
        ch = width
        layers: list[nn.Module] = [nn.Conv2d(channels + extra_in, ch, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for _ in range(n - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, True)]
            ch *= 2
        self.features = nn.Sequential(*layers)
        self.out = nn.Conv2d(ch, 1, 4, 1, 0)
        self.feature_channels = ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x)).view(-1)


def init_weights(m: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) convs, N(1, 0.02) BatchNorm scales."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class DCGAN(Variant):
    name = "dcgan"
    task = "generate"
    Config = DCGANConfig
    description = "Deep convolutional GAN (Radford et al. 2015)"

    def build(self) -> dict[str, nn.Module]:
        c = self.config
        G = Generator(c.latent_dim, self.channels, c.image_size, c.width)
        D = Discriminator(self.channels, c.image_size, c.width)
        G.apply(init_weights)
        D.apply(init_weights)
        return {"G": G, "D": D}

    def d_loss(self, ctx: StepContext, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        real = batch["image"]
        z = torch.randn(real.shape[0], self.latent_dim, device=real.device)
        with torch.no_grad():
            fake = ctx.nets["G"](z)
        fake = ctx.replay("D", fake)
        return ctx.loss.discriminator(ctx.nets["D"], real, fake)

    def g_loss(self, ctx: StepContext, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        z = torch.randn(batch["image"].shape[0], self.latent_dim, device=batch["image"].device)
        return ctx.loss.generator(ctx.nets["D"](ctx.nets["G"](z)))

    def sample(self, nets: dict[str, nn.Module], n: int, generator: torch.Generator) -> torch.Tensor:
        G = nets["G"]  # noise drawn on the CPU by the caller's generator: the same samples on any device
        return G(torch.randn(n, self.latent_dim, generator=generator).to(next(G.parameters()).device))

    def preview(self, nets: dict[str, nn.Module], fixed: dict[str, torch.Tensor]) -> torch.Tensor:
        return nets["G"](fixed["z"])

    def export_graphs(self, nets: dict[str, nn.Module]) -> list[ExportGraph]:
        return [
            ExportGraph(
                role="generator",
                module=nets["G"],
                inputs={"z": torch.randn(2, self.latent_dim)},
                output_names=["image"],
                dynamic_axes={"z": {0: "batch"}, "image": {0: "batch"}},
            )
        ]
