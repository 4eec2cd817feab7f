"""The floor of BentoML's composition on this machine: one internal hop, nothing else.

Serves benchmarks/hop/hop_service.py (two empty services joined by ``bentoml.depends``, the
inner one batchable, as ganzoo's) and times, at concurrency 1, a route that answers at once
and one that makes one call to the inner service with a one-tile job. The difference is what
a /generate request pays for composition before any graph runs.

    python benchmarks/bench_hop.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    port = 3800 + os.getpid() % 90
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True", "PYTHONPATH": str(ROOT / "benchmarks" / "hop")}
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "hop_service:Outer", "--port", str(port),
                             "--host", "127.0.0.1"], cwd=ROOT / "benchmarks" / "hop", env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.post(f"{url}/hop", json={}, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("hop service did not start")
            time.sleep(0.25)  # polling while the server starts
        with httpx.Client(timeout=30) as c:
            for route in ("direct", "hop", "direct", "hop"):
                lat = []
                for _ in range(20):
                    c.post(f"{url}/{route}", json={})
                for _ in range(400):
                    t = time.perf_counter()
                    c.post(f"{url}/{route}", json={})
                    lat.append(1000 * (time.perf_counter() - t))
                lat.sort()
                print(f"/{route}: p50 {lat[200]:.2f} ms, p10 {lat[40]:.2f} ms, p90 {lat[360]:.2f} ms")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
