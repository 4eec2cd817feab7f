"""WGAN-GP (Gulrajani et al. 2017) as a pip-installable ganzoo plugin.

The generator is DCGAN's; the critic has no BatchNorm (the gradient penalty is per sample,
and BatchNorm mixes samples), and the variant always uses the Wasserstein loss with the
gradient penalty and 5 critic steps per generator step, whatever the run's loss option.
Nothing in ganzoo's core knows about this package: training, export and serving find it
through its entry point.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from training.losses import AdversarialLoss
from zoo.dcgan import DCGAN, DCGANConfig, init_weights
from zoo.spec import StepContext


class WGANGPConfig(DCGANConfig):
    width: int = Field(32, description="critic and generator channels at the widest resolution")
    critic_steps: int = Field(5, description="critic steps per generator step (at least --d-steps)")
    gp_weight: float = Field(10.0, description="weight of the gradient penalty (replaces --gp-weight)")


class Critic(nn.Module):
    def __init__(self, channels: int, image_size: int, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch_in, ch, size = channels, width, image_size
        while size > 4:
            layers += [nn.Conv2d(ch_in, ch, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            ch_in, ch, size = ch, ch * 2, size // 2
        self.features = nn.Sequential(*layers)
        self.out = nn.Linear(ch_in * 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x).flatten(1)).view(-1)


class WGANGP(DCGAN):
    name = "wgan-gp"
    Config = WGANGPConfig
    description = "DCGAN generator trained against a WGAN-GP critic (third-party plugin example)"

    def build(self) -> dict[str, nn.Module]:
        nets = super().build()
        nets["D"] = Critic(self.channels, self.config.image_size, self.config.width)
        nets["D"].apply(init_weights)
        return nets

    def train_step(self, ctx: StepContext) -> dict[str, float]:
        ctx.loss = AdversarialLoss("wgan-gp", gp_weight=self.config.gp_weight)
        ctx.d_steps = max(ctx.d_steps, self.config.critic_steps)
        return super().train_step(ctx)
