"""The committed pictures (``make figures``) exist where the docs link them, fit the size
budget, and are what the shipped artifacts generate today."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from serving import api, load

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "docs" / "images"
DOCS = [REPO / "README.md", REPO / "docs" / "RESULTS.md", *sorted((REPO / "serving" / "pretrained").glob("*/card.md"))]


def test_every_linked_image_exists_and_is_small():
    linked = 0
    for doc in DOCS:
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", doc.read_text()):
            path = (doc.parent / target).resolve()
            assert path.is_file(), f"{doc.relative_to(REPO)} links a missing image {target}"
            linked += 1
    assert linked >= 15
    for f in IMAGES.iterdir():
        assert f.stat().st_size <= 200_000, f"{f.name} is {f.stat().st_size} bytes"
    for card in sorted((REPO / "serving" / "pretrained").glob("*/card.md")):
        assert "../../../docs/images/" in card.read_text(), f"{card.parent.name}'s card embeds no figure"


def assert_same_picture(png: np.ndarray, want: np.ndarray) -> None:
    """Equal up to the uint8 rounding of floats that ONNX Runtime's CPU kernels compute a few
    ulps apart on different CPUs (measured: 1 to 3 pixels of 42k-75k, one grey level off):
    at most 1 grey level, on at most 0.1% of the pixels."""
    assert png.shape == want.shape
    diff = np.abs(png.astype(np.int16) - want.astype(np.int16))
    assert diff.max() <= 1, f"pixels differ by up to {diff.max()} grey levels"
    assert (diff > 0).mean() <= 1e-3, f"{(diff > 0).mean():.2%} of the pixels differ"


@pytest.mark.parametrize("name", ["dcgan", "cgan-fashion", "stylegan"])
def test_committed_grid_is_what_the_artifact_generates(name):
    png = np.asarray(Image.open(IMAGES / f"{name}-grid.png"))[::2, ::2]  # figures are 2x nearest
    want = api.grid(load(REPO / "serving" / "pretrained" / name).generate(n=64, seed=0))
    assert_same_picture(png[:, :, None] if png.ndim == 2 else png, want)


def test_mixing_figure_matches_the_api():
    m = load(REPO / "serving" / "pretrained" / "stylegan")
    png = np.asarray(Image.open(IMAGES / "stylegan-mix.png"))[::2, ::2]
    assert_same_picture(png[:, :, None], m.mix([1, 2, 3, 4, 5], [6, 7, 8, 9, 10], crossover=3))
    with pytest.raises(AssertionError):  # the tolerance tells a wrong crossover from rounding
        assert_same_picture(png[:, :, None], m.mix([1, 2, 3, 4, 5], [6, 7, 8, 9, 10], crossover=2))


def test_mix_default_crossover_comes_from_the_card(serving_artifacts, tmp_path):
    import json
    import shutil

    shipped = load(REPO / "serving" / "pretrained" / "stylegan")
    assert shipped.card["mix_crossover"] == 3
    np.testing.assert_array_equal(shipped.mix([1, 2], [3]), shipped.mix([1, 2], [3], crossover=3))
    art = shutil.copytree(serving_artifacts.dirs["stylegan"], tmp_path / "stylegan")  # tiny, L = 4
    tiny = load(art)
    np.testing.assert_array_equal(tiny.mix([1, 2], [3, 4]), tiny.mix([1, 2], [3, 4], crossover=2))  # L/2
    card = json.loads((art / "card.json").read_text())
    (art / "card.json").write_text(json.dumps({**card, "mix_crossover": 1}))
    tiny = load(art)
    np.testing.assert_array_equal(tiny.mix([1, 2], [3, 4]), tiny.mix([1, 2], [3, 4], crossover=1))
    assert not np.array_equal(tiny.mix([1, 2], [3, 4]), tiny.mix([1, 2], [3, 4], crossover=2))
    from serving.runtime import LoadError

    for bad in (5, -1, 2.5, "two", True):  # L = 4: a card's default outside 0..L is refused at load
        (art / "card.json").write_text(json.dumps({**card, "mix_crossover": bad}))
        with pytest.raises(LoadError, match=r"'mix_crossover' must be an integer in 0\.\.4, got"):
            load(art)
    (art / "card.json").write_text(json.dumps({**card, "mix_crossover": "4"}))  # as ONNX metadata holds it
    assert np.array_equal(load(art).mix([1], [2]), tiny.mix([1], [2], crossover=4))


def _figures():  # noqa: ANN202
    import importlib.util

    spec = importlib.util.spec_from_file_location("figures", REPO / "docs" / "figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_curve_figure_renders_from_an_exported_run(tmp_path, serving_artifacts):
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from training.config import TrainConfig
    from training.export import export_run
    from training.loop import train

    run = tmp_path / "run"
    train(TrainConfig(variant="dcgan", data="digits", out=str(run), steps=4, batch_size=16, threads=1, log_every=1,
                      eval_every=2, eval_samples=64, model={"width": 8, "latent_dim": 16, "image_size": 16}),
          progress=False)
    art = export_run(run, "tiny-dcgan", tmp_path / "art", store=False, fp16=False)
    figures = _figures()
    png = figures.curves_png(plt, art)
    assert png is not None and len(png) <= 200_000
    assert png == figures.curves_png(plt, art)  # deterministic: the same bytes on every run
    img = Image.open(io.BytesIO(png))
    assert img.size == (900, 320)
    assert np.asarray(img.convert("L")).std() > 10  # something is drawn
    assert figures.curves_png(plt, serving_artifacts.dirs["dcgan"]) is None  # an artifact without curves


def test_results_say_which_shipped_artifacts_have_curves(tmp_path):
    import json
    import shutil

    figures = _figures()
    results = REPO / "docs" / "RESULTS.md"
    pretrained = sorted(p for p in (REPO / "serving" / "pretrained").iterdir() if (p / "card.json").is_file())
    with_curves = [p.name for p in pretrained if json.loads((p / "card.json").read_text()).get("curves")]
    text = results.read_text()
    for p in pretrained:
        assert figures.CURVES_BEGIN.format(p.name) in text, f"RESULTS.md has no curves block for {p.name}"
        if p.name in with_curves:
            assert (IMAGES / f"curves-{p.name}.png").is_file() and f"images/curves-{p.name}.png" in text
    copy = shutil.copy(results, tmp_path / "RESULTS.md")
    figures.embed_curves_in_results(with_curves, copy)
    assert copy.read_text() == text, "RESULTS.md's curves blocks are stale: run make figures"
