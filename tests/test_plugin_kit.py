"""The plugin author's kit: the conformance check on every variant, and export refusing what serving could not serve."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from serving.runtime import validate_artifact
from training.data import load_dataset
from training.export import ExportError, export_variant
from training.loop import data_info
from zoo import registry
from zoo.aae import AAE
from zoo.cgan import CGAN, ConditionalGenerator
from zoo.dcgan import DCGAN
from zoo.spec import DataInfo, ExportGraph
from zoo.testing import ConformanceError, check_variant

# tiny enough that each check costs about a second on one CPU thread
TINY = {
    "dcgan": {"width": 8, "latent_dim": 16, "image_size": 16},
    "cgan": {"width": 8, "latent_dim": 16, "image_size": 16},
    "aae": {"width": 8, "image_size": 16, "d_hidden": 32},
    "stylegan": {"image_size": 16, "latent_dim": 16, "w_dim": 16, "fmap_base": 64, "fmap_max": 16,
                 "mapping_layers": 2},
    "cyclegan": {"ngf": 4, "n_blocks": 1, "ndf": 4, "d_layers": 2, "image_size": 16},
    "wgan-gp": {"width": 8, "latent_dim": 16, "image_size": 16, "critic_steps": 2},
}
DC = {"width": 8, "latent_dim": 16, "image_size": 16}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_registered_variant_has_a_tiny_check():
    assert set(registry.list_variants()) == set(TINY), "add a TINY config for a new built-in or example plugin"


@pytest.mark.parametrize("name", sorted(TINY))
def test_variant_conforms(name):
    report = check_variant(registry.get_variant(name), config=TINY[name])
    assert len(report.logs) == 2 and all(report.logs)
    expected = {"cyclegan": ["a2b", "b2a"], "aae": ["encoder", "generator"],
                "stylegan": ["generator", "mapping", "synthesis"]}.get(name, ["generator"])
    assert report.roles == expected
    plugin = report.card["plugin"]
    assert plugin["distribution"] == ("ganzoo-wgan-gp" if name == "wgan-gp" else "ganzoo") and plugin["version"]
    assert report.card["git_commit"]


def test_card_and_models_show_the_variant_metadata(tmp_path):
    report = check_variant(registry.get_variant("stylegan"), config=TINY["stylegan"], out=tmp_path / "sg")
    card = json.loads((tmp_path / "sg" / "card.json").read_text())
    assert set(card["variant_metadata"]) == {"num_layers", "noise_dim", "w_dim"}
    info = validate_artifact(report.export_dir).info()
    assert info["variant_metadata"] == card["variant_metadata"] and info["variant_metadata"]["w_dim"] == 16
    assert info["plugin"] == {"distribution": "ganzoo", "version": card["plugin"]["version"]}


# -- plugins with the bugs a new author makes: export refuses each, naming the role ------------
def _digits(size: int = 16) -> DataInfo:
    return data_info(load_dataset("digits", None, "train", image_size=size))


class Flat(nn.Module):
    def __init__(self, g: nn.Module) -> None:
        super().__init__()
        self.g = g

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.g(*args).flatten(1)


class Upsampled(Flat):
    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(self.g(*args), scale_factor=2.0)


class FlatOutput(DCGAN):
    name = "flat-output"

    def export_graphs(self, nets):
        (g,) = super().export_graphs(nets)
        g.module = Flat(nets["G"])
        return [g]


class WrongSize(DCGAN):
    name = "wrong-size"

    def export_graphs(self, nets):
        (g,) = super().export_graphs(nets)
        g.module = Upsampled(nets["G"])
        return [g]


class NoNumClasses(CGAN):
    name = "no-num-classes"

    @property
    def num_classes(self) -> int:  # forgot to take it from the data
        return 0

    def build(self):
        c = self.config
        return {"G": ConditionalGenerator(c.latent_dim, self.data.num_classes, 8, self.channels, c.image_size, c.width)}

    def export_graphs(self, nets):
        return [ExportGraph("generator", nets["G"], {"z": torch.randn(2, self.latent_dim),
                            "label": torch.tensor([0, 9])}, ["image"], {"z": {0: "b"}, "label": {0: "b"}})]


class LabelNamedY(CGAN):
    name = "label-named-y"

    def export_graphs(self, nets):
        (g,) = super().export_graphs(nets)
        g.inputs = {"z": g.inputs["z"], "y": g.inputs["label"]}
        g.dynamic_axes = {"z": {0: "b"}, "y": {0: "b"}, "image": {0: "b"}}
        return [g]


class ShortCode(nn.Module):
    def __init__(self, enc: nn.Module) -> None:
        super().__init__()
        self.enc = enc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(x)[:, :-1]


class ShortCodeAAE(AAE):
    name = "short-code"

    def export_graphs(self, nets):
        graphs = super().export_graphs(nets)
        for g in graphs:
            if g.role == "encoder":
                g.module = ShortCode(g.module)
        return graphs


class TooFewEmbeddings(NoNumClasses):
    """Says 12 classes (the card, /models) but embeds only the data's 10."""

    name = "too-few-embeddings"

    @property
    def num_classes(self) -> int:
        return self.data.num_classes + 2


class WithCritic(DCGAN):
    name = "with-critic"

    def export_graphs(self, nets):
        critic = ExportGraph("discriminator", nets["D"], {"image": torch.randn(2, 1, 16, 16)}, ["logit"],
                             {"image": {0: "b"}, "logit": {0: "b"}})
        return [*super().export_graphs(nets), critic]


class WithUnservedCritic(WithCritic):
    name = "with-unserved-critic"
    unserved_roles = ("discriminator",)


class WrongExampleLatent(DCGAN):
    name = "wrong-example-latent"

    def export_graphs(self, nets):
        (g,) = super().export_graphs(nets)
        g.inputs = {"z": torch.randn(2, self.latent_dim - 1)}
        return [g]


