"""Supervision of a real ``bentoml serve``: no worker outlives a SIGKILLed main process.

The server is started as tests/conftest.py ``bentoml_server`` does (own session, own
BENTOML_HOME with a shipped model imported), but here the test needs the main process
itself to kill it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from conftest import REPO, _free_port, server_env, wait_until_answers
from PIL import Image

from serving.import_models import PRETRAINED, import_artifact

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def started(cmd: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen]:
    """``cmd`` started in its own session, yielded once ``/readyz`` on ``port`` answers 200."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_answers(f"http://127.0.0.1:{port}", "/readyz", proc, log)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):  # the whole session, workers included
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    import_artifact(PRETRAINED / "dcgan", home=home)
    return home


def test_sigkill_of_the_main_process_leaves_no_worker_holding_the_port(home: Path):
    port = _free_port()
    cmd = [sys.executable, "-m", "bentoml", "serve", "serving.service:Ganzoo", "--host", "127.0.0.1",
           "--port", str(port)]
    workers: list[psutil.Process] = []
    try:
        with started(cmd, server_env(home), port, home / "server.log") as main:
            workers = psutil.Process(main.pid).children(recursive=True)  # circus gives each its own session
            assert workers, "bentoml serve started no worker process"
            url = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{url}/generate?model=dcgan&n=1&seed=1", timeout=30).status_code == 200
            os.kill(main.pid, signal.SIGKILL)
            main.wait(timeout=10)
            gone, alive = psutil.wait_procs(workers, timeout=30)  # bounded wait for the kernel's SIGTERM to act
            assert alive == [], f"workers outlived the main process: {[p.pid for p in alive]}"
            assert _port_is_free(port), f"port {port} is still held after the main process died"
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{url}/readyz", timeout=5)
    finally:  # on failure, do not leave orphans behind (they are outside the main process's group)
        for p in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()


