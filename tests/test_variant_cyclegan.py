"""CycleGAN: one train step, fully convolutional shapes, the image pool, the LR schedule,
ONNX export with ONNX Runtime parity, and export of both directions from a real (tiny) run."""

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
    # every parameter got a finite gradient from its own step, and D is trainable again after the G step
    for m in nets.values():
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
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
    assert ImagePool(0).query(fakes) is fakes  # a pool of 0 passes fakes through
    pool = ImagePool(4)
    first = pool.query(fakes)
    assert torch.equal(first, fakes) and len(pool.images) == 3  # filling up: the new fakes come back
    torch.manual_seed(0)
    returned_old = False
    for _ in range(20):
        new = torch.randn(3, 3, 4, 4) + 100
        out = pool.query(new)
        assert out.shape == new.shape and len(pool.images) <= 4
        returned_old |= any(float(img.mean()) < 50 for img in out)
    assert len(pool.images) == 4
    assert returned_old  # with a full pool some returned images are stored ones
    restored = ImagePool(1)
    restored.load_state_dict(pool.state_dict())
    assert restored.size == 4 and all(torch.equal(a, b) for a, b in zip(restored.images, pool.images, strict=True))


def test_lr_schedule_is_constant_then_linear_to_zero():
    f = lr_factor  # the schedule the loop applies to every variant
    assert [f(s, 100, 50) for s in (0, 25, 49, 50)] == [1.0, 1.0, 1.0, 1.0]
    assert f(75, 100, 50) == pytest.approx(0.5) and f(90, 100, 50) == pytest.approx(0.2)
    assert f(100, 100, 50) == 0.0 and f(150, 100, 50) == 0.0  # never negative
    assert f(50, 100, 0) == pytest.approx(0.5)  # decay over the whole run
    assert f(99, 100, None) == 1.0 and f(99, 100, 100) == 1.0 and f(99, 100, 200) == 1.0  # no decay
    values = [f(s, 1000, 400) for s in range(1001)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))  # monotone


def test_onnx_export_matches_pytorch_on_any_size_and_batch(tmp_path):
    import onnx
    import onnxruntime as ort

    torch.manual_seed(1)
    variant = tiny_variant()
    nets = variant.build()
    for m in nets.values():  # move off the init so the graph computes something non-trivial
        for p in m.parameters():
            p.data.add_(torch.randn_like(p) * 0.05)
        m.eval()
    graphs = {g.role: g for g in variant.export_graphs(nets)}
    assert sorted(graphs) == ["a2b", "b2a"] and graphs["b2a"].module is nets["G_ba"]
    graph, direction = graphs["a2b"], "a2b"
    assert graph.module is nets["G_ab"]
    assert list(graph.inputs) == ["image"] and graph.output_names == ["translated"]
    path = tmp_path / f"{direction}.onnx"
    torch.onnx.export(graph.module, tuple(graph.inputs.values()), str(path), input_names=list(graph.inputs),
                      output_names=graph.output_names, dynamic_axes=graph.dynamic_axes, opset_version=17,
                      dynamo=False)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"] and dims[1].dim_value == 3
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for batch in (1, 2):
        for hw in ((32, 32), (48, 64)):
            x = torch.rand(batch, 3, *hw) * 2 - 1
            with torch.no_grad():
                expected = graph.module(x).numpy()
            got = sess.run(None, {name: x.numpy()})[0]
            assert got.shape == x.shape
            assert np.abs(got - expected).max() <= 1e-4
    assert variant.metadata() == {"domains": "apple,orange"}


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
    assert sorted(p.name for p in dest.iterdir()) == ["a2b.fp16.onnx", "a2b.onnx", "b2a.fp16.onnx", "b2a.onnx",
                                                     "card.json", "card.md", "metrics.csv"]
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
