"""CGAN: label-conditioned generator, projection discriminator, one real step, ONNX export."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.config import TrainConfig
from training.export import export_run, load_run
from training.loop import train
from training.losses import AdversarialLoss
from zoo import registry
from zoo.cgan import CGAN
from zoo.spec import DataInfo, StepContext

TINY = {"width": 8, "latent_dim": 16, "image_size": 16}


def tiny(**kw) -> CGAN:
    return CGAN(CGAN.Config(**(TINY | kw)), DataInfo(channels=1, num_classes=10, name="digits"))


def make_ctx(variant, nets, batch) -> StepContext:
    opts = {g: torch.optim.Adam([p for n in names for p in nets[n].parameters()], 2e-4, betas=(0.5, 0.999))
            for g, names in variant.optimizer_groups.items()}
    return StepContext(nets, opts, AdversarialLoss(), 0, 1, lambda: batch, lambda n, x: x)


def test_registered_and_describes_its_classes():
    assert registry.get_variant("cgan") is CGAN
    v = tiny()
    assert v.task == "generate" and v.num_classes == 10 and v.classes == [str(i) for i in range(10)]
    from training.data import FASHION_CLASSES

    named = CGAN(CGAN.Config(**TINY), DataInfo(channels=1, num_classes=10, name="fashion_mnist",
                                                classes=tuple(FASHION_CLASSES)))
    assert named.classes == FASHION_CLASSES  # the card and /models carry the dataset's names


def test_shapes_and_label_conditioning():
    torch.manual_seed(0)
    v = tiny()
    nets = v.build()
    for m in nets.values():
        m.eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        x = v.sample(nets, 12, g)
        assert x.shape == (12, 1, 16, 16) and x.abs().max() <= 1
        z = torch.randn(4, 16)
        a = nets["G"](z, torch.zeros(4, dtype=torch.long))
        b = nets["G"](z, torch.full((4,), 3, dtype=torch.long))
        assert (a - b).abs().max() > 1e-4, "the label changes the generated image"
        x = v.sample_with_labels(nets, torch.tensor([1, 2, 3]), torch.Generator().manual_seed(0))
        assert x.shape == (3, 1, 16, 16)
        fixed = v.preview_inputs(64, torch.Generator().manual_seed(0))
        assert set(fixed) == {"z", "label"} and fixed["label"].dtype == torch.int64
        assert fixed["label"].view(8, 8)[:, 0].tolist() == list(range(8))  # row i shows class i
        assert torch.equal(fixed["z"][0], fixed["z"][8])  # a column keeps its z
        assert v.preview(nets, fixed).shape == (64, 1, 16, 16)


def test_projection_term_uses_the_label():
    torch.manual_seed(0)
    v = tiny()
    D = v.build()["D"].eval()
    torch.nn.init.normal_(D.embed.weight)  # the projection starts at zero; give it class vectors
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        d0 = D(x, torch.zeros(4, dtype=torch.long))
        d1 = D(x, torch.ones(4, dtype=torch.long))
    assert d0.shape == (4,) and (d0 - d1).abs().min() > 1e-6


def test_one_train_step_updates_both_nets_with_finite_losses():
    torch.manual_seed(0)
    v = tiny()
    nets = v.build()
    batch = {"image": torch.rand(4, 1, 16, 16) * 2 - 1, "label": torch.tensor([0, 1, 2, 3])}
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in nets.items()}
    logs = v.train_step(make_ctx(v, nets, batch))
    assert set(logs) == {"loss_d", "loss_g"} and all(np.isfinite(list(logs.values())))
    for k, m in nets.items():
        assert any(not torch.equal(a, p) for a, p in zip(before[k], m.parameters(), strict=True)), f"{k} unchanged"
    # both label tables learn: the projection (D) and the generator's embedding (G)
    assert not torch.equal(before["D"][-1], nets["D"].embed.weight)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cgan-run")
    train(TrainConfig(variant="cgan", data="digits", out=str(out), steps=2, batch_size=8, threads=1,
                      sample_every=2, model=TINY), progress=False)
    return out


def test_export_parity_and_card(run_dir, tmp_path):
    assert (run_dir / "samples" / "step_000002.png").exists()
    dest = export_run(run_dir, "tiny-cgan", out=tmp_path / "art", store=False)
    card = json.loads((dest / "card.json").read_text())
    assert card["num_classes"] == 10 and card["classes"] == [str(i) for i in range(10)]
    assert card["graphs"]["generator"]["inputs"] == ["z", "label"]
    assert card["graphs"]["generator"]["parity_max_abs_diff"] <= 1e-4

    _, nets, _ = load_run(run_dir)
    z = torch.randn(5, 16)
    y = torch.tensor([0, 9, 3, 3, 7])
    with torch.no_grad():
        expected = nets["G"](z, y).numpy()
    sess = ort.InferenceSession(str(dest / "generator.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["z", "label"]
    got = sess.run(None, {"z": z.numpy(), "label": y.numpy()})[0]
    assert got.shape == (5, 1, 16, 16) and np.abs(got - expected).max() <= 1e-4
