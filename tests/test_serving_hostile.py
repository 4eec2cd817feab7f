"""Hostile and sustained traffic against a real ``bentoml serve``: a fuzz run of the OpenAPI
document (schemathesis) that must find no 5xx, and a bounded soak that must lose nothing
and not grow the service's memory."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest
from PIL import Image

pytestmark = pytest.mark.slow
SOAK_S, SOAK_CONCURRENCY, RSS_GROWTH_MIB = 30.0, 16, 32  # over the whole process tree; ~2 MiB measured
# (before serving/traffic.py, BentoML's request timers held every answered request for 60 s: +102 MiB)


def test_a_fuzz_run_of_the_openapi_document_finds_no_server_error(serving_server, tmp_path: Path):
    exe = Path(sys.executable).with_name("schemathesis")
    # one worker: with two threads, hypothesis' ast.parse of its filter lambdas can hit CPython 3.11's
    # "AST constructor recursion depth mismatch" (python/cpython#106905), a crash of the tool, not the server
    cmd = [str(exe), "run", f"{serving_server.url}/docs.json", "--checks", "not_a_server_error",
           "--max-examples", "15", "--workers", "1", "--seed", "1", "--request-timeout", "30"]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "HOME": str(tmp_path)}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "passed" in run.stdout and "ST101" not in run.stdout


def _tree_rss(pid: int) -> int:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


def _server_pid(url: str) -> int:
    port = int(url.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return conn.pid
    raise AssertionError(f"no process listens on {port}")


def test_a_soak_at_concurrency_16_loses_nothing_and_holds_its_memory(serving_server):
    url = serving_server.url
    buf = io.BytesIO()
    Image.new("RGB", (24, 16), (200, 40, 40)).save(buf, "PNG")
    photo = buf.getvalue()
    calls = [
        lambda c, i: c.get("/generate", params={"model": "dcgan", "n": 1, "seed": i, "format": "npy"}),
        lambda c, i: c.get("/generate", params={"model": "cgan", "n": 16, "seed": i}),
        lambda c, i: c.get("/interpolate", params={"model": "stylegan", "seed_a": i, "seed_b": i + 1, "steps": 4}),
        lambda c, i: c.post("/translate", params={"direction": "apple2orange"}, content=photo,
                            headers={"content-type": "image/png"}),
        lambda c, i: c.get("/models"),
    ]
    pid = _server_pid(url)

    def worker(k: int, seconds: float) -> dict[int, int]:
        codes: dict[int, int] = {}
        stop = time.monotonic() + seconds
        with httpx.Client(base_url=url, timeout=60) as client:
            i = 0
            while time.monotonic() < stop:
                r = calls[(k + i) % len(calls)](client, k * 100_000 + i)
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
                i += 1
        return codes

    with ThreadPoolExecutor(SOAK_CONCURRENCY) as pool:  # warm-up: arenas, caches, lazy imports
        list(pool.map(lambda k: worker(k, 8.0), range(SOAK_CONCURRENCY)))
    before = _tree_rss(pid)
    with ThreadPoolExecutor(SOAK_CONCURRENCY) as pool:
        results = list(pool.map(lambda k: worker(k, SOAK_S), range(SOAK_CONCURRENCY)))
    after = _tree_rss(pid)
    total: dict[int, int] = {}
    for codes in results:
        for code, count in codes.items():
            total[code] = total.get(code, 0) + count
    assert set(total) == {200}, f"answers during the soak: {total}"
    assert sum(total.values()) > 200
    assert (after - before) / 2**20 < RSS_GROWTH_MIB, f"RSS grew {(after - before) / 2**20:.0f} MiB during the soak"
