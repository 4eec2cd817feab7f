"""The GPU check of issue 16, driven by benchmarks/gpu_check.sh: train, export, serve, measure, one JSON line.

Trains dcgan for ``--steps`` on ``--device`` at fp32 and bf16 and for ``--cpu-steps`` on the CPU
(the same machine's baseline), exports the device's fp32 run with its fp16 graphs, serves it with
real ``bentoml serve`` processes (GANZOO_DEVICE/GANZOO_PRECISION per leg) and times
``GET /generate?n=64`` at concurrency 8. Each server is stopped (its whole process group) before
the next starts, and on any exit. The served provider and precision are read back from
``GET /models``: a CUDA leg that ONNX Runtime quietly ran on the CPU is reported as such, not as
a GPU figure.

    python benchmarks/gpu_check.py --device cuda --steps 300          # what gpu_check.sh runs
    python benchmarks/gpu_check.py --device cpu --steps 3 --cpu-steps 3 --data digits --model width=8 \\
        --serve cpu_fp32 --calls 4                                    # the dry run the tests use
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_generate import _s, bench_http, free_port, timed  # noqa: E402

MODEL = "gpucheck"
# serving legs: name -> (GANZOO_DEVICE, GANZOO_PRECISION)
LEGS = {"cuda_fp32": ("cuda", "fp32"), "cuda_fp16": ("cuda", "fp16"), "cpu_fp32": ("cpu", "fp32"),
        "cpu_fp16": ("cpu", "fp16")}
GOALS = {"train_vs_cpu": 20.0, "serve_fp16_vs_cpu": 10.0}  # the goals, x the CPU's figure


# -- pure helpers (unit-tested) --------------------------------------------------------------
def steps_per_s(metrics_csv: Path) -> float:
    """Training steps per second after warm-up, from the loop's own ``it_per_s`` scalars.

    The loop logs ``it_per_s = steps so far / seconds since the loop began`` (set-up, data
    loading and checkpoints outside it). From the first and the last logged rows, (s1, r1) and
    (s2, r2), the rate between them is (s2 - s1) / (s2/r2 - s1/r1): the first logged steps,
    which pay CUDA start-up and kernel selection, are left out. One row: its rate as it is."""
    rows: dict[int, float] = {}
    with Path(metrics_csv).open() as fh:
        for row in csv.DictReader(fh):
            if row["name"] == "it_per_s":
                rows[int(row["step"])] = float(row["value"])
    if not rows:
        raise ValueError(f"{metrics_csv}: no it_per_s row (was the run logged?)")
    (s1, r1), (s2, r2) = min(rows.items()), max(rows.items())
    if s2 == s1:
        return r2
    return (s2 - s1) / (s2 / r2 - s1 / r1)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def summarize(train: dict[str, float], serve: dict[str, dict[str, Any]], device: str, **info: Any) -> dict[str, Any]:
    """The one JSON object: figures, speed-ups over this machine's CPU, and the issue's goals.

    ``train``: leg (e.g. ``cuda_bf16``) -> steps/s; ``serve``: leg -> {images_per_s, provider,
    precision, ...}. A serving leg whose server did not run on the provider its name says
    (``provider_ok`` false) gives no speed-up: its figure is not what the leg claims to be.
    """
    dev = device.split(":")[0]
    best_train = max((v for k, v in train.items() if k.startswith(dev + "_")), default=None)
    fp16 = serve.get(f"{dev}_fp16", {})
    fp16_ips = fp16.get("images_per_s") if fp16.get("provider_ok") else None
    cpu_serve = serve.get("cpu_fp32", {}).get("images_per_s")
    speedups = {
        "train_vs_cpu": ratio(best_train, train.get("cpu_fp32")),
        "serve_fp16_vs_cpu": ratio(fp16_ips, cpu_serve),
    }
    goals = {k: (v is not None and v >= GOALS[k]) for k, v in speedups.items()} if dev != "cpu" else {}
    return {"check": "gpu", **info, "device": device, "train_steps_per_s": {k: round(v, 2) for k, v in train.items()},
            "serve_n64_c8": serve, "speedup": speedups, "goals_met": goals}


# -- training and export -----------------------------------------------------------------------
def train_leg(out: Path, device: str, precision: str, steps: int, data: str, data_root: str | None,
              model: dict[str, Any], batch_size: int) -> float:
    """Train one leg; steps/s from its scalars, logged every tenth of the run (the first tenth is warm-up)."""
    from training.config import TrainConfig
    from training.loop import train

    cfg = TrainConfig(variant="dcgan", data=data, data_root=data_root, out=str(out), steps=steps,
                      batch_size=batch_size, device=device, precision=precision, model=model,
                      log_every=max(1, steps // 10), sample_every=steps, ckpt_every=steps, eval_every=0)
    train(cfg, progress=False)
    return steps_per_s(out / "metrics.csv")


# -- serving -----------------------------------------------------------------------------------
@contextlib.contextmanager
def server(home: Path, env_extra: dict[str, str], log: Path) -> Iterator[str]:
    """A real ``bentoml serve`` in its own process group; the whole group is ended on exit."""
    import httpx

    port = free_port()
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True", "PYTHONPATH": str(ROOT),
           "GANZOO_MODELS": MODEL, **env_extra}
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "serving.service:Ganzoo", "--host",
                                 "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"bentoml serve not ready in 300 s: {log.read_text()[-2000:]}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.25)  # wakes at once if the server dies
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def serve_leg(home: Path, leg: str, calls: int, log: Path) -> dict[str, Any]:
    import httpx

    device, precision = LEGS[leg]
    with server(home, {"GANZOO_DEVICE": device, "GANZOO_PRECISION": precision}, log) as url:
        info = next(m for m in httpx.get(f"{url}/models", timeout=30).json() if m["name"] == MODEL)
        stats = bench_http(url, MODEL, 64, calls, 8)
    want = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    return {"images_per_s": round(stats["images_per_s"], 1), "p50_ms": round(stats["p50_ms"], 1),
            "p99_ms": round(stats["p99_ms"], 1), "provider": info.get("provider"),
            "precision": info.get("precision"),
            "provider_ok": info.get("provider") == want and info.get("precision") == precision}


def ort_leg(artifact: Path, file: str, device: str, calls: int) -> dict[str, Any]:
    """In-process ONNX Runtime at n=64: ``session.run`` against ``run_with_iobinding``, the same
    session and inputs, so the figure says whether IO binding helps on this machine."""
    import numpy as np
    import onnxruntime as ort

    from serving.iobinding import run_with_iobinding

    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    sess = ort.InferenceSession(str(artifact / file), providers=providers)
    z_in = sess.get_inputs()[0]
    z = np.random.default_rng(0).standard_normal((64, z_in.shape[1])).astype(np.float32)
    out = sess.get_outputs()[0].name
    plain = _s(timed(lambda: sess.run([out], {z_in.name: z}), calls), 64)
    bound = _s(timed(lambda: run_with_iobinding(sess, {z_in.name: z}, out), calls), 64)
    return {"provider": sess.get_providers()[0], "run_images_per_s": round(plain["images_per_s"], 1),
            "iobinding_images_per_s": round(bound["images_per_s"], 1)}


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    import onnxruntime as ort

    return {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "gpu": gpu, "cpu": cpu,
            "cpu_cores": os.cpu_count(), "torch": torch.__version__, "onnxruntime": ort.__version__,
            "ort_providers": ort.get_available_providers()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="training/serving device: cuda, cuda:N or cpu (dry run)")
    p.add_argument("--steps", type=int, default=300, help="dcgan steps per precision on --device")
    p.add_argument("--cpu-steps", type=int, default=50, help="dcgan steps of the CPU baseline")
    p.add_argument("--precisions", default="fp32,bf16", help="training precisions on --device")
    p.add_argument("--data", default="mnist")
    p.add_argument("--data-root", default=str(ROOT / ".." / "shared" / "data" / "mnist"),
                   help="MNIST folder (default ../shared/data/mnist); when missing, scikit-learn's digits instead")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--model", action="append", default=[], metavar="KEY=VALUE", help="dcgan hyperparameter")
    p.add_argument("--serve", help="serving legs, comma list (default: cuda_fp32,cuda_fp16,cpu_fp32 on CUDA)")
    p.add_argument("--calls", type=int, default=40, help="GET /generate calls per serving leg")
    p.add_argument("--work", help="folder for runs, artifact and BentoML home (default: a temporary one)")
    p.add_argument("--json-out", help="write the JSON line here too")
    args = p.parse_args(argv)

    import yaml

    from training.device import DeviceError, resolve_device

    try:
        device = str(resolve_device(args.device, 0, 1))
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data, data_root = args.data, args.data_root
    if data != "digits" and not Path(data_root).exists():
        print(f"note: {data_root} not found; training on scikit-learn's digits instead", file=sys.stderr)
        data, data_root = "digits", None
    model = {k: yaml.safe_load(v) for k, _, v in (m.partition("=") for m in args.model)}
    dev = device.split(":")[0]
    legs = (args.serve or ("cuda_fp32,cuda_fp16,cpu_fp32" if dev == "cuda" else "cpu_fp32,cpu_fp16")).split(",")
    unknown = [leg for leg in legs if leg not in LEGS]
    if unknown:
        print(f"error: unknown serving leg(s) {', '.join(unknown)}; known: {', '.join(LEGS)}", file=sys.stderr)
        return 2

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the servers' finally blocks run
    work_ctx = contextlib.nullcontext(args.work) if args.work else tempfile.TemporaryDirectory(prefix="gpu-check-")
    with work_ctx as w:
        work = Path(w)
        work.mkdir(parents=True, exist_ok=True)
        train: dict[str, float] = {}
        for precision in args.precisions.split(","):
            train[f"{dev}_{precision}"] = train_leg(work / f"run-{dev}-{precision}", device, precision, args.steps,
                                                    data, data_root, model, args.batch_size)
        if dev != "cpu" or "cpu_fp32" not in train:
            train["cpu_fp32"] = train_leg(work / "run-cpu-fp32", "cpu", "fp32", args.cpu_steps, data, data_root,
                                          model, args.batch_size)
        from training.export import export_run

        artifact = export_run(work / f"run-{dev}-{args.precisions.split(',')[0]}", MODEL, work / "artifact", "latest",
                              store=False, fp16=True)
        home = work / "bentoml"
        env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True", "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-m", "serving.import_models", str(artifact)], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        serve = {leg: serve_leg(home, leg, args.calls, work / f"server-{leg}.log") for leg in legs}
        ort_runs = {f"{dev}_{name}": ort_leg(artifact, file, dev, args.calls)
                    for name, file in (("fp32", "generator.onnx"), ("fp16", "generator.fp16.onnx"))
                    if (artifact / file).exists()}
        result = summarize(train, serve, device, **machine(), data=data, steps=args.steps, cpu_steps=args.cpu_steps)
        result["ort_in_process_n64"] = ort_runs
    line = json.dumps(result, sort_keys=False)
    print(line, flush=True)
    if args.json_out:
        Path(args.json_out).write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
