"""The serving engine against the in-process limit, one run, one machine (issue 18's table).

Reference model: a textbook 64x64 RGB DCGAN generator (z [B, 100, 1, 1], 512-256-128-64
channels) built from a seeded torch module, exported to ONNX and imported with
``python -m serving.import_models --onnx`` like any foreign generator; plus the shipped dcgan.
For each: ONNX Runtime in-process at batch 1, 8, 32, 64; the real service (``bentoml serve``
on 127.0.0.1) at n=1 with concurrency 1, 8, 32 and n=64 with concurrency 1 and 8, as npy
and png; the worst wait at concurrency 128 of n=64 (requests beyond capacity get 503); the
service's RSS; and PNG zlib levels (size vs time). The load generator runs on the same
2 cores as the service, so served figures are a lower bound.

    python benchmarks/bench_serving.py --out docs/PERFORMANCE.md
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BEGIN, END = "<!-- bench_serving:begin -->", "<!-- bench_serving:end -->"


def reference_onnx(path: Path) -> None:
    """The textbook DCGAN generator (Radford et al. 2016), seeded, in eval mode."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    def up(i: int, o: int, stride: int = 2, pad: int = 1) -> list[nn.Module]:
        return [nn.ConvTranspose2d(i, o, 4, stride, pad, bias=False), nn.BatchNorm2d(o), nn.ReLU(True)]

    g = nn.Sequential(*up(100, 512, 1, 0), *up(512, 256), *up(256, 128), *up(128, 64),
                      nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False), nn.Tanh()).eval()
    with torch.no_grad():
        torch.onnx.export(g, (torch.randn(2, 100, 1, 1),), str(path), input_names=["z"], output_names=["image"],
                          dynamic_axes={"z": {0: "batch"}, "image": {0: "batch"}}, dynamo=False)


def in_process(graph: Path, batch: int, seconds: float = 3.0) -> dict[str, float]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    shape = [batch, *[d if isinstance(d, int) else 1 for d in sess.get_inputs()[0].shape[1:]]]
    z = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    sess.run(None, {"z": z})
    lat: list[float] = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        t = time.perf_counter()
        sess.run(None, {"z": z})
        lat.append(time.perf_counter() - t)
    return summary(lat, batch, time.perf_counter() - t0)


def summary(lat: list[float], n: int, wall: float, codes: dict[int, int] | None = None) -> dict[str, float]:
    lat = sorted(lat)
    ok = (codes or {}).get(200, len(lat))
    return {"img_s": ok * n / wall, "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[min(len(lat) - 1,
            int(len(lat) * 0.99))], "max_ms": 1000 * lat[-1], "codes": codes or {200: len(lat)}}


async def load(url: str, model: str, n: int, concurrency: int, fmt: str, seconds: float,
               polite: bool = False) -> dict[str, float]:
    """Closed-loop load; ``polite`` clients wait the Retry-After of a 503 before their next request.

    aiohttp, not httpx: the load generator shares the service's cores, and aiohttp's client
    costs about a third of httpx's CPU per request (measured: 0.9 vs 2.8 ms at n=1)."""
    import aiohttp

    lat: list[float] = []
    codes: dict[int, int] = {}
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as client:
        async with client.get(f"{url}/generate", params={"model": model, "n": n, "seed": 0, "format": fmt}) as r:
            await r.read()

        async def worker(k: int) -> None:
            i = 0
            while time.perf_counter() < stop:
                t = time.perf_counter()
                params = {"model": model, "n": n, "seed": k * 10**6 + i, "format": fmt}
                async with client.get(f"{url}/generate", params=params) as r:
                    await r.read()
                    status, retry = r.status, r.headers.get("retry-after", "1")
                lat.append(time.perf_counter() - t)
                codes[status] = codes.get(status, 0) + 1
                i += 1
                if polite and status == 503:
                    await asyncio.sleep(float(retry))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        wall = time.perf_counter() - t0
    return summary(lat, n, wall, codes)


