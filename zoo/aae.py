"""Adversarial autoencoder (Makhzani et al. 2015).

An autoencoder whose code distribution is pushed onto a prior by a GAN played in code space:

* encoder ``E`` = q(z|x): a deterministic DCGAN-style convolutional network, image -> code;
* decoder ``Dec`` = p(x|z): the DCGAN generator (tanh output), code -> image;
* discriminator ``D``: a small MLP on codes telling prior samples z ~ N(0, I) ("real") from
  codes E(x) ("fake").

Each training step runs the paper's two phases on the same batch:

1. reconstruction: ``E`` and ``Dec`` minimise MSE(Dec(E(x)), x) (optimiser group ``AE``);
2. regularisation: ``D`` is updated to separate prior samples from codes (group ``D``), then
   the encoder, acting as the generator, is updated to fool it (group ``G``).

Once q(z) matches the prior, decoding prior samples generates images (``sample``), and the
encoder gives a smooth ``latent_dim``-dimensional code for every image (``encode``; 8 in the paper,
16 in the shipped model).

``image_adv > 0`` adds what the paper does not have: an image discriminator ``DX`` (the DCGAN
discriminator) tells real images from decoded prior samples (phase 3), and the decoder's
phase-1 loss gains ``image_adv`` times the generator loss on those samples; it sits in the
same optimiser step as the reconstruction error, so the weight is a real trade-off (Adam
would undo the scale of a separate step). An MSE decoder returns the mean of every image a
code could stand for, so its samples are blurred averages that a nearest-neighbour test tells
from real digits at a glance; the pixel-space game pushes them back onto the image manifold
(as VAE-GAN, Larsen et al. 2016, does for the VAE), while the reconstruction phase keeps the
code meaningful. ``recon_adv > 0`` also makes reconstructions fakes for ``DX`` (VAE-GAN's third
term); measured on MNIST it sharpened reconstructions, not samples (docs/RESULTS.md).

``prior="mixture"`` replaces N(0, I) by the paper's other prior (its Fig. 2): a mixture of
``prior_components`` unit Gaussians, centred on the axes at ``prior_radius`` (+e1, -e1, +e2, ...).
N(0, I) has no gaps, so the decoder must draw something between every two digits that meet in
code space, and those in-between codes become ambiguous samples; a mixture leaves low-density
gaps where the encoder can put its class boundaries. Serving only
fills ``z`` with standard normals (docs/ARTIFACTS.md), so the artifact takes one more
dimension and does the mixing in the graph (``MixturePrior``): ``z[:, 0]`` picks the component
(equal shares, by its normal quantile), ``z[:, 1:]`` is the offset from its centre; the
encoder graph returns the inverse (its component's central quantile, then the offset), so
``/reconstruct`` and latent arithmetic work in the served space unchanged.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from zoo.dcgan import Discriminator, Generator, init_weights
from zoo.spec import ExportGraph, StepContext, Variant, VariantConfig


class AAEConfig(VariantConfig):
    image_size: int = Field(32, description="side of the square training images, in pixels")
    latent_dim: int = Field(8, description="size of the latent code z")
    width: int = Field(64, description="conv channels at the widest resolution, as in DCGAN")
    d_hidden: int = Field(256, description="width of the code discriminator's two hidden layers")
    image_adv: float = Field(
        0.0, description="weight of the decoder's image-space adversarial loss (0: the paper's AAE)"
    )
    image_d_width: int = Field(32, description="width of the image discriminator DX (only built when image_adv > 0)")
    recon_adv: float = Field(
        0.0, description="weight of the decoder's image-space adversarial loss on reconstructions Dec(E(x)), which "
        "DX then also sees as fakes (VAE-GAN's third term; needs image_adv > 0)"
    )

    prior: Literal["normal", "mixture"] = Field(
        "normal", description="the code prior: N(0, I) (the paper's default) or a mixture of unit Gaussians on the axes"
    )
    prior_components: int = Field(10, ge=2, description="mixture components (prior=mixture; at most 2 x latent_dim)")
    prior_radius: float = Field(4.0, gt=0, description="distance of the mixture centres from 0 (prior=mixture)")

    @model_validator(mode="after")
    def _check_options(self) -> AAEConfig:
        if self.recon_adv > 0 and self.image_adv <= 0:
            raise ValueError("recon_adv > 0 needs the image discriminator DX: set image_adv > 0 too")
        if self.prior == "mixture" and self.prior_components > 2 * self.latent_dim:
            raise ValueError(f"prior_components {self.prior_components} > 2 x latent_dim {self.latent_dim}: "
                             "the mixture centres are +-radius on the code axes, two per axis")
        return self


class MixturePrior(nn.Module):
    """Standard normals of ``latent_dim + 1`` values <-> codes from a mixture of unit Gaussians.

    Deterministic and exportable, so that the served graphs take and give what serving draws
    (standard normals): ``to_code`` picks component ``floor(K * Phi(u0))`` and adds ``u[1:]``
    to its centre; ``from_code`` takes the nearest centre and returns its central quantile and
    the offset, so ``to_code(from_code(c)) == c`` for every code."""

    def __init__(self, latent_dim: int, components: int, radius: float) -> None:
        super().__init__()
        means = torch.zeros(components, latent_dim)
        for k in range(components):
            means[k, k // 2] = radius if k % 2 == 0 else -radius
        p = (torch.arange(components, dtype=torch.float64) + 0.5) / components
        self.register_buffer("means", means, persistent=False)
        self.register_buffer("centres", (math.sqrt(2) * torch.erfinv(2 * p - 1)).float(), persistent=False)
        self.components = components

    def to_code(self, u: torch.Tensor) -> torch.Tensor:
        p = 0.5 * (1 + torch.erf(u[:, 0] / math.sqrt(2)))
        k = torch.clamp(torch.floor(p * self.components), 0, self.components - 1).long()
        return self.means[k] + u[:, 1:]

    def from_code(self, code: torch.Tensor) -> torch.Tensor:
        k = ((code[:, None, :] - self.means[None]) ** 2).sum(-1).argmin(1)
        return torch.cat([self.centres[k][:, None], code - self.means[k]], dim=1)


class _ServedDecoder(nn.Module):
    """The artifact's generator with a mixture prior: standard normals -> code -> image."""

    def __init__(self, prior: MixturePrior, dec: nn.Module) -> None:
        super().__init__()
        self.prior, self.dec = prior, dec

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(self.prior.to_code(z))


