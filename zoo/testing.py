"""A conformance check any variant (built-in or plugin) can run in its own tests, in seconds on a CPU.

    from zoo.testing import check_variant
    check_variant(MyGAN, config={"width": 8, "image_size": 16})

It drives every hook the way training, export and serving do: ``build``, a few real
``train_step`` calls through the loop's optimisers, adversarial loss and image pool, ``sample``,
``preview_inputs``/``preview``, ``export_graphs`` through the real export (ONNX, parity, the
serving contract), then loads the export with the serving runtime and generates (or encodes,
reconstructs, translates) through it. Any failure raises ``ConformanceError`` naming the hook.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image

from zoo.spec import StepContext, Variant

T = TypeVar("T")


class ConformanceError(AssertionError):
    """A variant breaks the contract; the message starts with ``Class.hook()``."""


@dataclass
class Report:
    """What the check saw, for a test to assert more on."""

    variant: str
    logs: list[dict[str, float]] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)
    card: dict[str, Any] = field(default_factory=dict)
    export_dir: Path | None = None


def tiny_unpaired(size: int, channels: int = 3, n: int = 6, seed: int = 0) -> Any:
    """Two synthetic domains of ``n`` random images each (a translation variant needs no real data)."""
    from training.data import ImageData, UnpairedData

    g = torch.Generator().manual_seed(seed)
    load = int(round(size * 1.125))

    def domain(name: str) -> ImageData:
        images = torch.randint(0, 256, (n, channels, load, load), generator=g, dtype=torch.uint8)
        return ImageData(images, torch.zeros(n, dtype=torch.int64), [], name)

    return UnpairedData(domain("A"), domain("B"), size, augment=True, name="tiny", domains=("left", "right"))


def _data(cls: type[Variant], data: Any, image_size: int) -> Any:
    from training.data import ImageData, UnpairedData, load_dataset

    if isinstance(data, (ImageData, UnpairedData)):
        return data
    if data is None:
        data = "unpaired" if cls.task == "translate" else "digits"
    if data == "unpaired":
        return tiny_unpaired(image_size)
    loaded = load_dataset(str(data), None, "train", image_size=image_size)
    return loaded.subset(64) if isinstance(loaded, ImageData) else loaded


def _call(where: str, fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    except ConformanceError:
        raise
    except Exception as e:
        raise ConformanceError(f"{where} failed: {type(e).__name__}: {e}") from e


def _require(ok: bool, where: str, why: str) -> None:
    if not ok:
        raise ConformanceError(f"{where}: {why}")


def _images(where: str, x: Any, channels: int, size: int | None, n: int | None = None) -> None:
    _require(isinstance(x, torch.Tensor), where, f"must return a tensor, returned {type(x).__name__}")
    _require(x.dim() == 4, where, f"must return images [N, C, H, W], returned shape {list(x.shape)}")
    _require(x.shape[1] == channels, where, f"returned {x.shape[1]} channels, the data has {channels}")
    if size is not None:
        _require(tuple(x.shape[2:]) == (size, size), where,
                 f"returned {x.shape[2]}x{x.shape[3]} images, image_size is {size}")
    if n is not None:
        _require(x.shape[0] == n, where, f"returned {x.shape[0]} images, {n} were asked for")
    _require(bool(torch.isfinite(x).all()), where, "returned NaN or inf")
    lo, hi = float(x.min()), float(x.max())
    _require(-1.001 <= lo and hi <= 1.001, where, f"returned values in [{lo:.3g}, {hi:.3g}], not [-1, 1]")


def check_variant(
    cls: type[Variant],
    data: Any = None,
    config: dict[str, Any] | None = None,
    steps: int = 2,
    batch_size: int = 8,
    out: str | Path | None = None,
    seed: int = 0,
) -> Report:
    """Run ``cls`` through every hook training, export and serving use; raise ``ConformanceError``.

    ``data``: a dataset name for ``training.data.load_dataset`` (default ``digits``, or two
    synthetic domains for a translation variant), or an ``ImageData``/``UnpairedData``.
    ``config``: hyperparameters (keep them tiny). ``out``: where the export goes (default: a
    temporary folder, removed afterwards)."""
    from serving.runtime import validate_artifact
    from training.config import TrainConfig
    from training.data import BatchSampler
    from training.export import ExportError, export_variant
    from training.image_pool import ImagePool
    from training.loop import data_info, make_optimizers, variant_config
    from training.losses import AdversarialLoss

    name = cls.__name__
    report = Report(getattr(cls, "name", name))
    params = dict(config or {})
    cfg_obj = _call(f"{name}.Config", variant_config, cls, params)
    dataset = _call(f"{name}: loading data", _data, cls, data, int(getattr(cfg_obj, "image_size", 16)))
    info = data_info(dataset)
    torch.manual_seed(seed)
    variant = _call(f"{name}.__init__", cls, cfg_obj, info)
    nets = _call(f"{name}.build()", variant.build)
    _require(isinstance(nets, dict) and all(isinstance(m, torch.nn.Module) for m in nets.values()),
             f"{name}.build()", "must return {name: torch.nn.Module}")
    for what, names in (("ema_modules", list(variant.ema_modules)),
                        ("optimizer_groups", [n for g in variant.optimizer_groups.values() for n in g])):
        missing = sorted(set(names) - set(nets))
        _require(not missing, f"{name}.{what}", f"names {missing}, which build() does not return ({sorted(nets)})")
    if cls.task == "generate" or cls.task == "reconstruct":
        _require(variant.latent_dim > 0, f"{name}.latent_dim", "a generating variant needs latent_dim > 0")

    batch_size = min(batch_size, len(dataset))
    tcfg = TrainConfig(variant=report.variant, batch_size=batch_size, steps=steps)
    opts = make_optimizers(variant, nets, tcfg)
    sampler = BatchSampler(len(dataset), batch_size, seed)
    used = 0

    def next_batch() -> dict[str, torch.Tensor]:
        nonlocal used
        used += 1
        return dataset.get_batch(sampler.indices(used - 1))

    pools: dict[str, ImagePool] = {}

    def replay(key: str, fakes: torch.Tensor) -> torch.Tensor:
        return pools.setdefault(key, ImagePool(4)).query(fakes)

    groups = variant.optimizer_groups.items()
    before = {g: [p.detach().clone() for n in ns for p in nets[n].parameters()] for g, ns in groups}
    for m in nets.values():
        m.train()
    for step in range(steps):
        ctx = StepContext(nets, opts, AdversarialLoss(tcfg.loss), step, 1, next_batch, replay)
        logs = _call(f"{name}.train_step() (or d_loss/g_loss)", variant.train_step, ctx)
        _require(isinstance(logs, dict) and all(isinstance(v, (int, float)) for v in logs.values()),
                 f"{name}.train_step()", f"must return {{name: float}}, returned {logs!r}")
        bad = {k: v for k, v in logs.items() if not math.isfinite(v)}
        _require(not bad, f"{name}.train_step()", f"logged non-finite scalars {bad}")
        report.logs.append(dict(logs))
    for group, params_before in before.items():
        names = variant.optimizer_groups[group]
        after = [p.detach() for n in names for p in nets[n].parameters()]
        moved = any(not torch.equal(a, b) for a, b in zip(after, params_before, strict=True))
        _require(moved or not after, f"{name}.train_step()", f"optimiser group {group!r} ({', '.join(names)}) "
                 f"never changed its parameters in {steps} steps")
    for m in nets.values():
        m.eval()

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if cls.task != "translate":
            x = _call(f"{name}.sample()", variant.sample, nets, 4, gen)
            _images(f"{name}.sample()", x, variant.channels, variant.image_size, 4)
        preview_sampler = BatchSampler(len(dataset), min(batch_size, 8), seed + 1)
        batches: Iterator[dict] = (dataset.get_batch(preview_sampler.indices(i)) for i in range(10**6))
        fixed = _call(f"{name}.preview_inputs()", variant.preview_inputs, 64, gen, batches)  # as the loop does
        grid = _call(f"{name}.preview()", variant.preview, nets, fixed)
        _images(f"{name}.preview()", grid, variant.channels, None)
        cfg_dump = _call(f"{name}.Config", lambda: variant.config.model_dump(mode="json"))  # checkpoints store it
        _call(f"{name}.Config (reloaded from a checkpoint)", variant_config, cls, cfg_dump)

    tmp = None if out is not None else tempfile.TemporaryDirectory(prefix="ganzoo-check-")
    try:
        dest = Path(out) if out is not None else Path(tmp.name) / report.variant  # type: ignore[union-attr]
        try:
            dest = export_variant(variant, nets, f"check-{report.variant}", dest, {"dataset": info.name,
                                  "steps": steps}, store=False, fp16=False)
        except ExportError as e:
            raise ConformanceError(f"{name}.export_graphs(): {e}") from e
        except Exception as e:
            raise ConformanceError(f"{name}.export_graphs() or metadata() failed: {type(e).__name__}: {e}") from e
        served = validate_artifact(dest)
        report.roles, report.capabilities, report.card = sorted(served.graphs), served.capabilities, served.card
        report.export_dir = dest if out is not None else None
        _serve(name, served)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return report


def _serve(name: str, model: Any) -> None:
    """Ask the served model for everything it says it can do, as the endpoints would."""
    where = f"{name}: the served export"
    caps = model.capabilities
    _require(bool(caps), where, "can do nothing (no usable graph)")
    if "generate" in caps:
        tiles = _call(f"{where} /generate", model.generate, 3, 7)
        again = model.generate(3, 7)
        _require(np.array_equal(tiles, again), where, "/generate is not a function of the seed")
        if model.conditional:
            _call(f"{where} /generate?label", model.generate, 2, 7, model.num_classes - 1)
        _call(f"{where} /interpolate", model.interpolate, 1, 2, 3)
    if "mix" in caps:
        _call(f"{where} /mix", model.mix, [1], [2])
    size = model.image_size or 8
    img = Image.fromarray(np.full((size, size, 3), 128, np.uint8))
    if "encode" in caps:
        _call(f"{where} /encode", model.encode, img)
    if "reconstruct" in caps:
        _call(f"{where} /reconstruct", model.reconstruct, img)
    for direction in model.directions:
        _call(f"{where} /translate?direction={direction}", model.translate, img, direction)
