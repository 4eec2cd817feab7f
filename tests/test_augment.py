"""Differentiable augmentation (training/augment.py) and the loop's --augment / --ada-target options."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from training.__main__ import main as cli
from training.augment import (
    ADA_INTERVAL,
    FUNCS,
    POLICIES,
    AugmentedDiscriminator,
    AugmentPipe,
    diff_augment,
    rand_color,
    rand_cutout,
    rand_translation,
    wrap,
)
from training.config import TrainConfig
from training.loop import train
from training.losses import AdversarialLoss

ROOT = Path(__file__).resolve().parents[1]
APPLE2ORANGE = ROOT.parent / "shared" / "data" / "apple2orange"


def images(b: int = 8, c: int = 3, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    """Images in [-1, 1] with no exact zeros, so zeroed pixels are the augmentation's."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, h, w, generator=g) * 1.8 - 0.9
    return torch.where(x.abs() < 0.05, torch.full_like(x, 0.5), x)


# -- the policies ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", POLICIES)
@pytest.mark.parametrize("shape", [(4, 1, 16, 16), (4, 3, 12, 20)])
def test_each_policy_passes_gradients_to_its_input(name, shape):
    torch.manual_seed(0)
    x = images(*shape).requires_grad_(True)
    out = FUNCS[name](x)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (x.grad.flatten(1).abs().sum(1) > 0).all(), "every sample's input gets a gradient"


def test_p_zero_is_the_identity_and_one_always_augments():
    x = images()
    assert diff_augment(x, POLICIES, 0.0) is x
    torch.manual_seed(0)
    y = diff_augment(x, ("color",), 1.0)
    assert all(not torch.equal(a, b) for a, b in zip(x, y, strict=True))


def test_p_is_the_share_of_samples_each_policy_touches():
    torch.manual_seed(0)
    x = images(b=4000, c=1, h=4, w=4)
    changed = (diff_augment(x, ("color",), 0.3) != x).flatten(1).any(1).double().mean()
    assert 0.27 < float(changed) < 0.33


def test_translation_shifts_each_sample_by_at_most_an_eighth_with_zero_fill():
    torch.manual_seed(0)
    x = images(b=32, c=2, h=16, w=24)
    out = rand_translation(x)
    shifts = set()
    for a, b in zip(x, out, strict=True):
        found = None
        for dy in range(-2, 3):  # 16 / 8
            for dx in range(-3, 4):  # 24 / 8
                ref = torch.zeros_like(a)
                ys, yd = slice(max(0, -dy), 16 - max(0, dy)), slice(max(0, dy), 16 - max(0, -dy))
                xs, xd = slice(max(0, -dx), 24 - max(0, dx)), slice(max(0, dx), 24 - max(0, -dx))
                ref[:, yd, xd] = a[:, ys, xs]
                if torch.equal(ref, b):
                    found = (dy, dx)
        assert found is not None, "each output is its input shifted, vacated pixels zero"
        shifts.add(found)
    assert len(shifts) > 5, "shifts are drawn per sample"


def test_cutout_zeroes_one_square_of_half_the_size_per_sample():
    torch.manual_seed(0)
    x = images(b=64, c=3, h=16, w=16)
    out = rand_cutout(x)
    cut = out == 0
    assert torch.equal(out[~cut], x[~cut]), "pixels outside the square are untouched"
    assert (cut.all(1) == cut.any(1)).all(), "the square spans every channel"
    area = cut[:, 0].flatten(1).sum(1)
    assert (area <= 64).all() and (area >= 16).all() and (area == 64).any()  # 8x8, clipped at the border
    assert len({tuple(m.nonzero()[0].tolist()) for m in cut[:, 0]}) > 10, "placed per sample"


