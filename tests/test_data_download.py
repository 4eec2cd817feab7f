"""--download: torchvision's own downloader, checked against a folder already in its layout.

The network is never used here: the folder holds the files torchvision looks for, so its
downloader must find them and fetch nothing (a fetch would fail loudly: the download
function is replaced by one that raises, so the test cannot pass by downloading)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from training.config import TrainConfig
from training.data import DataError, download_dataset, load_dataset
from training.loop import train


def _idx(path: Path, arr: np.ndarray) -> None:
    code = 0x08
    header = struct.pack(">HBB", 0, code, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def torchvision_layout(root: Path, folder: str, n: int = 40) -> Path:
    """``root/<folder>/raw/`` with the four idx files torchvision's MNIST-style datasets expect."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("t10k", n // 2)):
        _idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28)))
        _idx(raw / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, count))
    return root


@pytest.fixture
def offline(monkeypatch):
    import torchvision.datasets.mnist as mnist
    import torchvision.datasets.utils as utils

    def refuse(*_a, **_k):
        raise AssertionError("--download fetched from the network although the files were there")

    monkeypatch.setattr(utils, "download_and_extract_archive", refuse)
    monkeypatch.setattr(mnist, "download_and_extract_archive", refuse)


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_download_keeps_a_torchvision_folder_and_the_loader_reads_it(tmp_path, offline, name, folder):
    root = torchvision_layout(tmp_path, folder)
    assert download_dataset(name, root) == root
    train_set, test_set = load_dataset(name, root, "train", 28), load_dataset(name, root, "test", 28)
    assert len(train_set.images) == 40 and len(test_set.images) == 20


def test_train_with_download_runs_on_the_folder(tmp_path, offline):
    root = torchvision_layout(tmp_path / "data", "MNIST")
    cfg = TrainConfig(variant="dcgan", data="mnist", data_root=str(root), download=True, steps=1, batch_size=8,
                      image_size=16, out=str(tmp_path / "run"), threads=1, model={"width": 8},
                      sample_every=1, ckpt_every=1, log_every=1)
    assert train(cfg, progress=False)["steps"] == 1


def test_download_names_what_it_can_fetch(tmp_path):
    with pytest.raises(DataError, match="mnist, fashion_mnist, cifar10"):
        download_dataset("olivetti", tmp_path)
