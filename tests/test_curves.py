"""Training curves in artifacts (serving/curves.py): a run's metrics.csv, compacted to a budget,
verified against the card wherever an artifact is checked, readable without torch."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from serving import curves, load
from serving.contract import LoadError, check_curves


def long_log(steps: int = 55_000, log_every: int = 25, eval_every: int = 500) -> str:
    """A metrics.csv as the loop writes it for a stylegan-length run (four scalars every
    ``log_every`` steps, the keep-best score every ``eval_every``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(curves.HEADER)
    for step in range(log_every, steps + 1, log_every):
        w.writerows([(step, "loss_d", f"{1 + (step % 100) / 100:.6g}"), (step, "loss_g", f"{step / steps:.6g}"),
                     (step, "it_per_s", "1.5"), (step, "lr_factor", "1")])
        if step % eval_every == 0:
            w.writerow((step, "eval_score", f"{0.9 - 0.3 * step / steps:.6g}"))
    return buf.getvalue()


def test_a_long_log_is_averaged_into_the_budget_and_keeps_every_eval_row(tmp_path):
    text = long_log()
    assert len(text) > curves.MAX_BYTES
    out, every = curves.compact(text)
    assert len(out.encode()) <= curves.MAX_BYTES and every == curves.EVERY
    (tmp_path / "out.csv").write_text(out)
    (tmp_path / "in.csv").write_text(text)
    got, want = curves.read_curves(tmp_path / "out.csv"), curves.read_curves(tmp_path / "in.csv")
    assert got["eval_score"] == want["eval_score"]  # every keep-best score, as logged
    steps, values = got["loss_d"]
    assert steps[0] == every and steps[-1] == 55_000 and len(steps) == 55_000 // every
    # loss_d cycles 1.25, 1.5, 1.75, 1.0 within every 100 steps: each averaged point is their mean
    assert all(v == pytest.approx(1.375) for v in values)


def test_a_short_log_is_kept_row_for_row_and_relogged_steps_keep_their_last_value():
    text = "step,name,value\n25,loss_d,1\n50,loss_d,2\n50,eval_score,0.9\n50,loss_d,3\n75,loss_d,4\n"
    out, every = curves.compact(text)
    assert every == 0
    assert out == "step,name,value\n25,loss_d,1\n50,loss_d,3\n50,eval_score,0.9\n75,loss_d,4\n"
    with pytest.raises(curves.CurvesError, match="starts with step,name,value"):
        curves.compact("a,b,c\n1,x,2\n")
    with pytest.raises(curves.CurvesError, match="line 2"):
        curves.compact("step,name,value\nfive,loss_d,1\n")


def _artifact_with_curves(src: Path, dest: Path, text: str = "step,name,value\n10,loss_d,0.5\n10,eval_score,0.8\n"
                          ) -> Path:
    art = shutil.copytree(src, dest)
    (art / "metrics.csv").write_text(text)
    card = json.loads((art / "card.json").read_text())
    (art / "card.json").write_text(json.dumps({**card, "curves": curves.record(art / "metrics.csv", 0)}))
    return art


def test_curves_are_verified_at_load_and_an_artifact_without_them_loads_with_none(serving_artifacts, tmp_path):
    plain = load(serving_artifacts.dirs["dcgan"])  # like an --onnx import: no curves in the card
    assert plain.curves() == {} and check_curves(serving_artifacts.dirs["dcgan"], plain.card) is None
    art = _artifact_with_curves(serving_artifacts.dirs["dcgan"], tmp_path / "art")
    assert load(art).curves() == {"loss_d": ([10], [0.5]), "eval_score": ([10], [0.8])}

    (art / "metrics.csv").write_text("step,name,value\n10,loss_d,0.4\n10,eval_score,0.8\n")  # same size, other bytes
    with pytest.raises(LoadError, match="curves: metrics.csv has sha256"):
        load(art)
    (art / "metrics.csv").unlink()
    with pytest.raises(LoadError, match="curves: metrics.csv is missing"):
        load(art)
    card = json.loads((art / "card.json").read_text())
    with pytest.raises(LoadError, match="lies outside"):
        check_curves(art, {**card, "curves": {**card["curves"], "file": "../card.json"}})


def test_import_stores_the_curves_beside_the_graphs_and_refuses_a_mismatch(serving_artifacts, tmp_path):
    from serving.import_models import import_artifact
    from serving.store import list_models, model_store

    home = tmp_path / "home"
    art = _artifact_with_curves(serving_artifacts.dirs["cgan"], tmp_path / "art")
    import_artifact(art, home=home)
    (stored,) = list_models(model_store(home), "cgan")
    assert (Path(stored.path) / "metrics.csv").read_bytes() == (art / "metrics.csv").read_bytes()
    assert load("cgan", home=home).curves()["eval_score"] == ([10], [0.8])  # from the store, as the Bento carries it

    other = _artifact_with_curves(serving_artifacts.dirs["dcgan"], tmp_path / "other")
    (other / "metrics.csv").write_text("step,name,value\n10,loss_d,0.5\n10,eval_score,0.7\n")
    with pytest.raises(ValueError, match="curves: metrics.csv has sha256"):
        import_artifact(other, home=home)
    assert not list_models(model_store(home), "dcgan")