def _generate_count(url: str) -> float:
    """bentoml_service_request_total for 200s of /generate in ``url``'s /metrics (0 when absent)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith("bentoml_service_request_total{") and 'endpoint="/generate"' in line \
                and 'http_response_code="200"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _wait_for(predicate, what: str, timeout: float = 60.0) -> None:  # noqa: ANN001
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)  # polling interval of a bounded wait, not a synchronisation


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_launched_instances_keep_their_metrics_log_worker_deaths_and_do_not_track(home: Path):
    """serving/serve.py (``make serve``): a second instance on the same BENTOML_HOME (plain
    ``bentoml serve``, which empties BentoML's shared Prometheus directory) leaves the first
    one's metrics alone; a SIGKILLed worker is logged with its signal; tracking is off."""
    port_a, port_b = _free_port(), _free_port()
    env_a = server_env(home)
    env_a.pop("BENTOML_DO_NOT_TRACK")  # the launcher's default must turn it on
    launch = [sys.executable, "-m", "serving.serve", "serving.service:Ganzoo", "--host", "127.0.0.1",
              "--port", str(port_a), "--timeout-graceful-shutdown", "10"]
    plain = [sys.executable, "-m", "bentoml", "serve", "serving.service:Ganzoo", "--host", "127.0.0.1",
             "--port", str(port_b)]
    url_a, log_a = f"http://127.0.0.1:{port_a}", home / "a.log"
    with started(launch, env_a, port_a, log_a) as a:
        own = home / "ganzoo-prometheus" / str(a.pid)
        assert own.is_dir() and any(own.iterdir()), "instance A does not write its metrics to its own directory"
        workers = psutil.Process(a.pid).children()  # the HTTP-facing service and the inference service
        assert len(workers) == 2
        (worker,) = [w for w in workers if "ganzoo-inference" not in " ".join(w.cmdline())]
        assert worker.environ().get("BENTOML_DO_NOT_TRACK") == "True"
        for seed in range(3):
            assert httpx.get(f"{url_a}/generate?model=dcgan&n=1&seed={seed}", timeout=30).status_code == 200
        assert _generate_count(url_a) == 3.0
        with started(plain, server_env(home), port_b, home / "b.log"):
            assert (home / "prometheus_multiproc_dir").is_dir()  # B's, emptied by B at its start
            assert _generate_count(url_a) == 3.0, "starting a second instance reset the first one's metrics"

        worker.kill()
        _wait_for(lambda: f"worker {worker.pid} of 'service' died (signal SIGKILL)" in log_a.read_text(),
                  "the arbiter to log the worker's death")
        _wait_for(lambda: _ready(url_a), "the respawned worker")
        assert httpx.get(f"{url_a}/generate?model=dcgan&n=1&seed=9", timeout=30).status_code == 200
    assert not own.exists(), "the instance's Prometheus directory outlived it"


def test_prometheus_dirs_of_dead_instances_are_removed(tmp_path: Path):
    from serving.serve import prometheus_dir

    base = tmp_path / "ganzoo-prometheus"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale, live = base / dead.stdout.strip(), base / str(os.getppid())
    for d in (stale, live):
        d.mkdir(parents=True)
        (d / "counter_1.db").write_bytes(b"x")
    mine = prometheus_dir(tmp_path, env={})
    assert mine == base / str(os.getpid()) and mine.is_dir()
    assert not stale.exists() and live.is_dir()
    assert prometheus_dir(tmp_path, env={"GANZOO_PROMETHEUS_DIR": str(tmp_path / "set")}) == tmp_path / "set"


def _in_progress(url: str, endpoint: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("bentoml_service_request_in_progress{") and f'endpoint="{endpoint}"' in line)


def test_over_http_size_4_lab_and_work_bounds_then_sigterm_drains(tmp_path: Path):
    """``make serve``'s command stopped with SIGTERM while requests run: every one is answered.

    The same server first answers the issue's 500s and cost bounds over HTTP: ``size=4``,
    LAB TIFFs on /encode and /reconstruct, a working image over GANZOO_MAX_WORK_PIXELS."""
    home = tmp_path / "home"
    for name in ("cyclegan", "aae"):
        import_artifact(PRETRAINED / name, home=home)
    port = _free_port()
    cmd = [sys.executable, "-m", "serving.serve", "serving.service:Ganzoo", "--host", "127.0.0.1",
           "--port", str(port), "--timeout-graceful-shutdown", "60"]
    buf = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 30, 30)).save(buf, "PNG")
    lab = io.BytesIO()
    Image.new("RGB", (40, 30), (20, 200, 90)).convert("LAB").save(lab, "TIFF")
    url, n = f"http://127.0.0.1:{port}", 4
    png, tiff = {"Content-Type": "image/png"}, {"Content-Type": "image/tiff"}
    env = server_env(home, GANZOO_MAX_WORK_PIXELS="200000")
    with started(cmd, env, port, home / "server.log") as main:
        r = httpx.post(f"{url}/translate?direction=apple2orange&size=4", content=buf.getvalue(), headers=png,
                       timeout=60)
        assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (256, 256)
        r = httpx.post(f"{url}/translate?direction=apple2orange&size=1024", content=buf.getvalue(), headers=png,
                       timeout=60)
        assert r.status_code == 413 and "GANZOO_MAX_WORK_PIXELS" in r.json()["error"]
        assert r.json()["detail"] == {"pixels": 1024 * 1024, "limit": 200000, "setting": "GANZOO_MAX_WORK_PIXELS"}
        for route in ("encode", "reconstruct"):
            assert httpx.post(f"{url}/{route}?model=aae", content=lab.getvalue(), headers=tiff,
                              timeout=60).status_code == 200

        def translate(_: int) -> int:
            r = httpx.post(f"{url}/translate?direction=apple2orange&size=440", content=buf.getvalue(),
                           headers={"Content-Type": "image/png"}, timeout=120)
            return r.status_code

        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            futures = [pool.submit(translate, i) for i in range(n)]
            _wait_for(lambda: _in_progress(url, "/translate") >= n or any(f.done() for f in futures),
                      "the requests to be in flight")
            assert not any(f.done() for f in futures), "requests finished before the signal: the test proves nothing"
            os.kill(main.pid, signal.SIGTERM)
            assert [f.result(timeout=120) for f in futures] == [200] * n
        assert main.wait(timeout=60) == 0
