"""The shipped StyleGAN-style models beyond digits (issue 17): the Olivetti faces (trained with
DiffAugment on 256 faces) and CIFAR-10 (colour), and what the API offers a StyleGAN on each:
truncation, interpolation, style mixing.

On the artifacts in serving/pretrained/, through ``serving.load`` (ONNX Runtime, the service's own
code paths); test_cli_api.py checks that this API gives the HTTP bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from serving import load

PRETRAINED = Path(__file__).resolve().parent.parent / "serving" / "pretrained"
# name -> (dataset, channels, classes the suite's coverage counts, metrics only that model's card has)
MODELS = {
    "stylegan-faces": ("olivetti", 1, 32, ("memorisation_ratio", "memorisation_copy_share")),
    "stylegan-cifar10": ("cifar10", 3, 10, ()),
}


@pytest.fixture(scope="module", params=list(MODELS))
def shipped(request):
    return request.param, load(PRETRAINED / request.param)


def test_the_card_names_its_data_augmentation_and_measurements(shipped):
    name, _ = shipped
    dataset, channels, classes, extra = MODELS[name]
    card = json.loads((PRETRAINED / name / "card.json").read_text())
    assert card["dataset"] == dataset and card["variant"] == "stylegan" and card["channels"] == channels
    assert "--augment color,translation,cutout" in card["train_command"]
    m = card["metrics"]
    for key in ("fid", "kid", "precision", "recall", "one_nn_acc", "coverage_classes", *extra):
        assert isinstance(m.get(key), (int, float)), key
    assert m["coverage_of"] == classes and m["eval_dataset"] == dataset
    assert card["curves"]["file"] == "metrics.csv"  # the run's training curves ship with it


def test_samples_are_seeded_and_have_contrast(shipped):
    name, m = shipped
    channels = MODELS[name][1]
    a = m.generate(n=6, seed=3)
    assert a.shape == (6, 32, 32, channels) and a.dtype == np.uint8
    assert np.array_equal(a, m.generate(n=6, seed=3))
    assert not np.array_equal(a, m.generate(n=6, seed=4))
    assert a.std() > 20  # not a flat grey
    if channels == 3:  # colour, not grey written three times
        assert np.abs(a[..., 0].astype(int) - a[..., 2]).mean() > 5


def test_truncation_pulls_samples_towards_the_mean(shipped):
    _, m = shipped
    spread = {psi: m.generate(n=32, seed=0, psi=psi).astype(np.float64).std(axis=0).mean()
              for psi in (1.0, 0.5, 0.0)}
    assert spread[1.0] > spread[0.5] > spread[0.0]
    assert spread[0.0] < 0.5 * spread[1.0]  # psi 0: one w for all; only the per-layer noise differs


def test_interpolation_and_mixing_work(shipped):
    name, m = shipped
    channels = MODELS[name][1]
    frames = m.interpolate(1, 2, steps=5)
    assert frames.shape == (5, 32, 32, channels)
    np.testing.assert_array_equal(frames[0], m.generate(n=1, seed=1)[0])
    # the walk goes somewhere (its noise stays seed 1's, so the last frame is seed 2's w, not its tile)
    steps = [np.abs(frames[i + 1].astype(int) - frames[i]).mean() for i in range(4)]
    assert all(0 < s_ < 60 for s_ in steps) and np.abs(frames[-1].astype(int) - frames[0]).mean() > max(steps)
    grid = m.mix([1, 2], [3, 4], crossover=3)
    assert grid.ndim == 3 and grid.shape[2] == channels and grid.std() > 10
