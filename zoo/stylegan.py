"""StyleGAN (Karras et al. 2019), scaled down to 32x32 on a CPU.

Generator ``G`` = mapping network + synthesis network:

* mapping: ``z`` -> pixel norm -> 8 equalised-lr dense layers (LeakyReLU 0.2) with the
  paper's learning-rate multiplier 0.01 -> ``w``, broadcast to one style per synthesis layer,
  ``w`` [B, L, W]. A running mean ``w_avg`` (buffer, decay ``w_avg_beta``) is updated from
  the training batches' ``w`` and is the centre of the truncation trick,
  ``w' = w_avg + psi (w - w_avg)``.
* synthesis: a learned 4x4 constant, then two layers per resolution (4, 8, 16, 32; the first
  of each new resolution upsamples bilinearly before its 3x3 conv). Every layer adds its own
  single-channel noise map with learned per-channel scales, adds a bias, applies LeakyReLU,
  instance-normalises and is re-styled by AdaIN, ``x * (1 + y_s) + y_b``, where
  ``(y_s, y_b)`` is a learned affine map of that layer's ``w``. RGB comes out through
  1x1 ``toRGB`` convs at every resolution, upsampled and summed (the skip architecture of
  StyleGAN2, which replaces progressive growing), then tanh: MNIST is mostly exact -1
  background, and without a bounded output the discriminator wins on pixel range alone
  (unbounded outputs overshoot [-1, 1] and the generator collapses while fixing that).
* style-mixing regularisation: with probability ``style_mixing`` a training image takes
  layers >= a random crossover from a second latent, so layers learn to act independently.

Discriminator ``D``: equalised-lr convs (fromRGB 1x1; per resolution conv 3x3, 2x2 average
pool, conv 3x3), then a minibatch-stddev feature map, a 3x3 conv and two dense layers at 4x4.

Noise is an explicit input: ``noise`` [B, K] holds the L maps flattened row-major and
concatenated in layer order (layer ``i`` has resolution ``4 * 2 ** (i // 2)``), so a serving
request can fix every random number by its seed. ``noise=None`` draws it.

Exported graphs (docs/ARTIFACTS.md): ``generator`` (z, psi, z2, crossover, noise -> image),
``mapping`` (z, psi -> w) and ``synthesis`` (w, noise -> image).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from zoo.layers import SQRT2, EqualConv2d, EqualLinear, MinibatchStdDev, PixelNorm
from zoo.spec import ExportGraph, StepContext, Variant, VariantConfig


class StyleGANConfig(VariantConfig):
    image_size: int = Field(32, description="side of the square training images, in pixels")
    latent_dim: int = Field(128, description="size of the latent code z")
    w_dim: int = Field(128, description="w, the style vector")
    mapping_layers: int = Field(8, description="layers of the mapping network z -> w")
    mapping_lr_mul: float = Field(0.01, description="the paper's learning-rate multiplier of the mapping network")
    fmap_base: int = Field(512, description="channels at resolution r: min(fmap_max, fmap_base // r): 64, 64, 32, 16")
    fmap_max: int = Field(64, description="most channels of any synthesis or discriminator layer")
    style_mixing: float = Field(0.9, description="probability of a mixed-style training batch")
    w_avg_beta: float = Field(0.995, description="decay of the running mean of w (truncation centre)")
    mbstd_group: int = Field(4, description="minibatch-stddev group size")


def _resolutions(image_size: int) -> list[int]:
    res = [4]
    while res[-1] < image_size:
        res.append(res[-1] * 2)
    if res[-1] != image_size or image_size < 8:
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    return res


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


# -- generator -----------------------------------------------------------------------------
class MappingNetwork(nn.Module):
    """z [B, Z] -> w [B, L, W] (truncated towards ``w_avg`` when ``psi`` is given)."""

    def __init__(self, z_dim: int, w_dim: int, num_ws: int, layers: int = 8, lr_mul: float = 0.01,
                 w_avg_beta: float = 0.995) -> None:
        super().__init__()
        self.num_ws, self.w_avg_beta = num_ws, w_avg_beta
        dims = [z_dim] + [w_dim] * layers
        self.norm = PixelNorm()
        self.fcs = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul, gain=SQRT2)
                                 for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def embed(self, z: torch.Tensor) -> torch.Tensor:
        """One untruncated ``w`` [B, W] per ``z``."""
        x = self.norm(z)
        for fc in self.fcs:
            x = _lrelu(fc(x))
        return x

    def forward(self, z: torch.Tensor, psi: torch.Tensor | float | None = None) -> torch.Tensor:
        w = self.embed(z)
        if psi is not None:
            w = self.w_avg + psi * (w - self.w_avg)
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)

    @torch.no_grad()
    def update_w_avg(self, w: torch.Tensor) -> None:
        self.w_avg.lerp_(w.detach().mean(dim=0).to(self.w_avg.dtype), 1.0 - self.w_avg_beta)


class StyleLayer(nn.Module):
    """[upsample, conv 3x3], + noise, + bias, LeakyReLU, instance norm, AdaIN from w."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv: bool = True, up: bool = False) -> None:
        super().__init__()
        self.up = up
        self.conv = EqualConv2d(in_channels, out_channels, 3, bias=False) if conv else None
        self.noise_strength = nn.Parameter(torch.zeros(out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.style = EqualLinear(w_dim, 2 * out_channels)  # (y_s, y_b), both 0 at init: identity style

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = _up(x)
        if self.conv is not None:
            x = self.conv(x)
        x = x + self.noise_strength.view(1, -1, 1, 1) * noise
        x = _lrelu(x + self.bias.view(1, -1, 1, 1))
        x = x - x.mean(dim=(2, 3), keepdim=True)
        x = x * torch.rsqrt(x.pow(2).mean(dim=(2, 3), keepdim=True) + 1e-8)
        ys, yb = self.style(w).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return x * (1 + ys) + yb


class SynthesisNetwork(nn.Module):
    """w [B, L, W], noise [B, K] -> image [B, C, H, W]."""

    def __init__(self, w_dim: int, channels: int, image_size: int, ch: Callable[[int], int]) -> None:
        super().__init__()
        resolutions = _resolutions(image_size)
        self.const = nn.Parameter(torch.randn(ch(4), 4, 4))
        layers: list[StyleLayer] = []
        for r in resolutions:
            if r == 4:
                layers.append(StyleLayer(ch(4), ch(4), w_dim, conv=False))
            else:
                layers.append(StyleLayer(ch(r // 2), ch(r), w_dim, up=True))
            layers.append(StyleLayer(ch(r), ch(r), w_dim))
        self.layers = nn.ModuleList(layers)
        self.to_rgb = nn.ModuleList(EqualConv2d(ch(r), channels, 1, gain=1.0) for r in resolutions)
        self.layer_res = [r for r in resolutions for _ in range(2)]
        self.noise_offsets = [sum(q * q for q in self.layer_res[:i]) for i in range(len(self.layer_res))]
        self.num_ws = len(layers)
        self.noise_dim = sum(r * r for r in self.layer_res)

    def forward(self, w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = torch.randn(w.shape[0], self.noise_dim, device=w.device, dtype=w.dtype)
        x: torch.Tensor = self.const.unsqueeze(0)  # the first layer's noise gives it the batch axis
        rgb: torch.Tensor | None = None
        for i, layer in enumerate(self.layers):
            r, off = self.layer_res[i], self.noise_offsets[i]
            x = layer(x, w[:, i], noise[:, off : off + r * r].reshape(-1, 1, r, r))
            if i % 2 == 1:
                y = self.to_rgb[i // 2](x)
                rgb = y if rgb is None else _up(rgb) + y
        assert rgb is not None
        return torch.tanh(rgb)


def mix_styles(w: torch.Tensor, w2: torch.Tensor, crossover: torch.Tensor | int) -> torch.Tensor:
    """Layers ``>= crossover`` from ``w2``, the rest from ``w``; ``crossover < 0``: ``w`` alone."""
    if not isinstance(crossover, torch.Tensor):
        crossover = torch.tensor(crossover, device=w.device)
    layer = torch.arange(w.shape[1], device=w.device).view(1, -1, 1)
    return torch.where((layer >= crossover) & (crossover >= 0), w2, w)


class StyleGenerator(nn.Module):
    """The ``generator`` graph: mapping (twice, for mixing) then synthesis."""

    def __init__(self, mapping: MappingNetwork, synthesis: SynthesisNetwork) -> None:
        super().__init__()
        self.mapping, self.synthesis = mapping, synthesis

    @property
    def num_ws(self) -> int:
        return self.synthesis.num_ws

    @property
    def noise_dim(self) -> int:
        return self.synthesis.noise_dim

    def forward(self, z: torch.Tensor, psi: torch.Tensor | float | None = None, z2: torch.Tensor | None = None,
                crossover: torch.Tensor | int | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        w = self.mapping(z, psi)
        if z2 is not None and crossover is not None:
            w = mix_styles(w, self.mapping(z2, psi), crossover)
        return self.synthesis(w, noise)


# -- discriminator ---------------------------------------------------------------------------
class StyleDiscriminator(nn.Module):
    def __init__(self, channels: int, image_size: int, ch: Callable[[int], int], mbstd_group: int = 4) -> None:
        super().__init__()
        res = image_size
        layers: list[nn.Module] = [EqualConv2d(channels, ch(res), 1), nn.LeakyReLU(0.2)]
        while res > 4:
            layers += [EqualConv2d(ch(res), ch(res), 3), nn.LeakyReLU(0.2), nn.AvgPool2d(2),
                       EqualConv2d(ch(res), ch(res // 2), 3), nn.LeakyReLU(0.2)]
            res //= 2
        self.features = nn.Sequential(*layers)
        self.mbstd = MinibatchStdDev(mbstd_group)
        self.conv = EqualConv2d(ch(4) + 1, ch(4), 3)
        self.fc = EqualLinear(ch(4) * 16, ch(4), gain=SQRT2)
        self.out = EqualLinear(ch(4), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = _lrelu(self.conv(self.mbstd(self.features(x))))
        return self.out(_lrelu(self.fc(h.flatten(1)))).view(-1)


# -- the variant -----------------------------------------------------------------------------
class StyleGAN(Variant):
    name = "stylegan"
    task = "generate"
    Config = StyleGANConfig
    description = "Style-based generator: mapping network, AdaIN, noise inputs, style mixing (Karras et al. 2019)"

    def _ch(self, res: int) -> int:
        c = self.config
        return max(1, min(c.fmap_max, c.fmap_base // res))

    @property
    def num_layers(self) -> int:
        return 2 * len(_resolutions(self.image_size))

    @property
    def noise_dim(self) -> int:
        return 2 * sum(r * r for r in _resolutions(self.image_size))

    def build(self) -> dict[str, nn.Module]:
        c = self.config
        synthesis = SynthesisNetwork(c.w_dim, self.channels, c.image_size, self._ch)
        mapping = MappingNetwork(c.latent_dim, c.w_dim, synthesis.num_ws, c.mapping_layers, c.mapping_lr_mul,
                                 c.w_avg_beta)
        D = StyleDiscriminator(self.channels, c.image_size, self._ch, c.mbstd_group)
        return {"G": StyleGenerator(mapping, synthesis), "D": D}

    # -- training ------------------------------------------------------------------------
    def _styles(self, G: StyleGenerator, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Training styles [n, L, W], mixed with probability ``style_mixing``; also the unmixed w."""
        w1 = G.mapping.embed(torch.randn(n, self.latent_dim, device=device))
        w = w1.unsqueeze(1).repeat(1, G.num_ws, 1)
        if self.config.style_mixing > 0 and float(torch.rand(())) < self.config.style_mixing:
            w2 = G.mapping(torch.randn(n, self.latent_dim, device=device))
            w = mix_styles(w, w2, int(torch.randint(1, G.num_ws, ())))
        return w, w1

    def d_loss(self, ctx: StepContext, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        real = batch["image"]
        G = ctx.nets["G"]
        with torch.no_grad():
            fake = G.synthesis(self._styles(G, real.shape[0], real.device)[0])
        fake = ctx.replay("D", fake)
        return ctx.loss.discriminator(ctx.nets["D"], real, fake)

    def g_loss(self, ctx: StepContext, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        G = ctx.nets["G"]
        w, w1 = self._styles(G, batch["image"].shape[0], batch["image"].device)
        G.mapping.update_w_avg(w1)
        return ctx.loss.generator(ctx.nets["D"](G.synthesis(w)))

    # -- sampling ------------------------------------------------------------------------
    def sample(self, nets: dict[str, nn.Module], n: int, generator: torch.Generator) -> torch.Tensor:
        device = next(nets["G"].parameters()).device  # drawn on the CPU: the same samples on any device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        noise = torch.randn(n, self.noise_dim, generator=generator).to(device)
        return nets["G"](z, noise=noise)

    def preview_inputs(self, n: int, generator: torch.Generator, batches: Iterator[dict] | None = None) -> dict:
        return {"z": torch.randn(n, self.latent_dim, generator=generator),
                "noise": torch.randn(n, self.noise_dim, generator=generator)}

    def preview(self, nets: dict[str, nn.Module], fixed: dict[str, torch.Tensor]) -> torch.Tensor:
        return nets["G"](fixed["z"], noise=fixed["noise"])

    # -- export ----------------------------------------------------------------------------
    def export_graphs(self, nets: dict[str, nn.Module]) -> list[ExportGraph]:
        G = nets["G"]
        L, K, Z = self.num_layers, self.noise_dim, self.latent_dim
        batch = {0: "batch"}
        return [
            ExportGraph(
                role="generator",
                module=G,
                inputs={"z": torch.randn(2, Z), "psi": torch.tensor(0.7), "z2": torch.randn(2, Z),
                        "crossover": torch.tensor(L // 2, dtype=torch.int64), "noise": torch.randn(2, K)},
                output_names=["image"],
                dynamic_axes={"z": batch, "z2": batch, "noise": batch, "image": batch},
            ),
            ExportGraph(
                role="mapping",
                module=G.mapping,
                inputs={"z": torch.randn(2, Z), "psi": torch.tensor(0.7)},
                output_names=["w"],
                dynamic_axes={"z": batch, "w": batch},
            ),
            ExportGraph(
                role="synthesis",
                module=G.synthesis,
                inputs={"w": torch.randn(2, L, self.config.w_dim), "noise": torch.randn(2, K)},
                output_names=["image"],
                dynamic_axes={"w": batch, "noise": batch, "image": batch},
            ),
        ]

    def metadata(self) -> dict[str, str]:
        # ints, so card.json holds numbers; export writes them as JSON strings into the ONNX metadata
        return {"num_layers": self.num_layers, "noise_dim": self.noise_dim,  # type: ignore[dict-item]
                "w_dim": self.config.w_dim}  # type: ignore[dict-item]
