"""Device and precision (issue 16), on the CPU: resolution, bf16 autocast with exact resume, the
CLI's one-line refusal of CUDA where there is none, and checkpoints written on another device."""

from __future__ import annotations

import contextlib
import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from training import distributed
from training.__main__ import main as cli
from training.config import TrainConfig
from training.device import DeviceError, resolve_device, resolve_precision
from training.loop import train

ROOT = Path(__file__).resolve().parents[1]
TINY = {"width": 8, "latent_dim": 16, "image_size": 16}
NO_CUDA = not torch.cuda.is_available()


def tiny_cfg(out: Path, steps: int, **kw) -> TrainConfig:
    base = dict(variant="dcgan", data="digits", out=str(out), steps=steps, batch_size=16, model=TINY, device="cpu",
                ckpt_every=100, sample_every=100, log_every=1, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def final_state(out: Path) -> dict:
    return torch.load(out / "checkpoints" / "latest.pt", map_location="cpu", weights_only=False)


def losses(out: Path) -> list[tuple[str, str, str]]:
    with (out / "metrics.csv").open() as fh:
        return [(r["step"], r["name"], r["value"]) for r in csv.DictReader(fh) if r["name"].startswith("loss")]


def assert_same_weights(a: dict, b: dict) -> None:
    for group in ("nets", "ema"):
        for name in a[group]:
            for k, v in a[group][name].items():
                assert torch.equal(v, b[group][name][k]), f"{group}.{name}.{k} differs"


# -- resolution ----------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "local_rank", "world", "count", "want"), [
    ("auto", 0, 1, 0, "cpu"),
    ("auto", 0, 1, 2, "cuda:0"),
    ("auto", 1, 2, 2, "cuda:1"),  # torchrun: one device per local rank
    ("cuda", 3, 4, 4, "cuda:3"),
    ("cuda:1", 0, 1, 2, "cuda:1"),
    ("cpu", 0, 1, 2, "cpu"),
    ("CPU", 1, 2, 0, "cpu"),
])
def test_devices_resolve_as_documented(spec, local_rank, world, count, want):
    assert resolve_device(spec, local_rank, world, cuda_devices=count) == torch.device(want)


@pytest.mark.parametrize(("spec", "local_rank", "world", "count", "message"), [
    ("cuda", 0, 1, 0, "CUDA is not available on this machine"),
    ("cuda:0", 0, 1, 0, "CUDA is not available on this machine"),
    ("cuda:2", 0, 1, 2, "cuda:2 asked for, but this machine has 2 CUDA device"),
    ("cuda", 2, 3, 2, "cuda:2 asked for, but this machine has 2 CUDA device"),
    ("cuda:1", 0, 2, 2, "under torchrun each process takes cuda:LOCAL_RANK"),
    ("gpu", 0, 1, 1, "must be auto, cpu, cuda or cuda:N"),
])
def test_impossible_devices_are_refused_with_the_reason(spec, local_rank, world, count, message):
    with pytest.raises(DeviceError, match=message):
        resolve_device(spec, local_rank, world, cuda_devices=count)


def test_the_machine_itself_is_asked_when_no_count_is_given():
    got = resolve_device("auto", 0, 1)
    assert got.type == ("cpu" if NO_CUDA else "cuda")


def test_precisions_map_to_autocast_dtypes_and_fp16_alone_scales_losses():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    fp32 = resolve_precision("fp32", cpu)
    assert fp32.dtype is None and not fp32.scaler and fp32.grad_scaler() is None
    bf16 = resolve_precision("bf16", cpu)
    assert bf16.dtype is torch.bfloat16 and not bf16.scaler
    half = resolve_precision("fp16", cuda)  # a device object needs no GPU to exist
    assert half.dtype is torch.float16 and half.scaler
    assert resolve_precision("bf16", cuda, bf16_supported=True).dtype is torch.bfloat16
    with pytest.raises(DeviceError, match="fp16 needs a CUDA device.*use --precision bf16"):
        resolve_precision("fp16", cpu)
    with pytest.raises(DeviceError, match="does not support bfloat16"):
        resolve_precision("bf16", cuda, bf16_supported=False)
    with pytest.raises(DeviceError, match="must be one of fp32, bf16, fp16"):
        resolve_precision("int8", cpu)
    # the contexts really change what a matmul computes in
    a = torch.randn(4, 4)
    with bf16.autocast():
        assert (a @ a).dtype is torch.bfloat16
    with fp32.autocast():
        assert (a @ a).dtype is torch.float32


def test_process_groups_use_nccl_between_gpus_and_gloo_between_cpus():
    assert distributed.backend_for(torch.device("cuda", 1)) == "nccl"
    assert distributed.backend_for(torch.device("cpu")) == "gloo"


# -- bf16 on the CPU -----------------------------------------------------------------------
def test_bf16_trains_checkpoints_and_resumes_bit_exactly(tmp_path):
    kw = dict(precision="bf16", r1_weight=1.0, pool_size=8, d_steps=2)  # R1: double backward under autocast
    train(tiny_cfg(tmp_path / "full", 4, **kw), progress=False)
    train(tiny_cfg(tmp_path / "cut", 2, **kw), progress=False)
    train(tiny_cfg(tmp_path / "cut", 4, resume=True, **kw), progress=False)
    full, cut = final_state(tmp_path / "full"), final_state(tmp_path / "cut")
    assert full["precision"] == cut["precision"] == "bf16" and full["device"] == "cpu"
    assert full["step"] == cut["step"] == 4
    assert_same_weights(full, cut)
    assert losses(tmp_path / "full") == losses(tmp_path / "cut")
    assert all(p.dtype == torch.float32 for p in full["nets"]["G"].values() if p.is_floating_point()), \
        "autocast computes in bf16 but keeps fp32 weights"
    # autocast was really on: the same run in fp32 ends elsewhere
    train(tiny_cfg(tmp_path / "fp32", 4, **{**kw, "precision": "fp32"}), progress=False)
    fp32 = final_state(tmp_path / "fp32")
    assert not torch.equal(fp32["nets"]["G"]["net.0.weight"], full["nets"]["G"]["net.0.weight"])


