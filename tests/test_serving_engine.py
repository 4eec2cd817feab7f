"""The serving engine for real: adaptive batching, typed APIs, load shedding, hygiene.

Against real ``bentoml serve`` processes on the tiny models of conftest.py: the shared
``serving_server``, and servers of this module with small limits or an empty store.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from conftest import REPO, _free_port, bentoml_server, server_env, wait_until_answers
from PIL import Image

pytestmark = pytest.mark.slow


def get(url: str, path: str, **params) -> httpx.Response:
    return httpx.get(url + path, params=params, timeout=60)


def metric(url: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus series on /metrics (0 when absent)."""
    text = get(url, "/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# -- adaptive batching ----------------------------------------------------------------------
def test_concurrent_tiles_share_inference_calls_and_keep_their_bytes(serving_server):
    url = serving_server.url
    calls0 = metric(url, "ganzoo_batch_size_count", model="dcgan")
    tiles0 = metric(url, "ganzoo_batch_size_sum", model="dcgan")
    k = 48
    for s in range(10):  # admission learns what an n=1 request costs before it admits a burst of them
        assert get(url, "/generate", model="dcgan", n=1, seed=1000 + s, format="npy").status_code == 200
    calls0 = metric(url, "ganzoo_batch_size_count", model="dcgan")
    tiles0 = metric(url, "ganzoo_batch_size_sum", model="dcgan")
    with ThreadPoolExecutor(k) as pool:
        together = list(pool.map(lambda s: get(url, "/generate", model="dcgan", n=1, seed=s, format="npy"), range(k)))
    calls = metric(url, "ganzoo_batch_size_count", model="dcgan") - calls0
    tiles = metric(url, "ganzoo_batch_size_sum", model="dcgan") - tiles0
    refused = [f"{r.status_code} {r.text[:200]}" for r in together if r.status_code != 200]
    assert not refused, f"{len(refused)} of {k} concurrent requests refused: {refused[:3]}"
    assert tiles == k and calls < k, f"{k} concurrent requests took {calls} inference calls"
    for s in (0, 17, k - 1):  # one by one: the same bytes, whatever the batch was
        assert get(url, "/generate", model="dcgan", n=1, seed=s, format="npy").content == together[s].content
    assert metric(url, "ganzoo_images_generated_total", model="dcgan") >= k
    assert metric(url, "ganzoo_queue_wait_seconds_count", model="dcgan") >= k
    assert metric(url, "ganzoo_inference_seconds_count", model="dcgan", role="tiles") >= calls


def test_a_large_n_is_split_into_batches_and_equals_its_tiles(serving_server):
    url = serving_server.url
    big = np.load(io.BytesIO(get(url, "/generate", model="dcgan", n=150, seed=4, format="npy").content))
    small = np.load(io.BytesIO(get(url, "/generate", model="dcgan", n=3, seed=4, format="npy").content))
    assert big.shape[0] == 150 and np.array_equal(big[:3], small)


# -- every capability a BentoML API ---------------------------------------------------------
def test_every_api_through_the_bentoml_client_equals_its_curl_route(serving_server, tmp_path):
    import bentoml

    url = serving_server.url
    photo_img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (8, 12, 3), dtype=np.uint8))
    digit_img = Image.fromarray(np.random.default_rng(2).integers(0, 256, (8, 8), dtype=np.uint8), "L")
    photo_img.save(tmp_path / "photo.png")
    digit_img.save(tmp_path / "digit.png")
    photo = Image.open(tmp_path / "photo.png")  # the client uploads a PIL image opened from a file, or a path
    digit = tmp_path / "digit.png"
    with bentoml.SyncHTTPClient(url, timeout=60) as client:
        assert {"generate", "interpolate", "mix", "models", "encode", "reconstruct", "translate"} <= set(
            client.endpoints
        )
        same = [
            (client.generate(model="cgan", n=4, seed=9, label=1), get(url, "/generate", model="cgan", n=4, seed=9,
                                                                      label=1)),
            (client.interpolate(model="dcgan", seed_a=1, seed_b=2, steps=5),
             get(url, "/interpolate", model="dcgan", seed_a=1, seed_b=2, steps=5)),
            (client.mix(model="stylegan", seeds="1,2", styles="3", crossover=2),
             get(url, "/mix", model="stylegan", seeds="1,2", styles="3", crossover=2)),
            (client.translate(image=photo, direction="apple2orange"),
             httpx.post(url + "/translate", params={"direction": "apple2orange"}, content=png(photo_img),
                        headers={"content-type": "image/png"}, timeout=60)),
            (client.reconstruct(image=digit, model="aae"),
             httpx.post(url + "/reconstruct", params={"model": "aae"}, content=png(digit_img),
                        headers={"content-type": "image/png"}, timeout=60)),
        ]
        for api_img, curl in same:
            assert curl.status_code == 200, curl.text
            assert isinstance(api_img, Image.Image)
            np.testing.assert_array_equal(np.asarray(api_img.convert("RGB")), pixels(curl.content))
        code = client.encode(image=digit, model="aae")
        raw = httpx.post(url + "/encode", params={"model": "aae"}, content=png(digit_img),
                         headers={"content-type": "image/png"}, timeout=60).json()
        assert (code["code"] if isinstance(code, dict) else code.code) == raw["code"]
        listed = client.models()
        names = [m["name"] if isinstance(m, dict) else m.name for m in listed]
        assert names == [m["name"] for m in get(url, "/models").json()]
    # the POST APIs answer raw HTTP with the same bytes as the GET routes
    post = httpx.post(url + "/interpolate", json={"model": "dcgan", "seed_a": 1, "seed_b": 2, "steps": 5}, timeout=60)
    assert post.content == get(url, "/interpolate", model="dcgan", seed_a=1, seed_b=2, steps=5).content
    assert httpx.post(url + "/models", json={}, timeout=60).json() == get(url, "/models").json()


