"""training.critic: a critic fitted to an exported generator, exported as its ``critic`` graph,
served and measured through the rejection rule (real MNIST, the shipped dcgan's graph)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from serving.contract import LoadError
from serving.errors import ServingError
from serving.runtime import validate_artifact
from training.critic import add_critic
from training.evaluation.onnx_models import OnnxArtifact

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnist"
pytestmark = pytest.mark.skipif(not MNIST.exists(), reason="../shared/data is not beside this checkout")


@pytest.fixture(scope="module")
def art(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("critic") / "dcgan"
    shutil.copytree(ROOT / "serving" / "pretrained" / "dcgan", dest, ignore=shutil.ignore_patterns("critic*"))
    card = json.loads((dest / "card.json").read_text())
    card.pop("rejection", None)
    card["graphs"].pop("critic", None)
    (dest / "card.json").write_text(json.dumps(card))
    torch.set_num_threads(1)
    add_critic(dest, MNIST, steps=40, quantile=0.5, temperature=0.5, command="test")
    return dest


def test_the_critic_and_its_rule_are_recorded_in_the_card(art):
    card = json.loads((art / "card.json").read_text())
    entry = card["rejection"]
    assert entry["critic_steps"] == 40 and entry["command"] == "test"
    assert 0.3 < entry["acceptance"] < 0.9 and entry["temperature"] > 0
    graph = card["graphs"]["critic"]
    assert graph["parity_max_abs_diff"] < 1e-4 and (art / graph["file"]).stat().st_size == graph["bytes"]
    assert (art / graph["fp16"]["file"]).is_file()
    # a new version for the store: the digest it keys imports by changed, the generator's is kept
    assert card["sha256"] != card["sha256_generator"]


def test_served_tiles_go_through_the_critic_unless_asked_not_to(art):
    model = validate_artifact(art)
    assert model.filters == ["critic", "none"]
    filtered, raw = model.generate(64, seed=3), model.generate(64, seed=3, filter="none")
    replaced = (filtered != raw).any(axis=(1, 2, 3))
    assert 0 < replaced.sum() < 64  # candidate 0 kept where accepted, replaced where not
    np.testing.assert_array_equal(model.generate(8, seed=3), filtered[:8])
    d_raw, d_filtered = model.score(raw.transpose(0, 3, 1, 2) / 127.5 - 1), model.score(
        filtered.transpose(0, 3, 1, 2) / 127.5 - 1)
    assert d_filtered.mean() > d_raw.mean()  # what is served looks more like data to the critic


def test_a_bad_filter_is_a_clear_4xx(art):
    model = validate_artifact(art)
    with pytest.raises(ServingError, match="filter must be one of critic, none") as e:
        model.generate(2, seed=1, filter="best")
    assert 400 <= e.value.status < 500
    plain = validate_artifact(ROOT / "serving" / "pretrained" / "cgan")
    with pytest.raises(ServingError, match="has no critic"):
        plain.generate(2, seed=1, filter="critic")


def test_the_suite_samples_what_is_served(art):
    onnx = OnnxArtifact(art)
    a = onnx.sample(32, torch.Generator().manual_seed(0))
    b = onnx.sample(32, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    assert onnx.last_candidates > 32
    raw = onnx.sample(32, torch.Generator().manual_seed(0), filtered=False)
    assert raw.shape == a.shape and not torch.equal(raw, a)


def test_a_critic_the_card_cannot_use_is_refused_at_load(art, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(art, broken)
    card = json.loads((broken / "card.json").read_text())
    card["rejection"]["temperature"] = -1
    (broken / "card.json").write_text(json.dumps(card))
    with pytest.raises(LoadError, match="temperature must be > 0"):
        validate_artifact(broken)
    del card["rejection"]
    (broken / "card.json").write_text(json.dumps(card))
    with pytest.raises(LoadError, match="needs card.json 'rejection'"):
        validate_artifact(broken)


def test_conditional_generators_are_refused(tmp_path):
    dest = tmp_path / "cgan"
    shutil.copytree(ROOT / "serving" / "pretrained" / "cgan", dest)
    with pytest.raises(ValueError, match="unconditional"):
        add_critic(dest, MNIST, steps=1)
