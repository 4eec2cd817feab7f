"""The shipped StyleGAN-style faces model (issue 17): trained with DiffAugment on the Olivetti
faces, and what the API offers a StyleGAN works on it: truncation, interpolation, mixing.

On the artifact in serving/pretrained/stylegan-faces, through ``serving.load`` (ONNX Runtime,
the service's own code paths); test_cli_api.py checks that this API gives the HTTP bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from serving import load

ARTIFACT = Path(__file__).resolve().parent.parent / "serving" / "pretrained" / "stylegan-faces"


@pytest.fixture(scope="module")
def faces():
    return load(ARTIFACT)


def test_the_card_names_its_data_augmentation_and_measurements():
    card = json.loads((ARTIFACT / "card.json").read_text())
    assert card["dataset"] == "olivetti" and card["variant"] == "stylegan"
    assert "--augment color,translation,cutout" in card["train_command"]
    m = card["metrics"]
    for key in ("fid", "kid", "precision", "recall", "one_nn_acc", "memorisation_ratio", "memorisation_copy_share"):
        assert isinstance(m.get(key), float), key
    assert m["coverage_of"] == 32 and m["eval_dataset"] == "olivetti"
    assert card["curves"]["file"] == "metrics.csv"  # the run's training curves ship with it


def test_samples_are_faces_shaped_and_seeded(faces):
    a = faces.generate(n=6, seed=3)
    assert a.shape == (6, 32, 32, 1) and a.dtype == np.uint8
    assert np.array_equal(a, faces.generate(n=6, seed=3))
    assert not np.array_equal(a, faces.generate(n=6, seed=4))
    assert a.std() > 20  # not a flat grey: contrast a face has


def test_truncation_pulls_samples_towards_the_mean_face(faces):
    spread = {psi: faces.generate(n=32, seed=0, psi=psi).astype(np.float64).std(axis=0).mean()
              for psi in (1.0, 0.5, 0.0)}
    assert spread[1.0] > spread[0.5] > spread[0.0]
    assert spread[0.0] < 0.5 * spread[1.0]  # psi 0: one w for all; only the per-layer noise differs


def test_interpolation_and_mixing_work_on_faces(faces):
    frames = faces.interpolate(1, 2, steps=5)
    assert frames.shape == (5, 32, 32, 1)
    np.testing.assert_array_equal(frames[0], faces.generate(n=1, seed=1)[0])
    # the walk goes somewhere (its noise stays seed 1's, so the last frame is seed 2's w, not its tile)
    steps = [np.abs(frames[i + 1].astype(int) - frames[i]).mean() for i in range(4)]
    assert all(0 < s_ < 60 for s_ in steps) and np.abs(frames[-1].astype(int) - frames[0]).mean() > max(steps)
    grid = faces.mix([1, 2], [3, 4], crossover=3)
    assert grid.ndim == 3 and grid.shape[2] == 1 and grid.std() > 10