def test_typed_apis_answer_errors_as_json(serving_server):
    url = serving_server.url
    r = httpx.post(url + "/interpolate", json={"model": "nope"}, timeout=60)
    assert r.status_code == 404 and "unknown model 'nope'" in r.json()["error"]
    r = httpx.post(url + "/api/translate", files={"image": ("x.png", b"not an image")},
                   data={"direction": "apple2orange"}, timeout=60)
    assert 400 <= r.status_code < 500 and "error" in r.json()


# -- hygiene --------------------------------------------------------------------------------
def test_unknown_paths_do_not_grow_metrics_and_every_error_is_json(serving_server):
    url = serving_server.url
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(60):
            r = client.get(f"/probe-{i}-{'x' * 50}")
            assert r.status_code == 404 and r.json()["error"]
        assert "probe-" not in client.get("/metrics").text
        assert 'endpoint="/{unmatched}"' in client.get("/metrics").text
        for method, path in (("DELETE", "/generate"), ("GET", "/api/translate"), ("PUT", "/models")):
            r = client.request(method, path)
            assert r.status_code in (404, 405) and r.headers["content-type"] == "application/json", (method, path)
            assert "error" in r.json()
        r = client.get("/generate", params={"model": "m" * 5000})  # the echo is bounded
        assert r.status_code == 422 and len(r.text) < 2000
        r = client.post("/generate", content=b"--x\r\ngarbage", headers={"content-type": "multipart/form-data"})
        assert 400 <= r.status_code < 500 and "error" in r.json()
        ok = client.get("/generate", params={"model": "dcgan", "n": 1, "seed": 1})  # same connection, still fine
        assert ok.status_code == 200 and ok.headers["x-content-type-options"] == "nosniff"
        assert "server" not in ok.headers


def test_models_can_list_the_failed_ones_with_their_reason(serving_server):
    listed = get(serving_server.url, "/models", include_failed="true").json()
    failed = {m["name"]: m for m in listed if m["status"] == "failed"}
    assert set(failed) == {"broken", "ghost"} and "generator.onnx is missing" in failed["ghost"]["reason"]
    assert all(m["status"] == "served" for m in get(serving_server.url, "/models").json())


