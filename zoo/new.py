"""``python -m zoo new NAME``: a plugin package skeleton that installs and passes its test as written.

The variant it writes is a small MLP GAN, commented hook by hook (docs/PLUGINS.md has the
whole contract); its test runs ``zoo.testing.check_variant``, the conformance check.
"""

from __future__ import annotations

import re
from pathlib import Path

NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "A ganzoo variant: {name}."
requires-python = ">=3.10"
dependencies = ["ganzoo"]

# This table is all it takes to join the zoo: `pip install .`, then `python -m zoo list`.
[project.entry-points."ganzoo.variants"]
{name} = "{module}:{cls}"

[tool.setuptools]
packages = ["{module}"]
'''

VARIANT = '''"""{cls}: a ganzoo variant (written by `python -m zoo new {name}`; edit freely).

The contract every hook follows is in ganzoo's docs/PLUGINS.md. Run the conformance check
with `python -m pytest tests` after `pip install -e .`.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from zoo.spec import ExportGraph, StepContext, Variant, VariantConfig


class {cls}Config(VariantConfig):
    """Hyperparameters: `python -m training train {name} --help` lists them with these descriptions."""

    image_size: int = Field(16, description="side of the square images, in pixels")
    latent_dim: int = Field(32, description="size of z")
    hidden: int = Field(128, description="width of the MLPs' hidden layers")


class Generator(nn.Module):
    """z [B, latent_dim] -> image [B, C, S, S] in [-1, 1] (tanh), the layout serving expects."""

    def __init__(self, latent_dim: int, channels: int, size: int, hidden: int) -> None:
        super().__init__()
        self.shape = (channels, size, size)
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, channels * size * size),
                                 nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.shape)  # NCHW, never flat: export checks the rank


class Discriminator(nn.Module):
    def __init__(self, channels: int, size: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(channels * size * size, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)  # one logit per image


class {cls}(Variant):
    name = "{name}"  # must equal the entry point's name
    task = "generate"  # generate | reconstruct | translate
    Config = {cls}Config
    description = "An MLP GAN (replace with yours)"
    # ema_modules = ("G",)  and  optimizer_groups = {{"G": ("G",), "D": ("D",)}} are the defaults:
    # groups named D* step in the discriminator phase of the default train_step, the others after

    def build(self) -> dict[str, nn.Module]:
        """Every network by name; the loop makes one Adam per optimizer_groups entry."""
        c = self.config
        return {{"G": Generator(c.latent_dim, self.channels, c.image_size, c.hidden),
                "D": Discriminator(self.channels, c.image_size, c.hidden)}}

    def d_loss(self, ctx: StepContext, batch: dict[str, torch.Tensor]):  # noqa: ANN201
        """batch["image"] is float [B, C, S, S] in [-1, 1] (and batch["label"] int64 [B])."""
        real = batch["image"]
        z = torch.randn(real.shape[0], self.latent_dim, device=real.device)
        with torch.no_grad():
            fake = ctx.nets["G"](z)
        fake = ctx.replay("D", fake)  # the loop's image pool (--pool-size; identity when 0)
        loss = ctx.loss.discriminator(ctx.nets["D"], real, fake)  # the run's --loss
        return loss, {{"d_real_mean": float(ctx.nets["D"](real).mean())}}  # extra scalars are logged

    def g_loss(self, ctx: StepContext, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        z = torch.randn(batch["image"].shape[0], self.latent_dim, device=batch["image"].device)
        return ctx.loss.generator(ctx.nets["D"](ctx.nets["G"](z)))

    def sample(self, nets: dict[str, nn.Module], n: int, generator: torch.Generator) -> torch.Tensor:
        """n images in [-1, 1] for evaluation; draw every random number from `generator`."""
        return nets["G"](torch.randn(n, self.latent_dim, generator=generator))

    def preview(self, nets: dict[str, nn.Module], fixed: dict[str, torch.Tensor]) -> torch.Tensor:
        """The sample grid, from preview_inputs() (the default draws fixed["z"])."""
        return nets["G"](fixed["z"])

    def export_graphs(self, nets: dict[str, nn.Module]) -> list[ExportGraph]:
        """One graph per role (docs/ARTIFACTS.md); input and output names are the contract's."""
        return [
            ExportGraph(
                role="generator",
                module=nets["G"],
                inputs={{"z": torch.randn(2, self.latent_dim)}},
                output_names=["image"],
                dynamic_axes={{"z": {{0: "batch"}}, "image": {{0: "batch"}}}},
            )
        ]

    def metadata(self) -> dict[str, str]:
        """Extra card keys; /models shows them under variant_metadata."""
        return {{"hidden": str(self.config.hidden)}}
'''

TEST = '''"""The conformance check: every hook, a real export and the serving runtime, in seconds."""

from zoo import registry
from zoo.testing import check_variant

from {module} import {cls}


def test_{ident}_is_registered():
    assert registry.get_variant("{name}") is {cls}


def test_{ident}_conforms():
    report = check_variant({cls}, config={{"hidden": 32, "latent_dim": 8}})
    assert "generate" in report.capabilities
    assert report.card["variant_metadata"] == {{"hidden": "32"}}
'''

README = '''# {dist}

A ganzoo variant, `{name}`, as its own pip package.

```bash
pip install -e .            # registers the entry point; `python -m zoo list` shows {name}
python -m pytest tests      # the conformance check (zoo.testing.check_variant)
python -m training train {name} --data digits --steps 500 --out runs/{name}
python -m training export runs/{name} --name {name}
```
'''


def class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def write_skeleton(name: str, dest: str | Path) -> Path:
    """Write package ``ganzoo-NAME`` into ``dest`` (created; must not exist) and return it."""
    if not NAME.match(name):
        raise ValueError(f"variant name {name!r} must be lowercase letters and digits, words joined by '-'")
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists; choose another --out")
    module = "ganzoo_" + name.replace("-", "_")
    values = {"name": name, "dist": f"ganzoo-{name}", "module": module, "cls": class_name(name),
              "ident": name.replace("-", "_")}
    (dest / module).mkdir(parents=True)
    (dest / "tests").mkdir()
    (dest / "pyproject.toml").write_text(PYPROJECT.format(**values))
    (dest / module / "__init__.py").write_text(VARIANT.format(**values))
    (dest / "tests" / f"test_{values['ident']}.py").write_text(TEST.format(**values))
    (dest / "README.md").write_text(README.format(**values))
    return dest
