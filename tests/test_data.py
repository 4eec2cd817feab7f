"""Real data from ../shared/data through every loader, and clear errors for broken data."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training.data import BatchSampler, DataError, UnpairedData, load_dataset

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not beside this checkout")


@needs_shared
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_datasets_load_with_labels_resized_to_32(name):
    train = load_dataset(name, SHARED / name, "train", image_size=32)
    assert train.images.shape == (60000, 1, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.bincount().tolist() and train.num_classes == 10
    test = load_dataset(name, SHARED / name, "test", image_size=28)
    assert test.images.shape == (5000, 1, 28, 28)
    batch = train.get_batch(torch.arange(4))
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1 and batch["label"].dtype == torch.int64


@needs_shared
def test_unpaired_apple2orange_batches_are_cropped_and_named():
    data = load_dataset("unpaired", SHARED / "apple2orange", "test", image_size=32)
    assert isinstance(data, UnpairedData) and data.domains == ("apple", "orange")
    batch = data.get_batch(torch.arange(3))
    assert batch["A"].shape == (3, 3, 32, 32) and batch["B"].shape == (3, 3, 32, 32)


@needs_shared
def test_olivetti_split_keeps_people_apart_by_image():
    train = load_dataset("olivetti", SHARED / "olivetti_faces", "train", image_size=32)
    test = load_dataset("olivetti", SHARED / "olivetti_faces", "test", image_size=32)
    assert len(train) == 256 and len(test) == 64 and train.num_classes == 32


def test_digits_need_no_download():
    data = load_dataset("digits", None, "train", image_size=16)
    assert data.images.shape[1:] == (1, 16, 16) and len(data) > 1000


def test_image_folder_with_class_subfolders(tmp_path):
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(tmp_path / cls / f"{i}.png")
    data = load_dataset("folder", tmp_path, image_size=8)
    assert data.images.shape == (6, 3, 8, 8) and data.classes == ["cats", "dogs"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_torchvision_mnist_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    (raw / "train-images-idx3-ubyte").write_bytes(
        (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (2, 28, 28)) + images.tobytes())
    (raw / "train-labels-idx1-ubyte").write_bytes((2049).to_bytes(4, "big") + (2).to_bytes(4, "big") + bytes([3, 7]))
    data = load_dataset("mnist", tmp_path, image_size=28)
    assert torch.equal(data.images[:, 0], torch.from_numpy(images)) and data.labels.tolist() == [3, 7]


def test_malformed_and_missing_data_raise_one_clear_error(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"not an idx file at all"))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"nope"))
    with pytest.raises(DataError, match="not a valid IDX file"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_dataset("fashion_mnist", tmp_path / "..", "test")
    with pytest.raises(DataError, match="no images"):
        load_dataset("folder", tmp_path)


def test_batch_order_is_a_function_of_seed_and_step_and_ranks_are_disjoint():
    a, b = BatchSampler(100, 10, seed=3), BatchSampler(100, 10, seed=3)
    assert torch.equal(a.indices(7), b.indices(7))
    assert not torch.equal(a.indices(7), BatchSampler(100, 10, seed=4).indices(7))
    r0, r1 = BatchSampler(100, 10, 3, rank=0, world=2), BatchSampler(100, 10, 3, rank=1, world=2)
    assert not set(r0.indices(0).tolist()) & set(r1.indices(0).tolist())
    with pytest.raises(DataError, match="too small"):
        BatchSampler(5, 10, 0)
