"""benchmarks/gpu_check.sh and its Python driver, on the CPU: the measuring helpers, and a dry run
of the whole path (train, export, a real ``bentoml serve``, one JSON line) that leaves nothing running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402


def _metrics(path: Path, rows: list[tuple[int, str, float]]) -> Path:
    path.write_text("step,name,value\n" + "".join(f"{s},{n},{v:.6g}\n" for s, n, v in rows))
    return path


def test_steps_per_s_leaves_the_warm_up_out(tmp_path):
    # 10 steps took 2 s (start-up), the next 90 took 9 s: 10 steps/s after warm-up, 9.09 overall
    rows = [(10, "it_per_s", 5.0), (10, "loss_d", 0.7), (100, "it_per_s", 100 / 11), (100, "loss_g", 1.2)]
    assert gpu_check.steps_per_s(_metrics(tmp_path / "m.csv", rows)) == pytest.approx(10.0, rel=1e-4)
    assert gpu_check.steps_per_s(_metrics(tmp_path / "one.csv", [(5, "it_per_s", 3.5)])) == 3.5
    with pytest.raises(ValueError, match="no it_per_s"):
        gpu_check.steps_per_s(_metrics(tmp_path / "none.csv", [(5, "loss_d", 1.0)]))


def test_summary_compares_with_the_cpu_and_trusts_only_legs_on_their_provider():
    train = {"cuda_fp32": 100.0, "cuda_bf16": 150.0, "cpu_fp32": 5.0}
    serve = {"cuda_fp16": {"images_per_s": 50000.0, "provider_ok": True},
             "cuda_fp32": {"images_per_s": 30000.0, "provider_ok": True},
             "cpu_fp32": {"images_per_s": 4000.0, "provider_ok": True}}
    got = gpu_check.summarize(train, serve, "cuda", gpu="H200")
    assert got["check"] == "gpu" and got["gpu"] == "H200"
    assert got["speedup"] == {"train_vs_cpu": 30.0, "serve_fp16_vs_cpu": 12.5}
    assert got["goals_met"] == {"train_vs_cpu": True, "serve_fp16_vs_cpu": True}
    # ONNX Runtime fell back to the CPU in the "cuda" leg: no speed-up is claimed from it
    serve["cuda_fp16"]["provider_ok"] = False
    slow = gpu_check.summarize({**train, "cuda_bf16": 60.0}, serve, "cuda:0")
    assert slow["speedup"] == {"train_vs_cpu": 20.0, "serve_fp16_vs_cpu": None}
    assert slow["goals_met"] == {"train_vs_cpu": True, "serve_fp16_vs_cpu": False}
    assert gpu_check.summarize({"cpu_fp32": 5.0}, {}, "cpu")["goals_met"] == {}


def test_asking_for_cuda_without_cuda_is_refused_before_any_work(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert gpu_check.main(["--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_the_shell_script_parses():
    subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_check.sh")], check=True)


def _servers_of(work: Path) -> list[int]:
    """Live processes whose environment points at ``work`` (the dry run's BentoML home is inside it)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if str(work).encode() in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_dry_run_on_the_cpu_trains_exports_serves_and_prints_one_json_line(tmp_path):
    work = tmp_path / "work"
    venv = Path(sys.executable).parent.parent  # the test venv, used as it is (NO_INSTALL)
    env = {**os.environ, "NO_INSTALL": "1", "VENV": str(venv), "JSON_OUT": str(tmp_path / "out.json")}
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--steps", "3", "--data", "digits",
         "--model", "width=8", "--model", "latent_dim=16", "--model", "image_size=16", "--batch-size", "16",
         "--serve", "cpu_fp32", "--calls", "4", "--work", str(work)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[-1]
    result = json.loads(line)
    assert json.loads((tmp_path / "out.json").read_text()) == result
    assert result["device"] == "cpu" and result["data"] == "digits"
    assert set(result["train_steps_per_s"]) == {"cpu_fp32", "cpu_bf16"}
    assert all(v > 0 for v in result["train_steps_per_s"].values())
    leg = result["serve_n64_c8"]["cpu_fp32"]
    assert leg["provider"] == "CPUExecutionProvider" and leg["precision"] == "fp32" and leg["provider_ok"]
    assert leg["images_per_s"] > 0 and leg["p99_ms"] >= leg["p50_ms"] > 0
    assert (work / "artifact" / "generator.fp16.onnx").exists(), "exported with its fp16 graph"
    ort_runs = result["ort_in_process_n64"]
    assert set(ort_runs) == {"cpu_fp32", "cpu_fp16"}
    assert all(r["provider"] == "CPUExecutionProvider" and r["iobinding_images_per_s"] > 0 for r in ort_runs.values())
    assert _servers_of(work) == [], "the script stopped the server it started"