class _ServedEncoder(nn.Module):
    """The artifact's encoder with a mixture prior: image -> code -> the standard normals that give it."""

    def __init__(self, prior: MixturePrior, enc: nn.Module) -> None:
        super().__init__()
        self.prior, self.enc = prior, enc

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.prior.from_code(self.enc(image))


class Encoder(nn.Module):
    """DCGAN discriminator body with a ``latent_dim``-channel head: image -> code."""

    def __init__(self, channels: int, image_size: int, width: int, latent_dim: int) -> None:
        super().__init__()
        base = Discriminator(channels, image_size, width)
        self.features = base.features
        self.out = nn.Conv2d(base.feature_channels, latent_dim, 4, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x)).flatten(1)


class CodeDiscriminator(nn.Module):
    """MLP on codes: latent -> hidden -> hidden -> logit, LeakyReLU(0.2)."""

    def __init__(self, latent_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2, True),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2, True),
            nn.Linear(hidden, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1)


class AAE(Variant):
    name = "aae"
    task = "reconstruct"
    Config = AAEConfig
    description = "Adversarial autoencoder with a Gaussian or Gaussian-mixture prior (Makhzani et al. 2015)"
    ema_modules = ("E", "Dec")

    @functools.cached_property
    def mixture(self) -> MixturePrior | None:
        """The mixture prior's map, or None for N(0, I)."""
        c = self.config
        return MixturePrior(c.latent_dim, c.prior_components, c.prior_radius) if c.prior == "mixture" else None

    @property
    def latent_dim(self) -> int:
        """The served ``z``'s size: the code's, plus the component's coordinate with a mixture prior."""
        return self.config.latent_dim + (1 if self.config.prior == "mixture" else 0)

    @property  # type: ignore[override]
    def optimizer_groups(self) -> dict[str, tuple[str, ...]]:
        groups = {"AE": ("E", "Dec"), "D": ("D",), "G": ("E",)}
        if self.config.image_adv > 0:
            groups["DX"] = ("DX",)
        return groups

    def build(self) -> dict[str, nn.Module]:
        c = self.config
        E = Encoder(self.channels, c.image_size, c.width, c.latent_dim)
        Dec = Generator(c.latent_dim, self.channels, c.image_size, c.width)
        D = CodeDiscriminator(c.latent_dim, c.d_hidden)
        E.apply(init_weights)
        Dec.apply(init_weights)
        D.apply(init_weights)
        nets = {"E": E, "Dec": Dec, "D": D}
        if c.image_adv > 0:
            nets["DX"] = Discriminator(self.channels, c.image_size, c.image_d_width)
            nets["DX"].apply(init_weights)
        return nets

    def prior(self, n: int, device: torch.device | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """Codes from the prior, drawn as the artifact draws them (so seeds give the same samples)."""
        u = torch.randn(n, self.latent_dim, device=device, generator=generator)
        mix = self.mixture
        return u if mix is None else mix.to(u.device).to_code(u)

    def train_step(self, ctx: StepContext) -> dict[str, float]:
        E, Dec, D = ctx.nets["E"], ctx.nets["Dec"], ctx.nets["D"]
        x = ctx.next_batch()["image"].to(ctx.device)
        DX = ctx.nets.get("DX")

        # 1. reconstruction phase: E and Dec minimise the reconstruction error (and, with an
        #    image discriminator, Dec also makes decoded prior samples look real to it)
        ctx.opts["AE"].zero_grad(set_to_none=True)
        recon = Dec(E(x))
        loss_recon = F.mse_loss(recon, x)
        loss_ae = loss_recon
        recon_adv = self.config.recon_adv  # > 0 only with DX (AAEConfig checks it)
        if DX is not None:
            fake = Dec(self.prior(x.shape[0], x.device))
            DX.requires_grad_(False)
            try:
                loss_gx = ctx.loss.generator(DX(fake))
                loss_ae = loss_recon + self.config.image_adv * loss_gx
                if recon_adv > 0:  # reconstructions must look real too: MSE alone blurs them
                    loss_gr = ctx.loss.generator(DX(recon))
                    loss_ae = loss_ae + recon_adv * loss_gr
            finally:
                DX.requires_grad_(True)
        ctx.scale(loss_ae).backward()
        ctx.opts["AE"].step()

        # 2a. regularisation, discriminator: prior samples are real, codes E(x) are fake
        for k in range(ctx.d_steps):
            if k > 0:
                x = ctx.next_batch()["image"].to(ctx.device)
            with torch.no_grad():
                codes = E(x)
            ctx.opts["D"].zero_grad(set_to_none=True)
            loss_d = ctx.loss.discriminator(D, self.prior(x.shape[0], x.device), codes)
            ctx.scale(loss_d).backward()
            ctx.opts["D"].step()

        # 2b. regularisation, generator: the encoder learns to fool D
        ctx.opts["G"].zero_grad(set_to_none=True)
        D.requires_grad_(False)
        try:
            loss_g = ctx.loss.generator(D(E(x)))
            ctx.scale(loss_g).backward()
        finally:
            D.requires_grad_(True)
        ctx.opts["G"].step()
        logs = {"loss_recon": float(loss_recon.detach()), "loss_d": float(loss_d.detach()),
                "loss_g": float(loss_g.detach())}

        # 3. (image_adv > 0) the image discriminator: real images vs the decoded prior samples of phase 1
        if DX is not None:
            ctx.opts["DX"].zero_grad(set_to_none=True)
            fakes = ctx.replay("DX", fake.detach())
            if recon_adv > 0:  # half prior samples, half reconstructions: the batch keeps its size (GP pairs)
                half = fakes.shape[0] // 2
                fakes = torch.cat([fakes[:half], recon.detach()[: fakes.shape[0] - half]])
            loss_dx = ctx.loss.discriminator(DX, x, fakes)
            ctx.scale(loss_dx).backward()
            ctx.opts["DX"].step()
            logs |= {"loss_dx": float(loss_dx.detach()), "loss_gx": float(loss_gx.detach())}
            if recon_adv > 0:
                logs["loss_gr"] = float(loss_gr.detach())
        return logs

    # -- helpers for sampling and the evaluation suite ---------------------------------------
    @torch.no_grad()
    def encode(self, nets: dict[str, nn.Module], images: torch.Tensor) -> torch.Tensor:
        return nets["E"](images)

    @torch.no_grad()
    def reconstruct(self, nets: dict[str, nn.Module], images: torch.Tensor) -> torch.Tensor:
        return nets["Dec"](nets["E"](images))

    def sample(self, nets: dict[str, nn.Module], n: int, generator: torch.Generator) -> torch.Tensor:
        # the prior is drawn on the CPU by the caller's generator: the same samples on any device
        return nets["Dec"](self.prior(n, generator=generator).to(next(nets["Dec"].parameters()).device))

    def preview_inputs(self, n: int, generator: torch.Generator, batches: Iterator[dict] | None = None) -> dict:
        fixed = {"z": self.prior(n, generator=generator)}
        if batches is not None:
            want, images = n // 2, []
            while sum(len(b) for b in images) < want:
                images.append(next(batches)["image"])
            fixed["image"] = torch.cat(images)[:want]
        return fixed

    def preview(self, nets: dict[str, nn.Module], fixed: dict[str, torch.Tensor]) -> torch.Tensor:
        """Rows alternate: 8 originals, then their 8 reconstructions (prior samples without data)."""
        if "image" not in fixed:
            return nets["Dec"](fixed["z"])
        x = fixed["image"]
        recon = nets["Dec"](nets["E"](x))
        pairs = torch.stack([x.view(-1, 8, *x.shape[1:]), recon.view(-1, 8, *x.shape[1:])], dim=1)
        return pairs.reshape(-1, *x.shape[1:])

    def export_graphs(self, nets: dict[str, nn.Module]) -> list[ExportGraph]:
        size = self.image_size
        mix = self.mixture
        dec = nets["Dec"] if mix is None else _ServedDecoder(mix, nets["Dec"])
        enc = nets["E"] if mix is None else _ServedEncoder(mix, nets["E"])
        return [
            ExportGraph(
                role="generator",
                module=dec,
                inputs={"z": torch.randn(2, self.latent_dim)},
                output_names=["image"],
                dynamic_axes={"z": {0: "batch"}, "image": {0: "batch"}},
            ),
            ExportGraph(
                role="encoder",
                module=enc,
                inputs={"image": torch.rand(2, self.channels, size, size) * 2 - 1},
                output_names=["code"],
                dynamic_axes={"image": {0: "batch"}, "code": {0: "batch"}},
            ),
        ]
