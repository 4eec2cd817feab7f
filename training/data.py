"""Datasets, held in memory as uint8 tensors and batched by index.

Everything ganzoo trains on here is small enough to keep in RAM, which makes batching a
tensor index (fast on a CPU) and the data order a pure function of (seed, step), so a
resumed run sees exactly the batches an uninterrupted one would.

Sources: MNIST / Fashion-MNIST IDX files (gzip or not, our ``../shared/data`` names or
torchvision's ``MNIST/raw`` layout), CIFAR-10 (our ZIP of JPEGs or torchvision's pickles),
the Olivetti faces ``.npz``, scikit-learn's bundled digits (no download at all), any folder
of images (sub-folders become classes), and unpaired ``trainA/trainB`` folders (CycleGAN).
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DATASETS = ("mnist", "fashion_mnist", "cifar10", "olivetti", "digits", "folder", "unpaired")
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


class DataError(Exception):
    """A dataset is missing or malformed; the CLI prints this as one line."""


@dataclass
class ImageData:
    """Images as uint8 [N, C, H, W] with int64 labels (all zero when unlabelled)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str] = field(default_factory=list)
    name: str = ""

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def get_batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image": to_float(self.images[idx]), "label": self.labels[idx]}

    def subset(self, n: int) -> ImageData:
        return ImageData(self.images[:n], self.labels[:n], self.classes, self.name)


@dataclass
class UnpairedData:
    """Two unaligned domains (CycleGAN). Batches pair random A with random B images, with
    a random crop to ``crop`` and horizontal flips when ``augment`` is set."""

    a: ImageData
    b: ImageData
    crop: int
    augment: bool = True
    name: str = ""
    domains: tuple[str, str] = ("A", "B")

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    @property
    def channels(self) -> int:
        return self.a.channels

    @property
    def num_classes(self) -> int:
        return 0

    def _take(self, data: ImageData, idx: torch.Tensor) -> torch.Tensor:
        x = data.images[idx % len(data)]
        if self.augment:
            h, w = x.shape[-2:]
            i = int(torch.randint(0, h - self.crop + 1, ()))
            j = int(torch.randint(0, w - self.crop + 1, ()))
            x = x[..., i : i + self.crop, j : j + self.crop]
            flip = torch.rand(x.shape[0]) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        else:
            x = center_crop(x, self.crop)
        return to_float(x)

    def get_batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        # B is indexed through a fixed permutation so A and B images are not aligned
        perm = torch.randperm(len(self.b), generator=torch.Generator().manual_seed(len(self.a)))
        return {"A": self._take(self.a, idx), "B": self._take(self.b, perm[idx % len(self.b)])}


def to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(127.5).sub(1.0)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    i, j = (h - size) // 2, (w - size) // 2
    return x[..., i : i + size, j : j + size]


