"""Generation speed, one model and batch, three ways in one run.

PyTorch eager in-process (the run's EMA generator), ONNX Runtime in-process (the exported
graph), and the HTTP service (a real ``bentoml serve`` on 127.0.0.1) under concurrency 1 and
8. Reports images/s and p50/p99 latency for n=1 and n=64, with the date and the machine.

    python benchmarks/bench_generate.py --artifact serving/pretrained/dcgan --run runs/pretrained-dcgan \
        --out docs/PERFORMANCE.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]




def timed(fn, calls: int, concurrency: int = 1) -> tuple[list[float], float]:
    def one(_: int) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    fn()  # warm-up
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        lat = list(pool.map(one, range(calls)))
    return lat, time.perf_counter() - t0


def bench_torch(run: Path, n: int, calls: int) -> dict[str, float]:
    import torch

    from training.export import load_run

    variant, nets, _ = load_run(run)
    G = nets["G"].eval()

    def fn() -> None:
        with torch.no_grad():
            G(torch.randn(n, variant.latent_dim))

    return _s(timed(fn, calls), n)


def _s(result: tuple[list[float], float], n: int) -> dict[str, float]:
    """p50/p99 latency and throughput from per-call latencies and the wall time of all calls."""
    latencies, wall = result
    lat = np.asarray(latencies) * 1000
    return {"p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "images_per_s": n * len(latencies) / wall}


def bench_ort(artifact: Path, n: int, calls: int, file: str = "generator.onnx",
              providers: list[str] | None = None) -> dict[str, float]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(artifact / file), providers=providers or ["CPUExecutionProvider"])
    latent = sess.get_inputs()[0].shape[1]
    z = np.random.default_rng(0).standard_normal((n, latent)).astype(np.float32)
    return _s(timed(lambda: sess.run(None, {"z": z}), calls), n)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(artifact: Path, home: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    env = {**os.environ, "BENTOML_HOME": str(home / "bentoml"), "HOME": str(home), "XDG_CACHE_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "serving.import_models", str(artifact)], env=env, check=True, cwd=ROOT)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "serving.service:Ganzoo", "--host",
                             "127.0.0.1", "--port", str(port)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError("bentoml serve exited during start-up")
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("bentoml serve did not become ready in 120 s")


def bench_http(url: str, model: str, n: int, calls: int, concurrency: int) -> dict[str, float]:
    import httpx

    client = httpx.Client(timeout=60)

    def fn() -> None:
        r = client.get(f"{url}/generate", params={"model": model, "n": n})
        r.raise_for_status()

    return _s(timed(fn, calls, concurrency), n)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifact", default="serving/pretrained/dcgan")
    p.add_argument("--run", default="runs/pretrained-dcgan", help="training run for the PyTorch eager row (optional)")
    p.add_argument("--model", default="dcgan")
    p.add_argument("--calls", type=int, default=60)
    p.add_argument("--out", help="write the markdown table here as well")
    args = p.parse_args()
    import onnxruntime as ort

    from serving.providers import pick_providers

    artifact, run = ROOT / args.artifact, ROOT / args.run
    providers = pick_providers(ort.get_available_providers())
    rows: list[tuple[str, int, int, dict[str, float]]] = []
    for n in (1, 64):
        if (run / "checkpoints").exists():
            rows.append(("PyTorch eager, in-process", n, 1, bench_torch(run, n, args.calls)))
        rows.append(("ONNX Runtime, in-process", n, 1, bench_ort(artifact, n, args.calls, providers=providers)))
        if (artifact / "generator.fp16.onnx").exists():
            rows.append(("ONNX Runtime fp16 graph, in-process", n, 1,
                         bench_ort(artifact, n, args.calls, "generator.fp16.onnx", providers)))
    home = Path(tempfile.mkdtemp(prefix="ganzoo-bench-"))
    proc, url = start_server(artifact, home)
    try:
        for n in (1, 64):
            for c in (1, 8):
                rows.append((f"HTTP GET /generate (PNG), concurrency {c}", n, c, bench_http(url, args.model, n,
                                                                                          args.calls, c)))
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(home, ignore_errors=True)
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        f"## `{args.model}` generation, {dt.date.today().isoformat()}",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores; ONNX Runtime providers {', '.join(providers)}. "
        f"{args.calls} calls per row after one warm-up call.",
        "",
        "| path | n | images/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {n} | {s['images_per_s']:.0f} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} |"
              for name, n, _, s in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:  # replace only this script's section: the others (serving engine, GPU) stay
        import re

        out = ROOT / args.out
        begin, end = "<!-- bench_generate:begin -->", "<!-- bench_generate:end -->"
        section = f"{begin}\n{text}{end}"
        doc = out.read_text() if out.exists() else "# Performance\n"
        if begin in doc:
            doc = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: section, doc, flags=re.S)
        else:
            doc = doc.rstrip() + "\n\n" + section + "\n"
        out.write_text(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