# -- limits ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def limited(serving_artifacts, tmp_path_factory):
    """A server with a queue of 2 requests and a 20 kB body limit, one inference call per request."""
    from serving.import_models import import_artifact

    home = tmp_path_factory.mktemp("limited_home")
    for key in ("dcgan", "cyclegan"):
        import_artifact(serving_artifacts.dirs[key], home=home)
    env = {"GANZOO_MAX_INFLIGHT": "2", "GANZOO_MAX_BYTES": "20000", "GANZOO_MAX_WAIT_S": "0.5",
           "GANZOO_COALESCE": "0"}
    with bentoml_server(home, env) as (url, log):
        yield url, log


def test_uncoalesced_calls_give_the_tiles_of_the_python_api(limited, serving_artifacts):
    """GANZOO_COALESCE=0 (limited) sends each request's jobs alone, the default joins concurrent
    requests' jobs (serving/coalesce.py; test_concurrent_tiles_... checks that path's bytes);
    either way a tile is the one ``serving.load(...).generate`` draws for its seed."""
    from serving import api

    url, _ = limited
    model = api.load(serving_artifacts.dirs["dcgan"])
    for n, seed in ((1, 5), (70, 2)):  # 70 tiles: two jobs (GANZOO_BATCH=64) in one request
        r = get(url, "/generate", model="dcgan", n=n, seed=seed, format="npy")
        assert r.status_code == 200
        np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), model.generate(n=n, seed=seed))


def test_a_burst_past_capacity_gets_fast_503s_with_retry_after_then_service_resumes(limited):
    url, log = limited
    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(lambda s: get(url, "/generate", model="dcgan", n=256, seed=s), range(48)))
    busy = [r for r in answers if r.status_code == 503]
    assert busy and all(r.status_code in (200, 503) for r in answers)
    assert all(int(r.headers["retry-after"]) >= 1 and "server busy" in r.json()["error"] for r in busy)
    assert "GANZOO_MAX_INFLIGHT=2" in busy[0].json()["error"] or "GANZOO_MAX_WAIT_S" in busy[0].json()["error"]
    assert get(url, "/readyz").status_code == 200  # probes are never refused
    assert get(url, "/generate", model="dcgan", n=4, seed=1).status_code == 200
    assert "refused GET /generate: 503" in log.read_text()


def test_every_body_is_bounded_post_generate_included(limited):
    url, _ = limited
    big = json.dumps({"model": "x" * 30000})
    r = httpx.post(url + "/generate", content=big, headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413 and "20000" in r.json()["error"] and len(r.text) < 500

    def chunks():
        for i in range(0, len(big), 4096):
            yield big[i : i + 4096].encode()

    r = httpx.post(url + "/generate", content=chunks(), headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413 and r.json()["detail"] == {"max_bytes": 20000}
    assert get(url, "/generate", model="dcgan", n=1, seed=1).status_code == 200


def test_readyz_is_not_ready_without_a_model(tmp_path):
    """An empty store: the process lives, but is not ready (a load balancer must not send traffic)."""
    port = _free_port()
    env = server_env(tmp_path)
    cmd = [sys.executable, "-m", "bentoml", "serve", "serving.service:Ganzoo", "--port", str(port), "--host",
           "127.0.0.1"]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_answers(f"http://127.0.0.1:{port}", "/livez", proc, log)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 503
        assert re.search(r"no ganzoo model to serve", log.read_text())
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_client_mistakes_log_one_line_and_no_traceback(serving_server):
    """A malformed body or an upload cut off midway is the client's fault: one log line, no traceback."""
    import socket

    url = serving_server.url
    before = serving_server.log_text()
    r = httpx.post(url + "/generate", content=b"{not json", headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 400
    r = httpx.post(url + "/api/encode", content=b"--b\r\nnope", timeout=60,
                   headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 400
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:  # promises 100 kB, sends 10 kB, hangs up
        s.sendall(b"POST /translate?direction=apple2orange HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                  b"Content-Length: 100000\r\n\r\n" + b"\x89PNG" + bytes(10_000))
    assert get(url, "/generate", model="dcgan", n=1, seed=2).status_code == 200  # served after all three
    added = serving_server.log_text()[len(before):]
    assert "Traceback" not in added, added[-3000:]