@pytest.mark.parametrize(
    "cls, config, words",
    [
        (FlatOutput, DC, r"generator output 'image' has shape \[\?, 256\]: an image must be \[B, C, H, W\]"),
        (WrongSize, DC, "generator output 'image' is 32x32 but card.json says image_size 16"),
        (NoNumClasses, DC, "generator takes a label but card.json has no num_classes"),
        (TooFewEmbeddings, DC, "generator graph fails on two drawn items with labels 0 and 11 .num_classes 12."),
        (LabelNamedY, DC, "generator input 'y' is not in the artifact contract .*named 'label'"),
        (ShortCodeAAE, {"width": 8, "image_size": 16, "latent_dim": 8},
         "encoder output .* has 7 values per image but the generator's z takes 8"),
        (WithCritic, DC, "role 'discriminator' is not one serving uses .*unserved_roles"),
        (WrongExampleLatent, DC, r"graph 'generator': the module fails on its example inputs \(z \[2, 15\]\)"),
    ],
)
def test_export_refuses_a_broken_plugin_and_leaves_nothing(cls, config, words, tmp_path):
    variant = cls(cls.Config(**config), _digits())
    torch.manual_seed(0)
    nets = variant.build()
    (tmp_path / "out").mkdir()
    with pytest.raises(ExportError, match=words) as e:
        export_variant(variant, nets, "broken", tmp_path / "out" / "broken", store=False, fp16=False)
    assert len(str(e.value).splitlines()) == 1, "one line, not a traceback"
    assert list((tmp_path / "out").iterdir()) == [], "no half-made export folder"


def test_a_role_marked_unserved_ships_but_is_not_loaded(tmp_path):
    variant = WithUnservedCritic(WithUnservedCritic.Config(**DC), _digits())
    dest = export_variant(variant, variant.build(), "uc", tmp_path / "uc", store=False, fp16=False)
    assert (dest / "discriminator.onnx").is_file()
    card = json.loads((dest / "card.json").read_text())
    assert card["unserved_roles"] == ["discriminator"] and set(card["graphs"]) == {"generator", "discriminator"}
    model = validate_artifact(dest)
    assert sorted(model.graphs) == ["generator"] and model.generate(2, seed=1).shape == (2, 16, 16, 1)


def test_a_failed_export_keeps_the_previous_one(tmp_path):
    good = DCGAN(DCGAN.Config(**DC), _digits())
    dest = export_variant(good, good.build(), "x", tmp_path / "x", store=False, fp16=False)
    before = (dest / "card.json").read_text()
    bad = FlatOutput(FlatOutput.Config(**DC), _digits())
    with pytest.raises(ExportError):
        export_variant(bad, bad.build(), "x", tmp_path / "x", store=False, fp16=False)
    assert (dest / "card.json").read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["x"]


# -- the conformance check names the hook that broke --------------------------------------------
class SampleTooBig(DCGAN):
    name = "sample-too-big"

    def sample(self, nets, n, generator):
        return super().sample(nets, n + 1, generator)


class NoPreview(DCGAN):
    name = "no-preview"

    def preview(self, nets, fixed):
        return fixed["nope"]


class ThreeGroups(DCGAN):
    """Two discriminators, each its own optimiser group; d_loss logs an extra scalar."""

    name = "three-groups"
    optimizer_groups = {"G": ("G",), "D": ("D",), "D2": ("D2",)}

    def build(self):
        nets = super().build()
        nets["D2"] = DCGAN(self.config, self.data).build()["D"]
        return nets

    def d_loss(self, ctx, batch):
        loss = super().d_loss(ctx, batch)
        z = torch.randn(batch["image"].shape[0], self.latent_dim)
        with torch.no_grad():
            fake = ctx.nets["G"](z)
        loss2 = ctx.loss.discriminator(ctx.nets["D2"], batch["image"], fake)
        return loss + loss2, {"loss_d2": float(loss2)}


class SkipsD2(ThreeGroups):
    name = "skips-d2"

    def d_loss(self, ctx, batch):
        return super(ThreeGroups, self).d_loss(ctx, batch)


@pytest.mark.parametrize(
    "cls, words",
    [
        (SampleTooBig, r"SampleTooBig.sample\(\): returned 5 images, 4 were asked for"),
        (NoPreview, r"NoPreview.preview\(\) failed: KeyError"),
        (FlatOutput, r"FlatOutput.export_graphs\(\): .*generator output 'image' has shape"),
        (SkipsD2, r"SkipsD2.train_step\(\): optimiser group 'D2' \(D2\) never changed its parameters"),
    ],
)
def test_check_variant_names_the_broken_hook(cls, words):
    with pytest.raises(ConformanceError, match=words):
        check_variant(cls, config=DC)


def test_default_train_step_steps_every_group_and_logs_extra_scalars():
    report = check_variant(ThreeGroups, config=DC)
    assert {"loss_d", "loss_g", "loss_d2"} <= set(report.logs[-1])


def test_the_worked_example_of_the_plugin_docs_conforms():
    """docs/PLUGINS.md's conditional example, run as written."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "PLUGINS.md").read_text()
    code = text.split("<!-- worked-example -->", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {"__name__": "worked_example"}
    exec(compile(code, "docs/PLUGINS.md", "exec"), namespace)  # noqa: S102
    report = check_variant(namespace["CondLSGAN"], config={"hidden": 32, "latent_dim": 8})
    assert {"d_real", "d_fake"} <= set(report.logs[-1])
    assert report.card["num_classes"] == 10 and report.card["classes"] == [str(i) for i in range(10)]
    assert "label" in report.card["graphs"]["generator"]["inputs"]
