"""The memorisation check (training/evaluation/memorisation.py) on real images: copies, new images, noise."""

from __future__ import annotations

import torch

from training.data import load_dataset, to_float
from training.evaluation.memorisation import memorisation, nearest_distances


def unit(split: str) -> torch.Tensor:
    return (to_float(load_dataset("digits", None, split, image_size=16).images) + 1) / 2


def test_copies_score_zero_held_out_images_one_and_noise_above():
    train, held = unit("train"), unit("test")
    copies = memorisation(train[torch.randperm(len(train))[:200]], train, held)
    assert copies["ratio"] < 1e-4 and copies["copy_share"] == 1.0
    new = memorisation(held, train, held)
    assert new["ratio"] == 1.0 and new["copy_share"] == 0.0
    noise = memorisation(torch.rand(200, *train.shape[1:], generator=torch.Generator().manual_seed(0)), train, held)
    assert noise["ratio"] > 1.5 and noise["copy_share"] == 0.0


def test_nearest_distance_is_the_rms_pixel_distance_to_the_closest_image():
    ref = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)])
    q = torch.full((1, 1, 2, 2), 0.25)
    assert torch.allclose(nearest_distances(q, ref), torch.tensor([0.25], dtype=torch.float64))
