"""Artifacts verified at load: a graph whose bytes differ from its card is never served.

The shipped artifacts (serving/pretrained/, cards from training's export with sha256 and
bytes per graph and per fp16 copy), a real BentoML store in a temporary home, real ONNX
Runtime sessions.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import bentoml
import pytest

from serving.import_models import PRETRAINED, import_artifact
from serving.runtime import LoadError, load_model
from serving.store import list_models, load_served, model_store, read_card

CPU = ["CPUExecutionProvider"]


def _stored_path(home: Path, name: str) -> Path:
    (stored,) = list_models(model_store(home), name)
    return Path(stored.path)


def _overwrite_4k(file: Path) -> None:
    """Overwrite 4 KiB in the middle of ``file`` with other bytes, keeping its size."""
    data = bytearray(file.read_bytes())
    assert len(data) > 8192, "the graph must be larger than the damage"
    mid = len(data) // 2
    data[mid : mid + 4096] = bytes((b ^ 0xFF) for b in data[mid : mid + 4096])
    file.write_bytes(bytes(data))


@pytest.fixture()
def store_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    for name in ("dcgan", "cgan", "aae"):
        import_artifact(PRETRAINED / name, home=home)
    return home


def test_a_graph_overwritten_in_place_is_refused_and_the_others_load(store_home: Path):
    gen = _stored_path(store_home, "dcgan") / "generator.onnx"
    expected = hashlib.sha256(gen.read_bytes()).hexdigest()
    size = gen.stat().st_size
    _overwrite_4k(gen)
    actual = hashlib.sha256(gen.read_bytes()).hexdigest()
    assert gen.stat().st_size == size and actual != expected

    served, failed = load_served(CPU, store=model_store(store_home))
    assert sorted(served) == ["aae", "cgan"]
    assert list(failed) == ["dcgan"]
    reason = failed["dcgan"]
    assert "'generator'" in reason and "generator.onnx" in reason
    assert expected in reason and actual in reason


def test_a_graph_of_another_size_is_refused_by_its_recorded_bytes(store_home: Path):
    path = _stored_path(store_home, "aae")
    recorded = json.loads((PRETRAINED / "aae" / "card.json").read_text())["graphs"]["encoder"]["bytes"]
    with (path / "encoder.onnx").open("ab") as f:
        f.write(b"\0")
    served, failed = load_served(CPU, store=model_store(store_home))
    assert "aae" not in served and sorted(served) == ["cgan", "dcgan"]
    assert f"graph 'encoder': encoder.onnx is {recorded + 1} bytes, its card records {recorded}" in failed["aae"]


def test_the_fp16_copy_is_checked_against_its_own_entry(store_home: Path):
    _overwrite_4k(_stored_path(store_home, "dcgan") / "generator.fp16.onnx")
    served, failed = load_served(CPU, store=model_store(store_home), precision="fp32")
    assert sorted(served) == ["aae", "cgan", "dcgan"] and failed == {}
    served, failed = load_served(CPU, store=model_store(store_home), precision="fp16")
    assert sorted(served) == ["aae", "cgan"]
    expected = json.loads((PRETRAINED / "dcgan" / "card.json").read_text())["graphs"]["generator"]["fp16"]["sha256"]
    assert "generator.fp16.onnx has sha256" in failed["dcgan"] and expected in failed["dcgan"]


def test_import_records_missing_digests_in_the_stored_card(tmp_path: Path, serving_artifacts):  # noqa: ANN001
    """The test artifacts' cards carry sha256 but no bytes per graph: import adds them."""
    src = serving_artifacts.dirs["cyclegan"]
    import_artifact(src, home=tmp_path / "home")
    stored = read_card(list_models(model_store(tmp_path / "home"), "cyclegan")[0])
    for role in ("a2b", "b2a"):
        assert stored["graphs"][role]["bytes"] == (src / f"{role}.onnx").stat().st_size
    source = json.loads((src / "card.json").read_text())
    assert {k: v for k, v in stored.items() if k != "graphs"} == {k: v for k, v in source.items() if k != "graphs"}


def test_a_card_without_per_graph_digests_still_loads(tmp_path: Path, serving_artifacts, caplog):  # noqa: ANN001
    """Store entries written before graphs carried sha256 (by hand here) stay servable."""
    src = serving_artifacts.dirs["dcgan"]
    card = {"name": "old", "variant": "dcgan", "task": "generate", "graphs": {"generator": {"file": "generator.onnx"}}}
    with bentoml.models.create(
        "old", labels={"ganzoo": "true"}, metadata=card, _model_store=model_store(tmp_path / "home")
    ) as m:
        shutil.copy(src / "generator.onnx", Path(m.path) / "generator.onnx")
        (Path(m.path) / "card.json").write_text(json.dumps(card))
    with caplog.at_level("WARNING", logger="bentoml.ganzoo"):
        served, failed = load_served(CPU, store=model_store(tmp_path / "home"))
    assert list(served) == ["old"] and failed == {}
    assert "records no sha256 for graph 'generator'" in caplog.text


def test_load_model_refuses_a_digest_mismatch_directly(tmp_path: Path, serving_artifacts):  # noqa: ANN001
    art = tmp_path / "art"
    shutil.copytree(serving_artifacts.dirs["dcgan"], art)
    card = json.loads((art / "card.json").read_text())
    card["graphs"]["generator"]["sha256"] = "ab" * 32
    expected = f"graph 'generator': generator.onnx has sha256 [0-9a-f]{{64}}, its card records {'ab' * 32}"
    with pytest.raises(LoadError, match=expected):
        load_model("dcgan", "v", art, card, CPU)


def test_import_refuses_an_artifact_that_does_not_match_its_card(tmp_path: Path, serving_artifacts):  # noqa: ANN001
    art = tmp_path / "art"
    shutil.copytree(serving_artifacts.dirs["cgan"], art)
    _overwrite_4k(art / "generator.onnx")
    with pytest.raises(ValueError, match="generator.onnx has sha256"):
        import_artifact(art, home=tmp_path / "home")
    assert list_models(model_store(tmp_path / "home")) == []
