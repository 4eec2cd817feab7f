"""serving.import_models and serving.store: artifact directories in and out of the model store.

The graphs here are placeholder bytes: importing does not parse ONNX, it copies and labels.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from serving import import_models
from serving.import_models import import_artifact
from serving.store import list_models, model_store, read_card, select_latest

REPO = Path(__file__).resolve().parent.parent


def make_artifact(root: Path, name: str = "dcgan", weights: bytes = b"graph-v1", **card) -> Path:
    d = root / f"{name}-{hashlib.sha256(weights).hexdigest()[:6]}"
    d.mkdir(parents=True)
    (d / "generator.onnx").write_bytes(weights)
    (d / "card.md").write_text(f"# {name}\n")
    full = {
        "name": name,
        "variant": "dcgan",
        "task": "generate",
        "sha256": hashlib.sha256(weights).hexdigest(),
        "domains": None,
        "metrics": {"fid": 3.5, "note": None},
        "graphs": {"generator": {"file": "generator.onnx", "inputs": ["z"], "outputs": ["image"]}},
        **card,
    }
    (d / "card.json").write_text(json.dumps(full))
    return d


def versions(home: Path, name: str) -> list[str]:
    return sorted(str(m.tag) for m in list_models(model_store(home), name))


def test_import_labels_copies_and_keeps_the_card(tmp_path):
    home = tmp_path / "home"
    art = make_artifact(tmp_path, metrics={"fid": 3.5})
    tag = import_artifact(art, home=home)
    assert tag.startswith("dcgan:")
    (stored,) = list_models(model_store(home), "dcgan")
    assert str(stored.tag) == tag
    assert stored.info.labels == {"ganzoo": "true", "task": "generate", "variant": "dcgan"}
    meta = stored.info.metadata
    assert meta["sha256"] == hashlib.sha256(b"graph-v1").hexdigest() and meta["metrics"] == {"fid": 3.5}
    assert "domains" not in meta  # BentoML metadata cannot hold null; card.json keeps it
    files = sorted(p.name for p in Path(stored.path).iterdir())
    assert {"card.json", "card.md", "generator.onnx"} <= set(files)
    assert (Path(stored.path) / "generator.onnx").read_bytes() == b"graph-v1"
    source = json.loads((art / "card.json").read_text())  # stored as is, plus each graph's sha256 and bytes
    graph = {**source["graphs"]["generator"], "sha256": hashlib.sha256(b"graph-v1").hexdigest(), "bytes": 8}
    assert read_card(stored) == {**source, "graphs": {"generator": graph}}


def test_same_sha_is_skipped_new_sha_adds_a_version_and_nothing_is_deleted(tmp_path):
    home = tmp_path / "home"
    first = import_artifact(make_artifact(tmp_path / "a"), home=home)
    again = import_artifact(make_artifact(tmp_path / "b"), home=home)  # other directory, same sha256
    assert again == first and versions(home, "dcgan") == [first]
    second = import_artifact(make_artifact(tmp_path / "c", weights=b"graph-v2"), home=home)
    assert second != first and versions(home, "dcgan") == sorted([first, second])
    assert import_artifact(make_artifact(tmp_path / "d"), home=home) == first  # v1 again: still known
    assert versions(home, "dcgan") == sorted([first, second])
    latest = select_latest(list_models(model_store(home)))
    assert str(latest["dcgan"].tag) == second


def test_missing_sha_falls_back_to_the_graph_bytes(tmp_path):
    home = tmp_path / "home"
    art = make_artifact(tmp_path, sha256=None)
    import_artifact(art, home=home)
    (stored,) = list_models(model_store(home), "dcgan")
    assert stored.info.metadata["sha256"] == hashlib.sha256(b"graph-v1").hexdigest()


@pytest.mark.parametrize(
    "breakage, words",
    [
        (lambda d: (d / "card.json").unlink(), "no card.json"),
        (lambda d: (d / "card.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "card.json").write_text("[1, 2]"), "JSON object"),
        (lambda d: (d / "generator.onnx").unlink(), "generator.onnx is missing"),
        (
            lambda d: (d / "card.json").write_text(
                json.dumps({"name": "x", "graphs": {"generator": "../../etc/passwd"}})
            ),
            "outside",
        ),
    ],
)
def test_broken_artifacts_are_refused_and_store_nothing(tmp_path, breakage, words):
    home = tmp_path / "home"
    art = make_artifact(tmp_path)
    breakage(art)
    with pytest.raises(ValueError, match=words):
        import_artifact(art, home=home)
    assert list_models(model_store(home)) == []


def test_unreadable_store_entries_are_skipped(tmp_path):
    home = tmp_path / "home"
    good = import_artifact(make_artifact(tmp_path), home=home)
    (home / "models" / "dcgan" / "half-copied").mkdir()  # a version dir without model.yaml
    assert [str(m.tag) for m in list_models(model_store(home))] == [good]


def _fake(name: str, minutes: int, ganzoo: str = "true") -> SimpleNamespace:
    return SimpleNamespace(
        tag=SimpleNamespace(name=name, version=f"v{minutes}"),
        info=SimpleNamespace(labels={"ganzoo": ganzoo}),
        creation_time=datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=minutes),
    )


def test_select_latest_takes_the_newest_ganzoo_version_per_name():
    models = [_fake("a", 1), _fake("a", 5), _fake("a", 3), _fake("b", 2), _fake("other", 9, ganzoo="")]
    chosen = select_latest(models)
    assert {k: v.tag.version for k, v in chosen.items()} == {"a": "v5", "b": "v2"}
    assert list(select_latest(models, only={"b", "missing"})) == ["b"]


def test_cli_with_no_argument_and_an_empty_pretrained_dir(tmp_path, capsys):
    assert import_models.main([], pretrained=tmp_path / "pretrained") == 0
    assert "nothing to import" in capsys.readouterr().out


def test_cli_imports_skips_and_reports_errors(tmp_path):
    art = make_artifact(tmp_path)
    bad = tmp_path / "not-an-artifact"
    bad.mkdir()
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "home"), "BENTOML_DO_NOT_TRACK": "True"}
    cmd = [sys.executable, "-m", "serving.import_models", str(art), str(art), str(bad)]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert lines[0].startswith("imported: dcgan:") and lines[1].startswith("already stored, skipped: dcgan:")
    assert "not-an-artifact: no card.json" in out.stderr
    assert versions(tmp_path / "home", "dcgan") == [lines[0].split()[1]]


def test_serving_never_imports_torch_zoo_or_training():
    code = (
        "import sys, serving.service, serving.import_models; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'zoo', 'training')))"
    )
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