# -- the CLI's refusals --------------------------------------------------------------------
@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_cli_refuses_cuda_without_cuda_in_one_line_with_exit_code_2(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "training", "train", "dcgan", "--data", "digits", "--steps", "1",
                           "--device", "cuda", "--out", str(out), "--no-progress"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --device cuda: CUDA is not available"), proc.stderr
    assert "--device cpu" in lines[0]
    assert not out.exists(), "nothing is written for a run that cannot start"


def test_cli_refuses_fp16_on_the_cpu_and_says_what_to_use(tmp_path, capsys):
    rc = cli(["train", "dcgan", "--data", "digits", "--steps", "1", "--device", "cpu", "--precision", "fp16",
              "--out", str(tmp_path / "run"), "--no-progress"])
    assert rc == 2
    assert "error: --precision fp16 needs a CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# -- checkpoints from another device -------------------------------------------------------
_FAKE_LOCATION: list[str] = []


def _fake_tag(storage: object) -> str | None:
    return _FAKE_LOCATION[-1] if _FAKE_LOCATION else None


def _never(storage: object, location: str) -> None:
    return None  # leave restoring to torch's own deserializers, which fail for a CUDA tag here


torch.serialization.register_package(1, _fake_tag, _never)  # public API; inert unless a test asks


@contextlib.contextmanager
def saved_as_if_on(location: str) -> Iterator[None]:
    """``torch.save`` inside tags every storage with ``location``, as a run on that device would."""
    _FAKE_LOCATION.append(location)
    try:
        yield
    finally:
        _FAKE_LOCATION.pop()


def test_a_checkpoint_written_on_cuda_resumes_and_exports_on_the_cpu(tmp_path):
    from training.export import export_run

    train(tiny_cfg(tmp_path / "full", 4), progress=False)
    run = tmp_path / "moved"
    train(tiny_cfg(run, 2), progress=False)
    latest = run / "checkpoints" / "latest.pt"
    with saved_as_if_on("cuda:0"):
        torch.save(final_state(run), latest)
    if NO_CUDA:  # the file really says cuda: a plain load here fails
        with pytest.raises(RuntimeError, match="(?i)cuda"):
            torch.load(latest, weights_only=False)
    train(tiny_cfg(run, 4, resume=True), progress=False)
    assert_same_weights(final_state(tmp_path / "full"), final_state(run))
    with saved_as_if_on("cuda:0"):
        torch.save(final_state(run), latest)
    dest = export_run(run, "moved", tmp_path / "artifact", "latest", store=False, fp16=False)
    assert (dest / "generator.onnx").stat().st_size > 0


# -- fp16's loss-scaling mechanics, with torch's CPU GradScaler (the loop uses the CUDA one) --
def test_penalties_under_a_gradient_scaler_equal_the_unscaled_ones():
    from training.losses import gradient_penalty, penalty_scaler, r1_penalty

    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    real, fake = torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2)
    class CountingScaler(torch.amp.GradScaler):  # the real scaler, counting what it is asked to scale
        calls = 0

        def scale(self, outputs):  # type: ignore[override]
            CountingScaler.calls += 1
            return super().scale(outputs)

    scaler = CountingScaler("cpu", init_scale=2.0**12)
    for i, penalty in enumerate( (lambda: r1_penalty(critic, real), lambda: gradient_penalty(critic, real, fake)), 1):
        torch.manual_seed(1)  # the same interpolation weights for GP
        plain = penalty()
        torch.manual_seed(1)
        with penalty_scaler(scaler):
            scaled = penalty()
        assert CountingScaler.calls == i, "the input gradient was taken through the scaler"
        assert torch.allclose(plain, scaled, rtol=1e-5), (plain, scaled)
        # and the double backward goes through the scaled path
        (g_plain,) = torch.autograd.grad(plain, critic[1].weight)
        (g_scaled,) = torch.autograd.grad(scaled, critic[1].weight)
        assert torch.allclose(g_plain, g_scaled, rtol=1e-4, atol=1e-7)


def test_a_scaled_optimizer_steps_k_times_per_step_and_skips_non_finite_gradients():
    net = torch.nn.Linear(3, 1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    opt = distributed.AveragedOptimizer(torch.optim.SGD(net.parameters(), lr=0.1), scaler)
    before = net.weight.detach().clone()
    for _ in range(2):  # k discriminator steps in one train_step: an update between steps makes this legal
        opt.zero_grad(set_to_none=True)
        scaler.scale(net(torch.ones(2, 3)).sum()).backward()
        opt.step()
    # two SGD steps on the *unscaled* gradient (2 per weight): 2 * 0.1 * 2 = 0.4
    assert torch.allclose(net.weight.detach(), before - 0.4)
    moved = net.weight.detach().clone()
    opt.zero_grad(set_to_none=True)
    scaler.scale(net(torch.full((2, 3), float("inf"))).sum()).backward()
    opt.step()
    assert torch.equal(net.weight.detach(), moved), "a step on inf gradients is skipped"
    assert scaler.get_scale() < 2.0**8, "and the scale backs off"
