"""``python -m training critic --from-run``: the training run's own D becomes the served critic,
refused unless it is the D of the generator the artifact holds (scikit-learn's digits, tiny runs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from serving.runtime import validate_artifact
from training.__main__ import main
from training.config import TrainConfig
from training.critic import RunMismatch, critic_from_run
from training.export import export_run, load_run
from training.loop import train

TINY = {"width": 8, "latent_dim": 16, "image_size": 16}


def _run(out: Path, steps: int, seed: int = 0) -> Path:
    train(TrainConfig(variant="dcgan", data="digits", out=str(out), steps=steps, batch_size=16, threads=1, seed=seed,
                      model=TINY), progress=False)
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("from-run")
    run = _run(root / "run", 30)
    art = export_run(run, "tiny-dcgan", root / "art", which="latest", store=False)
    torch.set_num_threads(1)
    rc = main(["critic", str(art), "--from-run", str(run), "--quantile", "0.5", "--temperature", "0.5"])
    assert rc in (0, None)
    return run, art


def test_the_runs_d_is_exported_as_the_critic_and_recorded(exported):
    run, art = exported
    card = json.loads((art / "card.json").read_text())
    entry = card["rejection"]
    assert entry["source"] == "run:D" and entry["critic_steps"] == 30
    assert "--from-run" in entry["command"] and 0.2 < entry["acceptance"] < 0.95
    assert 0.0 <= entry["held_out_auc"] <= 1.0
    # the graph is the run's D in eval mode (BatchNorm on running statistics): one logit per image
    _, nets, _ = load_run(run, "latest")
    x = torch.rand(5, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        want = nets["D"].eval()(x).numpy()
    got = ort.InferenceSession(str(art / "critic.onnx")).run(None, {"image": x.numpy()})[0]
    assert got.shape == (5,) and np.abs(got - want).max() < 1e-4
    # and a sample's score does not depend on the batch it is in
    one = ort.InferenceSession(str(art / "critic.onnx")).run(None, {"image": x[:1].numpy()})[0]
    assert abs(float(one[0]) - float(got[0])) < 1e-5


def test_serving_filters_through_the_runs_d(exported):
    _, art = exported
    model = validate_artifact(art)
    assert model.filters == ["critic", "none"]
    filtered, raw = model.generate(32, seed=5), model.generate(32, seed=5, filter="none")
    assert 0 < (filtered != raw).any(axis=(1, 2, 3)).sum() < 32


def test_a_d_from_another_run_is_refused(exported, tmp_path):
    _, art = exported
    other = _run(tmp_path / "other", 4, seed=1)
    before = (art / "card.json").read_text()
    with pytest.raises(RunMismatch, match="is not the run tiny-dcgan was exported from"):
        critic_from_run(art, other, None)
    assert (art / "card.json").read_text() == before  # nothing written
    rc = main(["critic", str(art), "--from-run", str(other)])
    assert rc == 2


def test_a_net_the_run_lacks_is_named(exported):
    run, art = exported
    with pytest.raises(ValueError, match="has no net 'critic'.*D, G"):
        critic_from_run(art, run, None, net="critic")


def test_an_autoencoders_image_d_filters_its_decoder(tmp_path):
    """aae serves /generate from its decoder on prior samples (task "reconstruct"): its image
    discriminator DX is a critic like a GAN's D, and serving filters through it."""
    run = tmp_path / "aae"
    train(TrainConfig(variant="aae", data="digits", out=str(run), steps=20, batch_size=16, threads=1,
                      model={"width": 8, "latent_dim": 4, "image_size": 16, "d_hidden": 16, "image_adv": 0.1,
                             "image_d_width": 8}), progress=False)
    art = export_run(run, "tiny-aae", tmp_path / "art", which="latest", store=False)
    with pytest.raises(ValueError, match="has no net 'D2'.*D, DX, Dec, E"):
        critic_from_run(art, run, None, net="D2")
    torch.set_num_threads(1)
    assert main(["critic", str(art), "--from-run", str(run), "--net", "DX", "--quantile", "0.5",
                 "--temperature", "0.5"]) in (0, None)
    card = json.loads((art / "card.json").read_text())
    assert card["task"] == "reconstruct" and card["rejection"]["source"] == "run:DX"
    model = validate_artifact(art)
    assert model.filters == ["critic", "none"]
    filtered, raw = model.generate(32, seed=5), model.generate(32, seed=5, filter="none")
    assert 0 < (filtered != raw).any(axis=(1, 2, 3)).sum() < 32
