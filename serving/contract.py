"""The artifact contract (docs/ARTIFACTS.md) as code: one check that export, ``import_models
--onnx`` and the serving runtime's load all run, so what export accepts is what serving serves.

numpy only (the graphs come in as signatures read from ONNX Runtime sessions); no torch. Every
error names the role and the mismatch in one line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from serving import curves
from serving.sampling import is_random_input

KNOWN_ROLES = ("generator", "mapping", "synthesis", "encoder", "a2b", "b2a", "critic")
CONTROLS = {
    "generator": {"label", "psi", "crossover"},
    "mapping": {"label", "psi"},
    "synthesis": {"w"},
}
IMAGE_IN = ("encoder", "a2b", "b2a", "critic")
_Z = re.compile(r"^z\d*$")
_INTS = (np.int64, np.int32)


class LoadError(ValueError):
    """A model that cannot be served (missing file, bad ONNX, a graph off the contract)."""


class _Input(Protocol):
    name: str
    shape: tuple[int | None, ...]
    dtype: Any


class Signature(Protocol):
    """What the check reads of a graph: ``serving.runtime.Graph`` has it."""

    inputs: Mapping[str, _Input]
    outputs: Mapping[str, tuple[int | None, ...]]


@dataclass(frozen=True)
class Declared:
    """What the card declares; 0 where it says nothing (then that dimension is not checked)."""

    channels: int = 0
    image_size: int = 0
    latent_dim: int = 0
    num_classes: int = 0


def _fmt(shape: Iterable[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def check_roles(roles: Iterable[str], unserved: Iterable[str] = ()) -> list[str]:
    """The roles serving will use; any other role is refused unless listed in ``unserved``."""
    unserved = set(unserved)
    served = []
    for role in roles:
        if role in KNOWN_ROLES:
            if role in unserved:
                raise LoadError(f"role {role!r} is served (known roles: {', '.join(KNOWN_ROLES)}): "
                                "it cannot be marked unserved")
            served.append(role)
        elif role not in unserved:
            raise LoadError(f"role {role!r} is not one serving uses ({', '.join(KNOWN_ROLES)}); rename it, or list it "
                            "in the variant's unserved_roles (card.json 'unserved_roles') to ship it unserved")
    return served


def latent_shape(role: str, spec: _Input, latent_dim: int) -> tuple[int, ...]:
    """Per-tile shape of a ``z*`` input: ``(D,)`` for [B, D], ``(D, 1, 1)`` for [B, D, 1, 1]."""
    rest = spec.shape[1:]
    ok = len(spec.shape) == 2 or (len(spec.shape) == 4 and tuple(rest[1:]) == (1, 1))
    if not ok or rest[0] is None:
        raise LoadError(f"{role} input {spec.name!r} has shape {_fmt(spec.shape)}: a latent must be "
                        "[B, D] or [B, D, 1, 1] with a static D")
    if latent_dim and rest[0] != latent_dim:
        raise LoadError(f"{role} input {spec.name!r} has {rest[0]} values per item but card.json says "
                        f"latent_dim {latent_dim}")
    return tuple(int(d) for d in rest)  # type: ignore[arg-type]


def check_image(role: str, what: str, shape: tuple[int | None, ...], declared: Declared, spatial: bool = True) -> None:
    """An image tensor: rank 4 NCHW, C = channels and H = W = image_size where both are known."""
    if len(shape) != 4:
        raise LoadError(f"{role} {what} has shape {_fmt(shape)}: an image must be [B, C, H, W] (rank 4, "
                        f"got rank {len(shape)})")
    c, h, w = shape[1:]
    if declared.channels and c is not None and c != declared.channels:
        raise LoadError(f"{role} {what} has {c} channels but card.json says channels {declared.channels}")
    if not spatial:
        return
    if h is not None and w is not None and h != w:
        raise LoadError(f"{role} {what} is {h}x{w}: images must be square")
    size = h if h is not None else w
    if declared.image_size and size is not None and size != declared.image_size:
        raise LoadError(f"{role} {what} is {size}x{size} but card.json says image_size {declared.image_size}")


def _check_scalar(role: str, spec: _Input, ints: bool) -> None:
    if len(spec.shape) > 1 or (len(spec.shape) == 1 and spec.shape[0] not in (1, None)):
        raise LoadError(f"{role} input {spec.name!r} has shape {_fmt(spec.shape)}: it must be a scalar ([] or [1])")
    if ints and spec.dtype not in _INTS:
        raise LoadError(f"{role} input {spec.name!r} must be an integer tensor")


def check(graphs: Mapping[str, Signature], declared: Declared) -> dict[str, tuple[int, ...]]:
    """Raise ``LoadError`` naming the role and the mismatch for any graph off the contract.

    Returns the per-tile shape of every latent input (``z``, ``z2``) by name. Dimensions a graph
    leaves symbolic are not checked here; ``serving.runtime.GanModel.probe`` checks them by running.
    """
    latents: dict[str, tuple[int, ...]] = {}
    for role, graph in graphs.items():
        if role not in KNOWN_ROLES:
            raise LoadError(f"role {role!r} is not one serving uses ({', '.join(KNOWN_ROLES)})")
        if not graph.outputs:
            raise LoadError(f"{role} graph has no output")
        out_name, out = next(iter(graph.outputs.items()))
        if role in IMAGE_IN:
            # one image in, taken by position: an ONNX graph cannot name an input and an
            # output alike, so a2b/b2a ("image" -> "image") come out as e.g. "image.1"
            if len(graph.inputs) != 1:
                raise LoadError(f"{role} graph must take exactly one input (the image), has {list(graph.inputs)}")
            spec = next(iter(graph.inputs.values()))
            translate = role in ("a2b", "b2a")
            if role == "critic":  # image -> one logit per image (serving/rejection.py)
                check_image(role, f"input {spec.name!r}", spec.shape, declared)
                if not (len(out) == 1 or (len(out) == 2 and out[1] == 1)):
                    raise LoadError(f"critic output {out_name!r} has shape {_fmt(out)}: it must be one logit per "
                                    "image, [B] or [B, 1]")
                if "generator" not in graphs and "synthesis" not in graphs:
                    raise LoadError("a critic graph needs a generator (it filters generated images)")
                continue
            check_image(role, f"input {spec.name!r}", spec.shape, declared, spatial=not translate)
            if translate:
                check_image(role, f"output {out_name!r}", out, declared, spatial=False)
            continue
        allowed = CONTROLS[role]
        for name, spec in graph.inputs.items():
            random = role in ("generator", "mapping", "synthesis") and is_random_input(name)
            if name not in allowed and not random:
                hint = " (the class input must be named 'label')" if spec.dtype in _INTS and "label" in allowed else ""
                raise LoadError(f"{role} input {name!r} is not in the artifact contract{hint}")
            if _Z.match(name):
                latents[name] = latent_shape(role, spec, declared.latent_dim)
            elif name == "label":
                if len(spec.shape) != 1 or spec.dtype not in _INTS:
                    raise LoadError(f"{role} input 'label' must be int64 [B], has shape {_fmt(spec.shape)}")
                if declared.num_classes <= 0:
                    raise LoadError(f"{role} takes a label but card.json has no num_classes/classes "
                                    "(a conditional variant must override num_classes)")
            elif name in ("psi", "crossover"):
                _check_scalar(role, spec, ints=name == "crossover")
        for r, needed in (("generator", "z"), ("mapping", "z"), ("synthesis", "w")):
            if role == r and needed not in graph.inputs:
                raise LoadError(f"{role} graph has no {needed!r} input (it has {list(graph.inputs)})")
        if role == "mapping":
            if len(out) != 3:
                raise LoadError(f"mapping output {out_name!r} has shape {_fmt(out)}: w must be [B, L, W]")
        else:
            check_image(role, f"output {out_name!r}", out, declared)
    if "z" in latents and "z2" in latents and latents["z"] != latents["z2"]:
        raise LoadError(f"generator inputs 'z' {_fmt(latents['z'])} and 'z2' {_fmt(latents['z2'])} differ per item")
    if "encoder" in graphs:
        code_name, code = next(iter(graphs["encoder"].outputs.items()))
        if len(code) != 2:
            raise LoadError(f"encoder output {code_name!r} has shape {_fmt(code)}: a code must be [B, D]")
        want = int(np.prod(latents["z"])) if "z" in latents else declared.latent_dim
        if want and code[1] is not None and code[1] != want:
            raise LoadError(f"encoder output {code_name!r} has {code[1]} values per image but the generator's z "
                            f"takes {want}")
    return latents


def check_curves(path: str | Path, card: Mapping[str, Any]) -> Path | None:
    """The training-curves file the card lists (``card["curves"]``), verified: inside ``path``,
    its bytes and sha256 as recorded, ``step,name,value`` rows, at most ``curves.MAX_BYTES``.
    None when the card lists none (older artifacts, ``import_models --onnx``)."""
    entry = card.get("curves")
    if entry is None:
        return None
    if not isinstance(entry, Mapping) or not entry.get("file"):
        raise LoadError("card.json 'curves' must be an object naming its file")
    root = Path(path).resolve()
    file = (root / str(entry["file"])).resolve()
    if root not in file.parents:
        raise LoadError(f"curves: file {entry['file']!r} lies outside {path}")
    if not file.is_file():
        raise LoadError(f"curves: {entry['file']} is missing")
    data = file.read_bytes()
    if len(data) > curves.MAX_BYTES:
        raise LoadError(f"curves: {file.name} is {len(data)} bytes, over the {curves.MAX_BYTES} budget")
    if isinstance(entry.get("bytes"), int) and entry["bytes"] != len(data):
        raise LoadError(f"curves: {file.name} is {len(data)} bytes, its card records {entry['bytes']}")
    actual = hashlib.sha256(data).hexdigest()
    if entry.get("sha256") and actual != str(entry["sha256"]).lower():
        raise LoadError(f"curves: {file.name} has sha256 {actual}, its card records {entry['sha256']}")
    try:
        curves.parse(data.decode())
    except (curves.CurvesError, UnicodeDecodeError) as e:
        raise LoadError(f"curves: {file.name}: {e}") from None
    return file