def worker_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) so far of the HTTP and the inference worker processes."""
    import psutil

    out = {"http": 0.0, "inference": 0.0}
    for p in psutil.Process(pid).children(recursive=True):
        cmd = " ".join(p.cmdline())
        if "worker.service" in cmd:
            out["inference" if "ganzoo-inference" in cmd else "http"] += sum(p.cpu_times()[:2])
    return out


def loaded(url: str, pid: int, model: str, n: int, concurrency: int, fmt: str, seconds: float,
           polite: bool = False) -> dict[str, Any]:
    """``load`` plus the CPU milliseconds each side spent per answered request."""
    before, mine = worker_cpu(pid), os.times()
    r = asyncio.run(load(url, model, n, concurrency, fmt, seconds, polite))
    after, mine2 = worker_cpu(pid), os.times()
    k = max(1, sum(r["codes"].values()))
    r["cpu_ms"] = {side: 1000 * (after[side] - before[side]) / k for side in after}
    r["cpu_ms"]["client"] = 1000 * (mine2.user + mine2.system - mine.user - mine.system) / k
    return r


def rss_mib(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def serve(home: Path, port: int, log: Path) -> subprocess.Popen:
    import httpx

    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True", "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "serving.service:Ganzoo", "--port",
                                 str(port), "--host", "127.0.0.1"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.25)  # polling interval while the server starts
    raise RuntimeError(log.read_text()[-3000:])


def png_levels(url: str, model: str) -> list[tuple[int, float, float]]:
    """(level, kB, ms) to encode the n=64 grid at each zlib level."""
    import httpx
    from PIL import Image

    from serving import images

    grid = np.asarray(Image.open(io.BytesIO(httpx.get(f"{url}/generate", params={"model": model, "n": 64,
                                                                                "seed": 1}, timeout=60).content)))
    grid = grid[:, :, None] if grid.ndim == 2 else grid
    out = []
    for level in (0, 1, 3, 6, 9):
        t = time.perf_counter()
        for _ in range(10):
            data = images.encode_png(grid, level)
        out.append((level, len(data) / 1000, (time.perf_counter() - t) * 100))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the results into this markdown file (between markers)")
    ap.add_argument("--seconds", type=float, default=4.0, help="seconds per served row")
    args = ap.parse_args()
    from serving.import_models import import_artifact, import_onnx

    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    home = tmp / "home"
    ref = tmp / "dcgan64.onnx"
    reference_onnx(ref)
    import_onnx(ref, "dcgan64", channels=3, image_size=64, latent_dim=100, out=tmp / "dcgan64", home=home)
    import_artifact(ROOT / "serving" / "pretrained" / "dcgan", home=home)
    graphs = {"dcgan64": tmp / "dcgan64" / "generator.onnx", "dcgan": ROOT / "serving/pretrained/dcgan/generator.onnx"}
    port = 3900 + os.getpid() % 90
    proc = serve(home, port, tmp / "server.log")
    url = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    try:
        for model, graph in graphs.items():
            ip = {b: in_process(graph, b) for b in (1, 8, 32, 64)}
            rows = [(f"ONNX Runtime in process, batch {b}", ip[b]) for b in ip]
            served: dict[tuple[str, int, int], dict[str, float]] = {}
            for fmt in ("npy", "png"):
                for n, c in ((1, 1), (1, 8), (1, 32), (64, 1), (64, 8)):
                    served[(fmt, n, c)] = loaded(url, proc.pid, model, n, c, fmt, args.seconds)
                    rows.append((f"served {fmt}, n={n}, concurrency {c}", served[(fmt, n, c)]))
            over = loaded(url, proc.pid, model, 64, 128, "npy", args.seconds * 3, polite=True)
            rows.append(("served npy, n=64, concurrency 128 (overload; clients honour Retry-After)", over))
            lines += [f"### `{model}`" + (" (reference: textbook 64x64 RGB DCGAN, 100-d z, 512-256-128-64)"
                                            if model == "dcgan64" else " (shipped, 28x28 grey)"), "",
                      "| path | images/s | p50 ms | p99 ms | max ms | answers | CPU ms per request: HTTP / inference "
                      "/ client |", "|---|---|---|---|---|---|---|"]
            for name, r in rows:
                codes = ", ".join(f"{k}: {v}" for k, v in sorted(r["codes"].items()))
                cpu = " / ".join(f"{r['cpu_ms'][k]:.1f}" for k in ("http", "inference", "client")) if "cpu_ms" in r \
                    else ""
                lines.append(f"| {name} | {r['img_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                             f"{r['max_ms']:.0f} | {codes} | {cpu} |")
            goals = [
                ("n=1 c=32 npy >= 0.5x in-process batch 32", served[("npy", 1, 32)]["img_s"] / ip[32]["img_s"], 0.5),
                ("n=64 c=8 npy >= 0.9x in-process batch 64", served[("npy", 64, 8)]["img_s"] / ip[64]["img_s"], 0.9),
                ("n=64 c=8 png >= 0.85x in-process batch 64", served[("png", 64, 8)]["img_s"] / ip[64]["img_s"], 0.85),
            ]
            added = served[("npy", 1, 1)]["p50_ms"] - ip[1]["p50_ms"]
            lines += ["", "| goal | measured | met |", "|---|---|---|"]
            lines += [f"| {g} | {v:.2f}x | {'yes' if v >= want else 'no'} |" for g, v, want in goals]
            lines.append(f"| n=1 c=1 npy adds <= 4 ms p50 over in-process batch 1 | {added:+.1f} ms | "
                         f"{'yes' if added <= 4 else 'no'} |")
            lines.append(f"| concurrency 128: no request waits more than 2 s | max {over['max_ms']:.0f} ms, "
                         f"{over['codes'].get(503, 0)} answered 503 | {'yes' if over['max_ms'] <= 2000 else 'no'} |")
            lines.append("")
        lines += [f"Service RSS after the run (both services and the arbiter): {rss_mib(proc.pid):.0f} MiB.", "",
                  "PNG zlib level for the n=64 grid of the reference model (GANZOO_PNG_LEVEL):", "",
                  "| level | kB | ms to encode |", "|---|---|---|"]
        lines += [f"| {lv} | {kb:.0f} | {ms:.1f} |" for lv, kb, ms in png_levels(url, "dcgan64")]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    from serving.config import Settings

    cfg = Settings.from_env()
    head = (f"## Serving engine, {dt.date.today().isoformat()}\n\nMeasured by `python benchmarks/bench_serving.py` "
            f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores; the load generator shares "
            f"them). Settings: GANZOO_BATCH={cfg.batch}, GANZOO_MAX_LATENCY_MS={cfg.max_latency_ms}, "
            f"one worker per service, GANZOO_MAX_INFLIGHT={cfg.max_inflight}, GANZOO_MAX_WAIT_S={cfg.max_wait_s:g}, "
            f"GANZOO_PNG_LEVEL={cfg.png_level}, GANZOO_COALESCE={cfg.coalesce}, "
            f"GANZOO_ORT_SPIN={int(cfg.ort_spin)}. Each served row runs {args.seconds:g} s of closed-loop load.\n")
    text = "\n".join([BEGIN, head, *lines, END])
    print(text)
    if args.out:
        doc = args.out.read_text() if args.out.exists() else "# Performance\n"
        if BEGIN in doc:
            doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: text, doc, flags=re.S)
        else:
            doc = doc.rstrip() + "\n\n" + text + "\n"
        args.out.write_text(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
