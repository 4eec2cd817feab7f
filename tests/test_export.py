"""Export: one ONNX file per graph, parity with PyTorch, metadata for serving."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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
    assert sorted(p.name for p in dest.iterdir()) == ["card.json", "card.md", "generator.fp16.onnx", "generator.onnx",
                                                      "metrics.csv"]
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


def test_fp16_copy_is_half_the_size_close_to_fp32_and_served_when_asked(run_dir, tmp_path):
    from serving.runtime import graph_files, load_model

    dest = export_run(run_dir, "tiny-dcgan", tmp_path / "art", store=False)
    card = json.loads((dest / "card.json").read_text())
    half = card["graphs"]["generator"]["fp16"]
    assert half["file"] == "generator.fp16.onnx" and 0 < half["max_abs_diff_vs_fp32"] <= 0.05
    assert half["bytes"] < 0.7 * card["graphs"]["generator"]["bytes"]
    graph = onnx.load(str(dest / half["file"])).graph
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer)
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 in and out
    assert {p.key for p in onnx.load(str(dest / half["file"])).metadata_props} >= {"ganzoo.task", "ganzoo.role"}

    assert graph_files(dest, card, "fp16")["generator"].name == "generator.fp16.onnx"
    assert graph_files(dest, card, "fp32")["generator"].name == "generator.onnx"
    m16 = load_model("tiny", "v", dest, card, ["CPUExecutionProvider"], 1, precision="fp16")
    m32 = load_model("tiny", "v", dest, card, ["CPUExecutionProvider"], 1)
    assert m16.info()["precision"] == "fp16" and m32.info()["precision"] == "fp32"
    a, b = m16.generate(8, seed=3), m32.generate(8, seed=3)
    assert a.shape == b.shape and np.abs(a.astype(float) - b.astype(float)).max() <= 0.05 * 255 / 2 + 1


def test_fp16_is_optional_and_falls_back_to_fp32(run_dir, tmp_path):
    from serving.runtime import graph_files

    dest = export_run(run_dir, "tiny-dcgan", tmp_path / "art", store=False, fp16=False)
    card = json.loads((dest / "card.json").read_text())
    assert "fp16" not in card["graphs"]["generator"] and not (dest / "generator.fp16.onnx").exists()
    assert graph_files(dest, card, "fp16")["generator"].name == "generator.onnx"


def test_fp16_copy_that_strays_is_refused_and_not_written(run_dir, tmp_path):
    from training.fp16 import FP16Error, add_fp16

    dest = export_run(run_dir, "tiny-dcgan", tmp_path / "art", store=False, fp16=False)
    with pytest.raises(FP16Error, match="differs from float32"):
        add_fp16(dest, tolerance=0.0)
    assert sorted(p.name for p in dest.iterdir()) == ["card.json", "card.md", "generator.onnx", "metrics.csv"]


def test_export_ships_the_runs_curves_and_serving_reads_them(run_dir, tmp_path):
    from serving import load
    from serving.curves import read_curves
    from serving.import_models import import_artifact
    from serving.store import list_models, model_store

    dest = export_run(run_dir, "tiny-dcgan", tmp_path / "art", store=False, fp16=False)
    card = json.loads((dest / "card.json").read_text())
    entry = card["curves"]
    assert entry["file"] == "metrics.csv" and entry["averaged_every"] == 0 and entry["last_step"] == 3
    assert {"loss_d", "loss_g"} <= set(entry["names"]) and entry["bytes"] == (dest / "metrics.csv").stat().st_size
    assert read_curves(dest / "metrics.csv") == read_curves(run_dir / "metrics.csv")  # a short log, row for row
    assert "## Training curves" in (dest / "card.md").read_text()
    assert load(dest).curves()["loss_d"][0] == [3]
    home = tmp_path / "home"
    import_artifact(dest, home=home)  # the contract and the import accept it, and store it
    (stored,) = list_models(model_store(home), "tiny-dcgan")
    assert (Path(stored.path) / "metrics.csv").read_bytes() == (dest / "metrics.csv").read_bytes()


def test_a_run_without_metrics_exports_without_curves(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir / "checkpoints", run / "checkpoints")
    dest = export_run(run, "tiny-dcgan", tmp_path / "art", store=False, fp16=False)
    assert "curves" not in json.loads((dest / "card.json").read_text()) and not (dest / "metrics.csv").exists()
