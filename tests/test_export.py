"""Export: one ONNX file per graph, parity with PyTorch, metadata for serving."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from training.config import TrainConfig
from training.export import ExportError, export_run, load_run
from training.loop import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(TrainConfig(variant="dcgan", data="digits", out=str(out), steps=3, batch_size=16, threads=1,
                      model={"width": 8, "latent_dim": 16, "image_size": 16}), progress=False)
    return out


def test_export_writes_a_self_contained_graph_with_metadata(run_dir):
    dest = export_run(run_dir, "tiny-dcgan", store=False)
    assert sorted(p.name for p in dest.iterdir()) == ["card.json", "card.md", "generator.onnx"]
    model = onnx.load(str(dest / "generator.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["ganzoo.task"] == "generate" and meta["ganzoo.latent_dim"] == "16"
    assert meta["ganzoo.role"] == "generator" and meta["ganzoo.dataset"] == "digits"
    assert len(meta["ganzoo.sha256"]) == 64 and meta["ganzoo.steps"] == "3"
    card = json.loads((dest / "card.json").read_text())
    assert card["graphs"]["generator"]["parity_max_abs_diff"] <= 1e-4
    assert "training train dcgan" in card["train_command"] and "--steps 3" in card["train_command"]

    # the graph has a dynamic batch axis and matches the EMA generator of the run
    variant, nets, _ = load_run(run_dir)
    z = torch.randn(5, 16)
    with torch.no_grad():
        expected = nets["G"](z).numpy()
    got = ort.InferenceSession(str(dest / "generator.onnx")).run(None, {"z": z.numpy()})[0]
    assert got.shape == (5, 1, 16, 16) and np.abs(got - expected).max() <= 1e-4


def test_parity_failure_is_loud(run_dir):
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_run(run_dir, "tiny-dcgan", store=False, tolerance=-1.0)
