"""Use a ganzoo model in-process, without a server: the serving code over ONNX Runtime, no torch.

    from serving import load
    m = load("dcgan")                       # latest "dcgan" in the model store (or serving/pretrained/dcgan)
    m = load("serving/pretrained/cgan")     # an artifact directory (card.json + *.onnx)
    tiles = m.generate(n=8, seed=1)         # uint8 N, H, W, C: the bytes GET /generate?format=npy decodes to

Every method runs the same ``GanModel`` code the HTTP routes run, so an array here equals
what the service answers for the same parameters. Bad arguments raise
``serving.errors.ServingError`` with the same message the API would send.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from serving import images
from serving.config import Settings
from serving.errors import ServingError
from serving.providers import pick_precision, pick_providers
from serving.runtime import GanModel, load_model

PRETRAINED = Path(__file__).resolve().parent / "pretrained"
ImageInput = str | Path | bytes | Image.Image


def _random_seed() -> int:
    return secrets.randbelow(2**31)  # as the service picks one when seed= is omitted


def read_image(image: ImageInput, max_pixels: int | None = None) -> Image.Image:
    """A path, raw bytes or a PIL image -> PIL image, through the service's upload checks."""
    if isinstance(image, Image.Image):
        return image
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    return images.decode_image(data, max_pixels or Settings().max_pixels)


def grid(tiles: np.ndarray, nrow: int | None = None) -> np.ndarray:
    """uint8 NHWC tiles -> one HWC image laid out as the service's PNG grids."""
    return images.make_grid(tiles, nrow or images.grid_columns(len(tiles)))


def save_png(arr: np.ndarray, path: str | Path) -> Path:
    """HWC uint8 -> PNG file (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(images.encode_png(arr))
    return path


class Model:
    """A loaded model; thin over ``GanModel`` so in-process results equal the HTTP ones."""

    def __init__(self, gan: GanModel, source: str) -> None:
        self.gan = gan
        self.source = source  # "store" or the artifact directory it came from

    def __repr__(self) -> str:
        return f"<ganzoo model {self.name}:{self.version} ({', '.join(self.capabilities)}) from {self.source}>"

    @property
    def name(self) -> str:
        return self.gan.name

    @property
    def version(self) -> str:
        return self.gan.version

    @property
    def card(self) -> dict[str, Any]:
        return self.gan.card

    @property
    def capabilities(self) -> list[str]:
        return self.gan.capabilities

    def curves(self) -> dict[str, tuple[list[int], list[float]]]:
        """The training curves the artifact ships (name -> (steps, values), e.g. ``loss_d``,
        ``eval_score``), verified against the card at load; empty when it ships none."""
        from serving.curves import read_curves

        return read_curves(self.gan.curves_file) if self.gan.curves_file is not None else {}

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.gan.classes]

    @property
    def directions(self) -> list[str]:
        return list(self.gan.directions)

    def info(self) -> dict[str, Any]:
        """What ``GET /models`` reports for this model."""
        return self.gan.info()

    def generate(
        self, n: int = 16, seed: int | None = None, label: int | str | None = None, psi: float | None = None,
        filter: str | None = None,
    ) -> np.ndarray:
        """``n`` tiles, uint8 NHWC, equal to ``GET /generate?format=npy`` with the same parameters.

        ``label`` is a class index or name; ``seed=None`` draws a random seed; ``filter`` is
        ``critic`` (the default for models with a critic, docs/SAMPLING.md) or ``none``."""
        if n < 1:
            raise ServingError(422, f"n must be >= 1, got {n}")
        seed = _random_seed() if seed is None else seed
        return self.gan.generate(n, seed, self.gan.resolve_label(label), psi, filter)

    def interpolate(
        self,
        seed_a: int,
        seed_b: int,
        steps: int = 8,
        label: int | str | None = None,
        psi: float | None = None,
    ) -> np.ndarray:
        """Frames (uint8 NHWC) from tile 0 of ``seed_a`` to tile 0 of ``seed_b``, as ``GET /interpolate``."""
        return self.gan.interpolate(seed_a, seed_b, steps, self.gan.resolve_label(label), psi)

    def mix(
        self, seeds: Sequence[int], styles: Sequence[int], crossover: int | None = None, psi: float | None = None
    ) -> np.ndarray:
        """Style-mixing grid as one HWC image, equal to the PNG of ``GET /mix``."""
        tiles, cols = self.gan.mix(list(seeds), list(styles), crossover, psi)
        return images.make_grid(tiles, cols)

    def translate(self, image: ImageInput, direction: str | None = None, size: int | None = None) -> np.ndarray:
        """uint8 HWC translation of ``image`` (path, bytes or PIL), as ``POST /translate``."""
        self.gan.resolve_direction(direction)
        self.gan.check_size(size)
        return self.gan.translate_array(read_image(image), direction, size)

    def reconstruct(self, image: ImageInput, label: int | str | None = None) -> np.ndarray:
        """uint8 HWC generator(encoder(image)), as ``POST /reconstruct``."""
        return self.gan.reconstruct(read_image(image), self.gan.resolve_label(label))

    def encode(self, image: ImageInput) -> np.ndarray:
        """Latent code of ``image``, as ``POST /encode``."""
        return self.gan.encode(read_image(image))


def _providers(device: str, precision: str) -> tuple[list[str], str]:
    providers = pick_providers(ort.get_available_providers(), device)
    return providers, pick_precision(providers, precision)


def load_artifact(path: str | Path, device: str = "cpu", precision: str = "auto", threads: int = 0) -> Model:
    """A model from an artifact directory (card.json + ONNX graphs, docs/ARTIFACTS.md)."""
    path = Path(path)
    card_file = path / "card.json"
    if not card_file.is_file():
        raise FileNotFoundError(f"{path} is not an artifact directory: it has no card.json")
    card = json.loads(card_file.read_text())
    providers, prec = _providers(device, precision)
    name = str(card.get("name") or path.name)
    gan = load_model(name, "local", path, card, providers, threads, prec)
    return Model(gan, str(path))


def stored_names(home: str | Path | None = None) -> list[str]:
    """Names of the ganzoo models in the store (latest version of each)."""
    from serving.store import list_models, model_store, select_latest  # bentoml: only when the store is used

    return list(select_latest(list_models(model_store(home))))


def load(
    model: str | Path,
    home: str | Path | None = None,
    device: str = "cpu",
    precision: str = "auto",
    threads: int = 0,
) -> Model:
    """Load ``model``: an artifact directory, else the latest version of that name in the
    BentoML store (``home`` = a BENTOML_HOME, default BentoML's), else the shipped
    ``serving/pretrained/<name>``. ``device``/``precision`` as GANZOO_DEVICE/GANZOO_PRECISION."""
    path = Path(model)
    if path.is_dir():
        return load_artifact(path, device, precision, threads)
    name = str(model)
    from serving.store import list_models, model_store, read_card, select_latest

    chosen = select_latest(list_models(model_store(home)), [name])
    if name in chosen:
        stored: Any = chosen[name]
        providers, prec = _providers(device, precision)
        gan = load_model(name, stored.tag.version, Path(stored.path), read_card(stored), providers, threads, prec)
        return Model(gan, "store")
    shipped = PRETRAINED / name
    if "/" not in name and (shipped / "card.json").is_file():
        return load_artifact(shipped, device, precision, threads)
    known = sorted({*stored_names(home), *(p.name for p in PRETRAINED.iterdir() if (p / "card.json").is_file())})
    raise ServingError(404, f"unknown model '{name}'; known: {', '.join(known) or 'none'}", {"known": known})

