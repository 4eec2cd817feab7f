"""Bring your own generator: ``python -m serving.import_models --onnx`` on graphs exported from plain torch."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from serving import images, sampling
from serving.import_models import import_onnx
from serving.runtime import LoadError
from serving.store import list_models, model_store
from tests.conftest import REPO, bentoml_server

D, C, S = 8, 1, 16


def textbook_dcgan() -> nn.Module:
    """Radford et al.'s generator as any tutorial writes it: z is [B, D, 1, 1], no ganzoo code."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.ConvTranspose2d(D, 32, 4, 1, 0, bias=False), nn.BatchNorm2d(32), nn.ReLU(True),
        nn.ConvTranspose2d(32, 16, 4, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(True),
        nn.ConvTranspose2d(16, C, 4, 2, 1, bias=False), nn.Tanh(),
    ).eval()


class Flat(nn.Module):
    def __init__(self, g: nn.Module) -> None:
        super().__init__()
        self.g = g

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.g(z).flatten(1)


class Scaled(Flat):
    """No tanh at the end, and outputs well outside [-1, 1]."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return 100 * self.g(z)


def export(module: nn.Module, path, z_shape: tuple[int, ...]) -> None:
    with torch.no_grad():
        torch.onnx.export(module, (torch.randn(2, *z_shape),), str(path), input_names=["z"], output_names=["out"],
                          dynamic_axes={"z": {0: "batch"}, "out": {0: "batch"}}, dynamo=False)


def cli(home, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    return subprocess.run([sys.executable, "-m", "serving.import_models", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)


@pytest.mark.slow
def test_a_textbook_dcgan_is_imported_and_served(tmp_path):
    onnx_file = tmp_path / "dcgan.onnx"
    export(textbook_dcgan(), onnx_file, (D, 1, 1))
    home = tmp_path / "home"
    home.mkdir()
    out = cli(home, "--onnx", str(onnx_file), "--name", "textbook", "--channels", str(C), "--image-size", str(S),
              "--latent-dim", str(D))
    assert out.returncode == 0, out.stderr
    assert "imported: textbook:" in out.stdout
    stored = list_models(model_store(home), "textbook")
    assert len(stored) == 1 and stored[0].info.metadata["latent_dim"] == D
    again = cli(home, "--onnx", str(onnx_file), "--name", "textbook", "--channels", str(C), "--image-size", str(S),
                "--latent-dim", str(D))
    assert again.returncode == 0 and "already stored, skipped" in again.stdout

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    with bentoml_server(home, {"GANZOO_MODELS": "textbook"}) as (url, _log):
        info = httpx.get(f"{url}/models", timeout=30).json()
        entry = next(m for m in (info["models"] if isinstance(info, dict) else info) if m["name"] == "textbook")
        assert entry["capabilities"] == ["generate", "interpolate"] and entry["latent_dim"] == D
        resp = httpx.get(f"{url}/generate", params={"model": "textbook", "n": 3, "seed": 5, "format": "npy"},
                         timeout=60)
        assert resp.status_code == 200, resp.text
        tiles = np.load(io.BytesIO(resp.content), allow_pickle=False)
        # tile i draws D standard normals from default_rng([seed, i]), reshaped to the graph's [D, 1, 1]
        z = np.stack([sampling.draw_tile(5, i, [("z", (D,))])["z"].reshape(D, 1, 1) for i in range(3)])
        expected = images.to_uint8(session.run(None, {"z": z})[0])
        assert tiles.shape == (3, S, S, C) and np.abs(tiles.astype(int) - expected.astype(int)).max() <= 1
        strip = httpx.get(f"{url}/interpolate", params={"model": "textbook", "seed_a": 1, "seed_b": 2, "steps": 3},
                          timeout=60)
        assert strip.status_code == 200 and strip.headers["content-type"] == "image/png"


def test_a_flat_latent_generator_is_accepted_too(tmp_path):
    flat_in = nn.Sequential(nn.Linear(D, C * S * S), nn.Tanh(), nn.Unflatten(1, (C, S, S))).eval()
    export(flat_in, tmp_path / "g.onnx", (D,))
    tag, created = import_onnx(tmp_path / "g.onnx", "flat-in", C, S, D, out=tmp_path / "art", home=tmp_path / "home")
    card = json.loads((tmp_path / "art" / "card.json").read_text())
    assert created and tag.startswith("flat-in:") and card["variant"] == "imported" and card["latent_dim"] == D


@pytest.mark.parametrize(
    "module, z_shape, flags, words",
    [
        (Flat(textbook_dcgan()), (D, 1, 1), {}, r"generator output 'out' has shape \[\?, 256\]: an image must be "
                                               r"\[B, C, H, W\] \(rank 4, got rank 2\)"),
        (textbook_dcgan(), (D, 1, 1), {"image_size": 28}, "generator output 'out' is 16x16 but card.json says "
                                                          "image_size 28"),
        (textbook_dcgan(), (D, 1, 1), {"latent_dim": 100}, "generator input 'z' has 8 values per item but card.json "
                                                           "says latent_dim 100"),
        (Scaled(textbook_dcgan()[:-1]), (D, 1, 1), {}, r"generator output spans .*: images must be in \[-1, 1\]"),
    ],
)
def test_graphs_off_the_contract_are_refused_at_import(module, z_shape, flags, words, tmp_path):
    export(module, tmp_path / "g.onnx", z_shape)
    args = {"channels": C, "image_size": S, "latent_dim": D, **flags}
    with pytest.raises(LoadError, match=words):
        import_onnx(tmp_path / "g.onnx", "bad", home=tmp_path / "home", out=tmp_path / "art", **args)
    assert not (tmp_path / "art").exists() and list_models(model_store(tmp_path / "home"), "bad") == []


def test_the_cli_names_the_mismatch_in_one_line(tmp_path):
    export(Flat(textbook_dcgan()), tmp_path / "flat.onnx", (D, 1, 1))
    out = cli(tmp_path, "--onnx", str(tmp_path / "flat.onnx"), "--name", "flat", "--channels", "1",
              "--image-size", "16", "--latent-dim", "8")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].endswith("an image must be [B, C, H, W] (rank 4, got rank 2)")
    assert "Traceback" not in out.stderr