def test_colour_is_an_affine_map_per_sample_and_saturation_a_no_op_on_grey():
    torch.manual_seed(0)
    x = images(b=16, c=1)
    out = rand_color(x)
    for a, b in zip(x.flatten(1), out.flatten(1), strict=True):  # grey: b = s * a + t exactly
        s = (b[1] - b[0]) / (a[1] - a[0])
        assert torch.allclose(b, s * a + (b[0] - s * a[0]), atol=1e-5)
        assert 0.5 - 1e-4 <= float(s) <= 1.5 + 1e-4
    rgb = images(b=16, c=3)
    torch.manual_seed(1)
    grey_in_rgb = rand_color(rgb[:, :1].expand(-1, 3, -1, -1).contiguous())
    assert torch.allclose(grey_in_rgb, grey_in_rgb[:, :1].expand_as(grey_in_rgb), atol=1e-6), "grey stays grey"
    torch.manual_seed(1)
    colour = rand_color(rgb)
    ratio = (colour - colour.mean(1, keepdim=True)).std() / (rgb - rgb.mean(1, keepdim=True)).std()
    assert not torch.isclose(ratio, torch.tensor(1.0), atol=0.05), "saturation changes colour images"


# -- the wrapper -----------------------------------------------------------------------------
class Recorder(nn.Module):
    """A tiny D that keeps every input it is called with."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3 * 16 * 16, 1)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        self.seen.append(x)
        return self.lin(x.flatten(1)).view(-1) * scale


def test_reals_and_fakes_are_augmented_and_g_gets_its_gradient_through_the_augmentation():
    torch.manual_seed(0)
    D = Recorder()
    wrapped = wrap({"G": nn.Identity(), "D": D}, {"G": ("G",), "D": ("D",)}, AugmentPipe(("cutout",)))
    assert wrapped["G"] is not None and isinstance(wrapped["D"], AugmentedDiscriminator)
    real, fake = images(seed=1), images(seed=2).requires_grad_(True)
    AdversarialLoss("nonsaturating", r1_weight=1.0).discriminator(wrapped["D"], real, fake)
    assert len(D.seen) == 3  # real, fake, and the R1 pass on the reals
    for seen, given in zip(D.seen, (real, fake, real), strict=True):
        assert seen.shape == given.shape and not torch.equal(seen, given.detach())
        assert ((seen == 0).flatten(1).sum(1) >= 16 * 3).all(), "each sample carries a cutout square"
    AdversarialLoss().generator(wrapped["D"](fake)).backward()
    cut = D.seen[-1] == 0
    assert (fake.grad[cut] == 0).all() and (fake.grad[~cut] != 0).any(), "G's gradient went through the cutout"


def test_the_wrapper_keeps_state_dict_keys_attributes_and_extra_arguments():
    D = Recorder()
    w = AugmentedDiscriminator(D, AugmentPipe(("translation",), p=0.0))
    assert list(w.state_dict()) == list(D.state_dict()) == ["lin.weight", "lin.bias"]
    w.load_state_dict({k: torch.zeros_like(v) for k, v in D.state_dict().items()})
    assert float(D.lin.weight.detach().abs().sum()) == 0
    assert w.lin is D.lin and list(w.parameters()) == list(D.parameters())
    x = images()
    torch.manual_seed(0)
    assert torch.equal(w(x, scale=2.0), D(x) * 2.0) and D.seen[-2] is x, "p=0: D sees the very input"
    code = torch.randn(4, 8)
    code_d = nn.Linear(8, 1)
    assert torch.equal(AugmentedDiscriminator(code_d, AugmentPipe(POLICIES))(code), code_d(code))


# -- ADA -------------------------------------------------------------------------------------
def run_interval(pipe: AugmentPipe, logit: float) -> None:
    """ADA_INTERVAL steps in which D answers ``logit`` on every real image (and -logit on fakes)."""
    D = AugmentedDiscriminator(nn.Identity(), pipe)
    for _ in range(ADA_INTERVAL):
        real = pipe.watch(lambda: {"image": torch.full((8, 1, 1, 1), logit)})()["image"]
        D(real.clone())  # not the batch's tensor: not counted as real
        D(real)
        D(torch.full((8, 1, 1, 1), -logit))
        pipe.end_step()


def test_ada_raises_p_when_d_is_overconfident_on_reals_and_lowers_it_otherwise():
    pipe = AugmentPipe(("translation",), p=0.5, ada_target=0.6, ada_kimg=1.0, batch_images=8)
    move = 8 * ADA_INTERVAL / 1000
    run_interval(pipe, 3.0)
    assert pipe.rt == 1.0 and pipe.p == pytest.approx(0.5 + move)
    run_interval(pipe, -3.0)
    assert pipe.rt == -1.0 and pipe.p == pytest.approx(0.5)
    assert pipe.scalars() == {"aug_p": pytest.approx(0.5), "ada_rt": -1.0}
    for _ in range(20):
        run_interval(pipe, -3.0)
    assert pipe.p == 0.0, "clamped at 0"
    fixed = AugmentPipe(("translation",), p=0.5, batch_images=8)
    run_interval(fixed, 3.0)
    assert fixed.p == 0.5 and fixed.scalars() == {"aug_p": 0.5}, "without a target p stays put"


# -- the loop --------------------------------------------------------------------------------
def tiny(out: Path, variant: str = "dcgan", **kw) -> TrainConfig:
    base = dict(variant=variant, data="digits", out=str(out), steps=1, batch_size=8, threads=1, sample_every=100,
                ckpt_every=100, log_every=1, augment="color,translation,cutout",
                model={"width": 8, "latent_dim": 16, "image_size": 16})
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture()
def d_calls():
    """Every call of a wrapped discriminator and of the network inside it, in order."""
    calls: list[tuple[str, torch.Tensor]] = []
    inner: set[int] = set()

    def hook(module: nn.Module, args: tuple) -> None:
        if isinstance(module, AugmentedDiscriminator):
            inner.add(id(module.module))
            calls.append(("wrapper", args[0]))
        elif id(module) in inner:
            calls.append((type(module).__name__, args[0]))

    handle = nn.modules.module.register_module_forward_pre_hook(hook)
    yield calls
    handle.remove()


def unpaired_root(tmp_path: Path) -> Path:
    if not (APPLE2ORANGE / "trainA").is_dir():
        pytest.skip(f"{APPLE2ORANGE} is absent")
    root = tmp_path / "a2o"
    for sub in ("trainA", "trainB"):
        (root / sub).mkdir(parents=True)
        for p in sorted((APPLE2ORANGE / sub).iterdir())[:2]:
            shutil.copy(p, root / sub / p.name)
    return root


VARIANTS = {
    "dcgan": dict(r1_weight=1.0, pool_size=4),
    "cgan": dict(r1_weight=1.0),
    "stylegan": dict(pool_size=4, model={"image_size": 16, "latent_dim": 16, "w_dim": 16, "fmap_base": 64,
                                         "fmap_max": 16}),
    "aae": dict(model={"width": 8, "image_size": 16, "d_hidden": 32, "image_adv": 0.1}),
    "cyclegan": dict(loss="lsgan", pool_size=2, batch_size=1, image_size=32,
                     model={"ngf": 4, "n_blocks": 1, "ndf": 4}),
    "wgan-gp": dict(model={"width": 8, "latent_dim": 16, "image_size": 16, "critic_steps": 1}),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_trains_with_every_image_its_discriminators_see_augmented(variant, tmp_path, d_calls):
    kw = dict(VARIANTS[variant])
    if variant == "cyclegan":
        kw.update(data="unpaired", data_root=str(unpaired_root(tmp_path)))
    summary = train(tiny(tmp_path / "run", variant, **kw), progress=False)
    assert summary["steps"] == 1
    pairs = list(zip(d_calls[::2], d_calls[1::2], strict=True))
    assert pairs and all(w == "wrapper" and d != "wrapper" for (w, _), (d, _) in pairs), "each D call is wrapped"
    for (_, given), (name, seen) in pairs:
        if given.dim() == 4:
            assert seen.shape == given.shape and not torch.equal(seen, given), f"{name} saw an unaugmented image"
        else:
            assert seen is given, f"{name} (a code discriminator) must see its input as it is"
    if variant == "aae":
        assert {n for (_, g), (n, _) in pairs if g.dim() == 2} == {"CodeDiscriminator"}
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert "1,aug_p,1" in rows


def test_resume_restores_the_adapted_p_and_ends_where_an_uninterrupted_run_does(tmp_path):
    kw = dict(ada_target=0.6, ada_kimg=0.05, log_every=4)  # 8 images x 4 steps moves p by 0.64
    train(tiny(tmp_path / "full", steps=12, **kw), progress=False)
    train(tiny(tmp_path / "cut", steps=6, **kw), progress=False)
    train(tiny(tmp_path / "cut", steps=12, resume=True, **kw), progress=False)
    a, b = (torch.load(tmp_path / r / "checkpoints" / "latest.pt", weights_only=False) for r in ("full", "cut"))
    assert a["augment"] == b["augment"] and len(a["augment"]) == 1
    assert 0 < a["augment"][0]["p"] <= 1 and a["augment"][0]["rt"] is not None, "ADA moved p from its start, 0"
    for k, v in a["nets"]["D"].items():
        assert torch.equal(v, b["nets"]["D"][k]), f"D.{k} differs after resume"
    rows = (tmp_path / "cut" / "metrics.csv").read_text().splitlines()
    assert any(",ada_rt," in r for r in rows) and any(r.startswith("8,aug_p,") for r in rows)


def test_a_run_from_before_resumes_with_augmentation_and_exports(tmp_path):
    from training.export import export_run

    train(tiny(tmp_path, steps=2, augment=""), progress=False)
    train(tiny(tmp_path, steps=3, resume=True), progress=False)
    state = torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=False)
    assert state["step"] == 3 and state["augment"][0]["p"] == 1.0
    assert not any(k.startswith("module.") for k in state["nets"]["D"])
    dest = export_run(tmp_path, "aug-dcgan", out=tmp_path / "art", store=False, fp16=False)
    assert (dest / "generator.onnx").exists()


@pytest.mark.parametrize(("argv", "needle"), [
    (["--augment", "color,blur"], "unknown augmentation policy 'blur'"),
    (["--ada-target", "0.6"], "needs --augment"),
    (["--augment", "cutout", "--augment-p", "1.5"], "augment_p"),
])
def test_bad_augmentation_flags_are_one_clear_error(tmp_path, capsys, argv, needle):
    assert cli(["train", "dcgan", "--data", "digits", "--out", str(tmp_path), *argv]) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "checkpoints").exists()


def test_an_empty_augment_flag_is_off():
    assert TrainConfig(variant="dcgan", augment=None).augment == ""
    assert TrainConfig(variant="dcgan", augment=["cutout", "color"]).augment == "cutout,color"


def test_torchrun_two_processes_keep_one_p_and_checkpoint_each_ranks_ada_state(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "training", "train", "dcgan", "--data", "digits", "--steps", "6", "--batch-size", "8",
           "--out", str(out), "--no-progress", "--sample-every", "6", "--model", "width=8",
           "--model", "latent_dim=16", "--model", "image_size=16", "--threads", "1",
           "--augment", "translation,cutout", "--augment-p", "0.5", "--ada-target", "0.6", "--ada-kimg", "0.05"]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    aug = torch.load(out / "checkpoints" / "latest.pt", weights_only=False)["augment"]
    assert len(aug) == 2 and aug[0]["p"] == aug[1]["p"] and aug[0]["rt"] == aug[1]["rt"] is not None
    assert aug[0]["p"] in (0.0, 1.0), "one ADA update (16 images x 4 steps / 50) moved p from 0.5 to a bound"
    assert aug[0]["steps"] == aug[1]["steps"] == 2, "the unfinished interval is checkpointed per rank"