def resize_uint8(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a uint8 batch to size x size (antialiased), staying uint8."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = []
    for chunk in x.split(4096):
        y = F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(y.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


# -- readers -------------------------------------------------------------------------------
def _open(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzipped or not."""
    try:
        raw = _open(path)
        magic, = struct.unpack(">I", raw[:4])
        ndim = magic & 0xFF
        if magic >> 8 != 0x08 or ndim not in (1, 3):
            raise ValueError(f"bad magic number {magic}")
        dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
        arr = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        if arr.size != int(np.prod(dims)):
            raise ValueError(f"expected {int(np.prod(dims))} values, found {arr.size}")
        return arr.reshape(dims)
    except (OSError, ValueError, struct.error, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: not a valid IDX file ({exc})") from None


def _find(root: Path, patterns: list[str], what: str) -> Path:
    for pattern in patterns:
        hits = sorted(root.glob(pattern)) + sorted(root.glob(f"*/raw/{pattern}"))
        if hits:
            return hits[0]
    raise DataError(f"{what} not found under {root} (looked for {', '.join(patterns)})")


def load_idx_dataset(root: Path, split: str, name: str) -> ImageData:
    prefix = ["train"] if split == "train" else ["t10k", "t10k-even", "test"]
    img_pats = [f"{p}-images-idx3-ubyte{ext}" for p in prefix for ext in (".gz", "")]
    lab_pats = [f"{p}-labels-idx1-ubyte{ext}" for p in prefix for ext in (".gz", "")]
    images = read_idx(_find(root, img_pats, f"{name} {split} images"))
    labels = read_idx(_find(root, lab_pats, f"{name} {split} labels"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{root}: {name} images {images.shape} and labels {labels.shape} do not match")
    classes = FASHION_CLASSES if name == "fashion_mnist" else [str(i) for i in range(10)]
    return ImageData(torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64)), classes, name)


def _decode(data: bytes, channels: int) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("L" if channels == 1 else "RGB")
        arr = np.asarray(im)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def load_cifar10(root: Path, split: str) -> ImageData:
    pickles = sorted(root.glob("**/cifar-10-batches-py"))
    if pickles:
        files = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
        xs, ys = [], []
        for f in files:
            with open(pickles[0] / f, "rb") as fh:
                d = pickle.load(fh, encoding="bytes")
            xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.extend(d[b"labels"])
        meta = pickle.load(open(pickles[0] / "batches.meta", "rb"), encoding="bytes")
        classes = [c.decode() for c in meta[b"label_names"]]
        return ImageData(torch.from_numpy(np.concatenate(xs)), torch.tensor(ys), classes, "cifar10")
    zpath = _find(root, [f"cifar10-{split}*.zip"], f"cifar10 {split} archive")
    with zipfile.ZipFile(zpath) as zf:
        names = sorted(n for n in zf.namelist() if Path(n).suffix.lower() in IMAGE_EXTS)
        classes = sorted({Path(n).parent.name for n in names})
        images = np.stack([_decode(zf.read(n), 3) for n in names])
        labels = [classes.index(Path(n).parent.name) for n in names]
    return ImageData(torch.from_numpy(images), torch.tensor(labels), classes, "cifar10")


def load_olivetti(root: Path, split: str) -> ImageData:
    path = root if root.suffix == ".npz" else _find(root, ["olivetti*.npz"], "olivetti faces .npz")
    with np.load(path) as d:
        images, subject = d["images"], d["subject"].astype(np.int64)
    # 8 of 10 images per person for training, the last 2 for test
    keep = (np.arange(len(images)) % 10 < 8) if split == "train" else (np.arange(len(images)) % 10 >= 8)
    n_people = int(subject.max()) + 1
    return ImageData(torch.from_numpy(images[keep].copy())[:, None], torch.from_numpy(subject[keep]),
                     [f"person{i}" for i in range(n_people)], "olivetti")


def load_digits(split: str) -> ImageData:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    images = (d.images * (255.0 / 16.0)).round().astype(np.uint8)[:, None]
    labels = d.target.astype(np.int64)
    keep = (np.arange(len(images)) % 5 != 0) if split == "train" else (np.arange(len(images)) % 5 == 0)
    classes = [str(i) for i in range(10)]
    return ImageData(torch.from_numpy(images[keep].copy()), torch.from_numpy(labels[keep]), classes, "digits")


def load_folder(root: Path, channels: int, size: int, name: str = "folder") -> ImageData:
    """Every image below ``root``; the first-level sub-folders, if any, are the classes."""
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_EXTS))}) found under {root}")
    subdirs = sorted({p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1})
    classes = subdirs if subdirs and all(len(p.relative_to(root).parts) > 1 for p in files) else []
    arrs, labels = [], []
    for p in files:
        try:
            arr = torch.from_numpy(_decode(p.read_bytes(), channels).copy())
        except Exception as exc:
            raise DataError(f"{p}: cannot be read as an image ({exc})") from None
        arrs.append(resize_uint8(_square(arr)[None], size)[0])
        labels.append(classes.index(p.relative_to(root).parts[0]) if classes else 0)
    return ImageData(torch.stack(arrs), torch.tensor(labels), classes, name)


def _square(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    return center_crop(x, min(h, w)) if h != w else x


def default_channels(name: str) -> int:
    return 1 if name in ("mnist", "fashion_mnist", "olivetti", "digits") else 3


DOWNLOADABLE = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def download_dataset(name: str, root: str | Path) -> Path:
    """Fetch ``name`` into ``root`` with torchvision's own downloader (``--download``), for users
    who are online; files already there in torchvision's layout are kept and nothing is fetched.
    The loaders above read that layout (``MNIST/raw/``, ``cifar-10-batches-py``)."""
    name = name.replace("-", "_").lower()
    if name == "fashion":
        name = "fashion_mnist"
    if name not in DOWNLOADABLE:
        raise DataError(f"--download knows {', '.join(DOWNLOADABLE)}; {name!r} must be given as files")
    import torchvision

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cls = getattr(torchvision.datasets, DOWNLOADABLE[name])
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as e:  # URLError, checksum errors, ...
        raise DataError(f"cannot download {name} into {root}: {e}") from e
    return root


def load_dataset(
    name: str,
    root: str | Path | None,
    split: str = "train",
    image_size: int = 32,
    channels: int | None = None,
    load_size: int | None = None,
) -> ImageData | UnpairedData:
    """Load a dataset by name, resized to ``image_size`` (``load_size`` before the random
    crop, for unpaired data). Raises ``DataError`` with one readable line on any problem."""
    name = name.replace("-", "_").lower()
    if name == "fashion":
        name = "fashion_mnist"
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; use train or test")
    if name != "digits" and root is None:
        raise DataError(f"dataset {name!r} needs --data-root")
    path = Path(root) if root is not None else Path(".")
    if name != "digits" and not path.exists():
        raise DataError(f"data root {path} does not exist")
    ch = channels or default_channels(name)
    if name == "unpaired":
        load = load_size or (image_size if split == "test" else int(round(image_size * 1.125)))
        subdir = "train" if split == "train" else "test"
        a = load_folder(path / f"{subdir}A", ch, load, "A")
        b = load_folder(path / f"{subdir}B", ch, load, "B")
        domains = _domain_names(path)
        return UnpairedData(a, b, image_size, augment=split == "train", name=path.name, domains=domains)
    if name in ("mnist", "fashion_mnist"):
        data = load_idx_dataset(path, split, name)
    elif name == "cifar10":
        data = load_cifar10(path, split)
    elif name == "olivetti":
        data = load_olivetti(path, split)
    elif name == "digits":
        data = load_digits(split)
    else:
        return load_folder(path, ch, image_size)
    if data.channels != ch:
        if ch == 3:
            data.images = data.images.expand(-1, ch, -1, -1).contiguous()
        else:
            data.images = data.images.float().mean(1, keepdim=True).round().to(torch.uint8)
    data.images = resize_uint8(data.images, image_size)
    return data


def _domain_names(path: Path) -> tuple[str, str]:
    """'apple2orange' -> ('apple', 'orange'); otherwise ('A', 'B')."""
    stem = path.name
    if "2" in stem:
        a, _, b = stem.partition("2")
        if a and b:
            return a, b
    return "A", "B"


class BatchSampler:
    """Batches whose order is a pure function of (seed, step), sharded across ranks.

    Epoch e uses a permutation drawn from seed + e; rank r of w takes every w-th index.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.per_rank = n // world
        if self.per_rank < batch_size:
            raise DataError(f"dataset of {n} images is too small for batch size {batch_size} on {world} process(es)")
        self.per_epoch = self.per_rank // batch_size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def indices(self, batch_index: int) -> torch.Tensor:
        epoch, i = divmod(batch_index, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            self._perm = torch.randperm(self.n, generator=g)[self.rank : self.per_rank * self.world : self.world]
            self._epoch = epoch
        return self._perm[i * self.batch_size : (i + 1) * self.batch_size]
