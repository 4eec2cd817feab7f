"""``python -m training eval --help`` works, and ``export`` says what it did."""

from __future__ import annotations

import re
import subprocess
import sys

from training.__main__ import main
from training.config import TrainConfig
from training.loop import train


def test_eval_help_is_the_eval_suites_help():
    r = subprocess.run([sys.executable, "-m", "training", "eval", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "render-cards" in r.stdout and "unrecognized arguments" not in r.stderr


def test_export_prints_sizes_parity_and_destination(tmp_path, capsys):
    run = tmp_path / "run"
    train(TrainConfig(variant="dcgan", data="digits", out=str(run), steps=2, batch_size=8, threads=1,
                      model={"width": 8, "latent_dim": 16, "image_size": 16}), progress=False)
    capsys.readouterr()
    art = tmp_path / "art"
    assert main(["export", str(run), "--name", "tiny", "--out", str(art), "--no-store"]) == 0
    out = capsys.readouterr().out
    assert f"exported tiny (dcgan, step 2, checkpoint latest.pt) -> {art}" in out
    assert "generator: generator.onnx" in out and "ONNX Runtime vs torch max |diff|" in out
    assert "fp16 generator.fp16.onnx" in out and "max |diff| vs fp32" in out
    assert f"not stored (--no-store): python -m serving.import_models {art}" in out
    assert re.search(r"curves: metrics.csv \d+\.\d kB, up to step 2 \(every logged row\)", out), out
    assert f"measure it: python -m training eval onnx {art} --data-root" in out
    assert "python -m training eval onnx <this folder>" in (art / "card.md").read_text()


def test_export_shows_a_progress_bar_through_its_steps(tmp_path, capsys):
    """Export takes seconds per graph: on request (a terminal, by default) it shows where it is."""
    from training.config import TrainConfig
    from training.export import export_run
    from training.loop import train

    run = tmp_path / "run"
    train(TrainConfig(variant="dcgan", data="digits", steps=1, batch_size=8, image_size=16, out=str(run), threads=1,
                      model={"width": 8}, ckpt_every=1, sample_every=1, log_every=1), progress=False)
    capsys.readouterr()
    export_run(run, "bar", tmp_path / "bar", which="latest", store=False, fp16=False, progress=True)
    err = capsys.readouterr().err
    assert "export bar" in err and "/2 " in err and "serving contract" in err  # one graph + the serving check
