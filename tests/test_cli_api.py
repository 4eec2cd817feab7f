"""The Python API (``serving.load``) and the ``ganzoo`` CLI give the pixels the HTTP API gives.

Compared against a real ``bentoml serve`` (the session ``serving_server``) over the same
model store; the CLI runs as the installed console script, in a subprocess.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from serving import load
from serving.api import load_artifact
from serving.errors import ServingError

REPO = Path(__file__).resolve().parent.parent
APPLE = REPO / "examples" / "photos" / "apple.jpg"
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def http_npy(url: str, **params: object) -> np.ndarray:
    resp = httpx.get(f"{url}/generate", params={**params, "format": "npy"}, timeout=60)
    assert resp.status_code == 200, resp.text
    return np.load(io.BytesIO(resp.content))


def pixels(data: bytes | Path) -> np.ndarray:
    img = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    arr = np.asarray(img)
    return arr[:, :, None] if arr.ndim == 2 else arr


def ganzoo(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """The installed ``ganzoo`` console script (pyproject's [project.scripts])."""
    exe = Path(sys.executable).parent / "ganzoo"
    return subprocess.run([str(exe), *args, "--home", str(home)], capture_output=True, text=True, timeout=120)


def test_python_api_equals_http_npy_bytes(serving_server):
    srv = serving_server
    for name, params in (("dcgan", {}), ("cgan", {"label": 2}), ("stylegan", {"psi": 0.7})):
        m = load(name, home=srv.home)
        assert m.version == srv.tags["dcgan-v2" if name == "dcgan" else name].split(":")[1]  # the served version
        got = m.generate(n=6, seed=5, **params)
        assert got.dtype == np.uint8 and got.shape[0] == 6 and got.ndim == 4
        np.testing.assert_array_equal(got, http_npy(srv.url, model=name, n=6, seed=5, **params))
    frames = load("stylegan", home=srv.home).interpolate(3, 4, steps=5)
    resp = httpx.get(f"{srv.url}/interpolate", params={"model": "stylegan", "seed_a": 3, "seed_b": 4, "steps": 5})
    strip = pixels(resp.content)
    np.testing.assert_array_equal(frames[0], strip[2:10, 2:10])  # first frame of the padded strip


def test_load_artifact_dir_and_unknown_name(serving_server, tmp_path):
    m = load(serving_server.artifacts.dirs["cgan"])  # an artifact folder, no store involved
    assert m.source.endswith("cgan") and m.classes == ["zero", "one", "two"]
    np.testing.assert_array_equal(m.generate(n=3, seed=1, label="two"), m.generate(n=3, seed=1, label=2))
    with pytest.raises(ServingError, match="unknown model 'nope'") as e:
        load("nope", home=tmp_path)
    assert e.value.status == 404 and "dcgan" in e.value.detail["known"]  # the shipped ones are offered


def test_cli_generate_seed_is_tile0_of_http(serving_server, tmp_path):
    srv = serving_server
    out = tmp_path / "out"
    r = ganzoo("generate", "--model", "dcgan", "--seeds", "3-5,9", "--outdir", str(out), home=srv.home)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["seed0003.png", "seed0004.png", "seed0005.png", "seed0009.png"]
    for s in (3, 4, 5, 9):
        png = httpx.get(f"{srv.url}/generate", params={"model": "dcgan", "n": 1, "seed": s}).content
        np.testing.assert_array_equal(pixels(out / f"seed{s:04d}.png"), pixels(png))
    r = ganzoo("generate", "--model", "cgan", "--seeds", "0-3", "--label", "two", "--grid", "--outdir", str(out),
               home=srv.home)
    assert r.returncode == 0, r.stderr
    tiles = np.stack([http_npy(srv.url, model="cgan", n=1, seed=s, label=2)[0] for s in range(4)])
    grid = pixels(out / "grid.png")
    assert grid.shape == (2 + 2 * 10, 2 + 2 * 10, 3)  # 2x2 tiles of 8 px with 2 px padding
    np.testing.assert_array_equal(grid[12:20, 2:10], tiles[2])


def test_cli_needs_no_torch(serving_server, tmp_path):
    code = (
        "import sys; from serving.cli import main; "
        f"rc = main(['generate', '--model', 'stylegan', '--seeds', '1', '--trunc', '0.5',"
        f" '--outdir', {str(tmp_path)!r}, '--home', {str(serving_server.home)!r}]); "
        "assert rc == 0; assert 'torch' not in sys.modules, 'torch was imported'"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    png = httpx.get(f"{serving_server.url}/generate", params={"model": "stylegan", "n": 1, "seed": 1, "psi": 0.5})
    np.testing.assert_array_equal(pixels(tmp_path / "seed0001.png"), pixels(png.content))


def test_cli_translate_and_interpolate(serving_server, tmp_path):
    srv = serving_server
    r = ganzoo("translate", str(APPLE), "--direction", "apple2orange", "--outdir", str(tmp_path), home=srv.home)
    assert r.returncode == 0, r.stderr
    resp = httpx.post(f"{srv.url}/translate", params={"direction": "apple2orange"}, content=APPLE.read_bytes(),
                      headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert resp.status_code == 200, resp.text
    out = pixels(tmp_path / "apple-apple2orange.png")
    assert out.shape[:2] == Image.open(APPLE).size[::-1]
    np.testing.assert_array_equal(out, pixels(resp.content))
    gif = tmp_path / "walk.gif"
    r = ganzoo("interpolate", "--model", "dcgan", "--seeds", "1,2", "--steps", "4", "--out", str(gif), home=srv.home)
    assert r.returncode == 0, r.stderr
    anim = Image.open(gif)
    assert anim.n_frames == 4
    first = np.asarray(anim.convert("L"))[:, :, None]
    np.testing.assert_array_equal(first, http_npy(srv.url, model="dcgan", n=1, seed=1)[0])


def test_cli_errors_are_messages_not_tracebacks(serving_server):
    r = ganzoo("generate", "--model", "cgan", "--seeds", "1", "--label", "seven", home=serving_server.home)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "unknown label 'seven'" in r.stderr and "zero, one, two" in r.stderr
    r = ganzoo("generate", "--model", "dcgan", "--seeds", "5-2", home=serving_server.home)
    assert r.returncode == 2 and "bad seed range" in r.stderr
    r = ganzoo("models", home=serving_server.home)
    assert r.returncode == 0, r.stderr
    assert any(line.split()[:2] == ["cgan", "store"] and "zero, one, two" in line for line in r.stdout.splitlines())


# -- class names ------------------------------------------------------------------------------
def test_resolve_label_takes_a_name_or_an_index(serving_artifacts):
    gan = load_artifact(serving_artifacts.dirs["cgan"]).gan
    assert [gan.resolve_label(v) for v in ("zero", "TWO", " one ", "2", 1, None)] == [0, 2, 1, 2, 1, None]
    with pytest.raises(ServingError, match="unknown label 'three'.*zero, one, two") as e:
        gan.resolve_label("three")
    assert e.value.status == 422 and e.value.detail["classes"] == ["zero", "one", "two"]
    with pytest.raises(ServingError, match=r"0\.\.2"):
        gan.resolve_label("3")
    with pytest.raises(ServingError, match="not conditional") as e:
        load_artifact(serving_artifacts.dirs["dcgan"]).gan.resolve_label("zero")
    assert e.value.status == 400


def test_http_label_by_name(serving_server):
    srv = serving_server
    np.testing.assert_array_equal(http_npy(srv.url, model="cgan", n=4, seed=3, label="two"),
                                  http_npy(srv.url, model="cgan", n=4, seed=3, label=2))
    resp = httpx.get(f"{srv.url}/generate", params={"model": "cgan", "label": "three"})
    assert resp.status_code == 422
    body = resp.json()
    assert "unknown label 'three'" in body["error"] and body["detail"]["classes"] == ["zero", "one", "two"]
    by_name = httpx.get(f"{srv.url}/interpolate", params={"model": "cgan", "seed_a": 1, "seed_b": 2, "label": "one"})
    by_index = httpx.get(f"{srv.url}/interpolate", params={"model": "cgan", "seed_a": 1, "seed_b": 2, "label": 1})
    assert by_name.status_code == 200 and by_name.content == by_index.content


def test_shipped_fashion_card_names_its_classes():
    card = json.loads((REPO / "serving" / "pretrained" / "cgan-fashion" / "card.json").read_text())
    assert card["classes"] == FASHION and card["num_classes"] == len(FASHION)
    m = load(REPO / "serving" / "pretrained" / "cgan-fashion")
    np.testing.assert_array_equal(m.generate(n=2, seed=0, label="Trouser"), m.generate(n=2, seed=0, label=1))
