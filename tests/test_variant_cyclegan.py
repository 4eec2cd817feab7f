"""CycleGAN: one train step, fully convolutional shapes, the image pool, the LR schedule and
ONNX export of both directions from a real (tiny) run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from training.image_pool import ImagePool
from training.loop import lr_factor
from training.losses import AdversarialLoss
from zoo.cyclegan import CycleGAN, CycleGANConfig
from zoo.spec import DataInfo, StepContext

REPO = Path(__file__).resolve().parent.parent
APPLE2ORANGE = REPO.parent / "shared" / "data" / "apple2orange"
TINY = {"ngf": 4, "n_blocks": 1, "ndf": 4}


def tiny_variant(image_size: int = 32) -> CycleGAN:
    return CycleGAN(CycleGANConfig(image_size=image_size, **TINY), DataInfo(3, 0, "t", ("apple", "orange")))


def test_train_step_updates_all_four_networks_with_finite_losses():
    torch.manual_seed(0)
    variant = tiny_variant()
    nets = variant.build()
    opts = {g: torch.optim.Adam([p for n in names for p in nets[n].parameters()], 2e-4, betas=(0.5, 0.999))
            for g, names in variant.optimizer_groups.items()}
    batch = {"A": torch.rand(1, 3, 32, 32) * 2 - 1, "B": torch.rand(1, 3, 32, 32) * 2 - 1}
    pools: dict[str, ImagePool] = {}
    replayed: list[str] = []

    def replay(name: str, fakes: torch.Tensor) -> torch.Tensor:
        replayed.append(name)
        return pools.setdefault(name, ImagePool(50)).query(fakes)

    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in nets.items()}
    ctx = StepContext(nets, opts, AdversarialLoss("lsgan"), 0, 1, lambda: batch, replay)
    logs = variant.train_step(ctx)
    assert {"loss_g", "loss_cycle", "loss_idt", "loss_d"} <= set(logs)
    assert all(np.isfinite(v) for v in logs.values())
    assert sorted(replayed) == ["D_a", "D_b"] and all(len(p.images) == 1 for p in pools.values())
    for k, m in nets.items():
        changed = any(not torch.equal(a, b) for a, b in zip(before[k], m.parameters(), strict=True))
        assert changed, f"{k} did not change"
    # every parameter of every network gets a gradient from its step
    assert all(p.requires_grad for m in nets.values() for p in m.parameters())


@pytest.mark.parametrize("hw", [(32, 32), (36, 44)])
def test_generators_keep_the_input_size_and_discriminators_give_a_patch_map(hw):
    variant = tiny_variant()
    nets = variant.build()
    x = torch.rand(2, 3, *hw) * 2 - 1
    with torch.no_grad():
        for direction in ("a2b", "b2a"):
            y = variant.translate(nets, x, direction)
            assert y.shape == x.shape and y.abs().max() <= 1
        logits = nets["D_a"](x)
    assert logits.dim() == 4 and logits.shape[:2] == (2, 1) and logits.shape[-1] > 1
    # the losses reduce a map of logits to a scalar
    loss = AdversarialLoss("lsgan")
    assert loss.generator(logits).dim() == 0 and loss.discriminator(nets["D_a"], x, x).dim() == 0


def test_preview_is_three_rows_of_eight():
    variant = tiny_variant()
    nets = variant.build()
    batches = iter([{"A": torch.rand(3, 3, 32, 32), "B": torch.rand(3, 3, 32, 32)}] * 2)
    fixed = variant.preview_inputs(64, torch.Generator().manual_seed(0), batches)
    assert fixed["A"].shape == (4, 3, 32, 32) and fixed["B"].shape == (4, 3, 32, 32)
    with torch.no_grad():
        grid = variant.preview(nets, fixed)
    assert grid.shape == (24, 3, 32, 32)
    assert torch.equal(grid[:4], fixed["A"]) and torch.equal(grid[4:8], fixed["B"])
    with pytest.raises(NotImplementedError):
        variant.sample(nets, 2, torch.Generator())


def test_image_pool():
    fakes = torch.randn(3, 3, 4, 4)
    assert ImagePool(0).query(fakes) is fakes
    pool = ImagePool(4)
    first = pool.query(fakes)
    assert torch.equal(first, fakes) and len(pool.images) == 3
    torch.manual_seed(0)
    returned_old = False
    for _ in range(20):
        new = torch.randn(3, 3, 4, 4) + 100
        out = pool.query(new)
        assert out.shape == new.shape and len(pool.images) <= 4
        returned_old |= any(float(img.mean()) < 50 for img in out)
    assert len(pool.images) == 4
    assert returned_old  # with a full pool some returned images are stored ones


def test_lr_schedule():
    assert lr_factor(0, 100, 50) == 1.0 and lr_factor(49, 100, 50) == 1.0
    assert lr_factor(75, 100, 50) == pytest.approx(0.5)
    assert lr_factor(100, 100, 50) == 0.0
    assert lr_factor(99, 100, None) == 1.0


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A few apple2orange images, copied so the run decodes 8 JPEGs rather than 2000."""
    if not (APPLE2ORANGE / "trainA").is_dir():
        pytest.skip(f"{APPLE2ORANGE} is absent (the shared apple2orange data set)")
    root = tmp_path_factory.mktemp("data") / "apple2orange"
    for sub in ("trainA", "trainB"):
        (root / sub).mkdir(parents=True)
        for p in sorted((APPLE2ORANGE / sub).iterdir())[:4]:
            shutil.copy(p, root / sub / p.name)
    return root


@pytest.fixture(scope="module")
def run_dir(tiny_data, tmp_path_factory):
    from training.config import TrainConfig
    from training.loop import train

    out = tmp_path_factory.mktemp("cg-run")
    train(TrainConfig(variant="cyclegan", data="unpaired", data_root=str(tiny_data), out=str(out), steps=2,
                      image_size=32, batch_size=1, loss="lsgan", pool_size=4, threads=1, model=TINY),
          progress=False)
    return out


def test_run_writes_preview_and_exports_both_directions(run_dir):
    import onnxruntime as ort

    from training.export import export_run, load_run

    assert (run_dir / "samples" / "step_000002.png").exists()
    dest = export_run(run_dir, "cg", store=False)
    assert sorted(p.name for p in dest.iterdir()) == ["a2b.onnx", "b2a.onnx", "card.json", "card.md"]
    card = json.loads((dest / "card.json").read_text())
    assert card["domains"] == "apple,orange" and card["task"] == "translate" and card["variant"] == "cyclegan"
    assert card["graphs"]["a2b"]["outputs"] == ["translated"]
    _, nets, _ = load_run(run_dir)
    for role, key in (("a2b", "G_ab"), ("b2a", "G_ba")):
        assert card["graphs"][role]["parity_max_abs_diff"] <= 1e-4
        sess = ort.InferenceSession(str(dest / f"{role}.onnx"), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        for shape in ((1, 3, 32, 32), (2, 3, 48, 64)):
            x = torch.rand(shape) * 2 - 1
            with torch.no_grad():
                expected = nets[key](x).numpy()
            got = sess.run(None, {name: x.numpy()})[0]
            assert got.shape == shape and np.abs(got - expected).max() <= 1e-4
