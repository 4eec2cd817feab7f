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


@pytest.mark.parametrize("name", ["dcgan", "cgan-fashion", "stylegan"])
def test_committed_grid_is_what_the_artifact_generates(name):
    png = np.asarray(Image.open(IMAGES / f"{name}-grid.png"))[::2, ::2]  # figures are 2x nearest
    want = api.grid(load(REPO / "serving" / "pretrained" / name).generate(n=64, seed=0))
    np.testing.assert_array_equal(png[:, :, None] if png.ndim == 2 else png, want)


def test_mixing_figure_matches_the_api():
    m = load(REPO / "serving" / "pretrained" / "stylegan")
    png = np.asarray(Image.open(IMAGES / "stylegan-mix.png"))[::2, ::2]
    np.testing.assert_array_equal(png[:, :, None], m.mix([1, 2, 3, 4, 5], [6, 7, 8, 9, 10], crossover=3))


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
