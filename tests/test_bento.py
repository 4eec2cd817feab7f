"""BentoML's own path to production: build the Bento, serve it by tag, split the services.

``bentoml build`` must need no resolver (the bentofile installs a lock file from the repo),
the built Bento must answer with the same bytes as the service run from the source tree,
and the HTTP service must work against an inference service started on its own
(``GANZOO_INFERENCE_URL``), the way docs/DEPLOY.md scales them apart.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import REPO, _free_port, bentoml_server, server_env, wait_until_answers

from serving.import_models import PRETRAINED, import_artifact

pytestmark = pytest.mark.slow
QUERY = {"model": "dcgan", "n": 4, "seed": 3, "format": "npy"}


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A store holding every model the bentofile lists."""
    home = tmp_path_factory.mktemp("bento_home")
    for name in yaml.safe_load((REPO / "bentofile.yaml").read_text())["models"]:
        import_artifact(PRETRAINED / name, home=home)
    return home


def test_the_bentofiles_install_from_the_locks_in_the_repo():
    for name, runtime in (("bentofile.yaml", "onnxruntime=="), ("bentofile.gpu.yaml", "onnxruntime-gpu==")):
        python = yaml.safe_load((REPO / name).read_text())["python"]
        assert python["lock_packages"] is False and "packages" not in python
        pins = [p for p in (REPO / python["requirements_txt"]).read_text().splitlines() if p and not p[0] == "#"]
        assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[^ ]+", p) for p in pins), "every line pinned with =="
        assert any(p.startswith(runtime) for p in pins) and any(p.startswith("bentoml==1.4.39") for p in pins)
        assert not any(p.startswith(("torch", "torchvision")) for p in pins), "serving needs no torch"


def test_the_built_bento_serves_the_same_bytes_as_the_source_tree(home: Path, tmp_path: Path):
    build = subprocess.run([sys.executable, "-m", "bentoml", "build", "--output", "tag"], cwd=REPO,
                           env=server_env(home), capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    tag = build.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    assert re.fullmatch(r"ganzoo:\w+", tag), build.stdout[-500:]
    bento = home / "bentos" / "ganzoo" / tag.split(":")[1]
    src = bento / "src" / "serving"
    assert (src / "service.py").is_file() and not (src / "pretrained").exists()  # models travel as models
    pins = (bento / "env" / "python" / "requirements.txt").read_text().splitlines()
    assert not any(p.startswith("torch") for p in pins)

    port = _free_port()
    log = tmp_path / "bento.log"
    cmd = [sys.executable, "-m", "bentoml", "serve", tag, "--port", str(port), "--host", "127.0.0.1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=server_env(home), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_answers(url, "/readyz", proc, log)
        from_bento = httpx.get(f"{url}/generate", params=QUERY, timeout=60)
        spec = httpx.get(f"{url}/docs.json", timeout=60).json()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)
    assert from_bento.status_code == 200, log.read_text()[-2000:]
    assert spec["info"]["version"] == tag.split(":")[1]  # a built Bento states its own version
    with bentoml_server(home) as (src_url, _):
        from_source = httpx.get(f"{src_url}/generate", params=QUERY, timeout=60)
    assert from_source.content == from_bento.content


def test_the_http_service_uses_an_inference_service_started_on_its_own(home: Path, tmp_path: Path):
    port = _free_port()
    log = tmp_path / "inference.log"
    cmd = [sys.executable, "-m", "bentoml", "serve", "serving.engine:Inference", "--port", str(port),
           "--host", "127.0.0.1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=server_env(home), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        inference = f"http://127.0.0.1:{port}"
        wait_until_answers(inference, "/readyz", proc, log)
        with bentoml_server(home, {"GANZOO_INFERENCE_URL": inference}) as (url, server_log):
            remote = httpx.get(f"{url}/generate", params=QUERY, timeout=60)
            text = server_log.read_text()
        with bentoml_server(home) as (local_url, _):
            local = httpx.get(f"{local_url}/generate", params=QUERY, timeout=60)
        made = httpx.get(f"{inference}/metrics", timeout=30).text
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)
    assert remote.status_code == 200 and remote.content == local.content
    assert "ganzoo-inference" not in text  # no local inference service was started
    assert 'ganzoo_images_generated_total{model="dcgan"}' in made  # the tiles were made by the one started alone
