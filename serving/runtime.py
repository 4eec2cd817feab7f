"""A served model: its ONNX Runtime sessions, its card, and what it can be asked to do.

Everything here is numpy + onnxruntime + Pillow, no web framework: the service only parses
requests and encodes responses. Inputs are filled by name as ARTIFACTS.md says (``z*`` and
``noise*`` from the seed, ``label``/``psi``/``crossover`` from the request), so any variant
that exports graphs with those names is served without code here knowing the variant.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from serving import contract, images, iobinding, rejection, sampling
from serving.contract import KNOWN_ROLES, LoadError
from serving.errors import ServingError, bad_request, invalid

log = logging.getLogger("bentoml.ganzoo")

__all__ = ["KNOWN_ROLES", "GanModel", "Graph", "LoadError", "graph_files", "load_model", "validate_artifact"]
_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}
PSI_MIN, PSI_MAX = 0.0, 2.0
MAX_STEPS = 64  # frames of /interpolate
MAX_MIX = 16  # seeds (and styles) of /mix
MIN_SIZE, MAX_SIZE = 4, 2048  # working resolution of /translate (shorter side)
MAX_WORK_SIDE = 4096  # longer side of the working image of /translate
# defaults of GANZOO_MAX_WORK_PIXELS / GANZOO_MAX_OUTPUT_PIXELS (serving/config.py)
MAX_WORK_PIXELS = 2048 * 2048  # pixels a translate graph runs on (measured: ~0.4 GB peak, ~4 s per million)
MAX_OUTPUT_PIXELS = 16_000_000  # pixels of one response image (the default largest input of /translate)
TRANSLATE_SIZE = 256  # default working shorter side of /translate: the input's own, up to this (docs/SERVING.md)


def too_large(what: str, pixels: int, limit: int, setting: str, hint: str = "") -> ServingError:
    """413 for a request whose cost is over a configured bound, naming the bound and its setting."""
    return ServingError(
        413,
        f"{what} = {pixels} pixels, over the limit of {limit} ({setting}){hint}",
        {"pixels": pixels, "limit": limit, "setting": setting},
    )


def release_memory() -> None:
    """Hand freed heap back to the OS after a large request (glibc keeps it otherwise: a
    1024x1024 translate left 467 MiB resident without this, 90 MiB with it). No-op off glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def graph_files(path: Path, card: dict[str, Any], precision: str = "fp32") -> dict[str, Path]:
    """role -> ONNX file of a model or artifact directory, as card.json names them (or every
    ``*.onnx`` when it names none); refuses missing files and files outside ``path``.

    ``precision="fp16"`` takes a role's half-precision copy (``graphs[role]["fp16"]``) where
    the card lists one and the float32 graph where it does not."""
    spec = card.get("graphs") or {p.stem: {"file": p.name} for p in sorted(path.glob("*.onnx"))
                                  if not p.name.endswith(".fp16.onnx")}
    if not isinstance(spec, dict) or not spec:
        raise LoadError(f"{path}: card.json lists no graphs and there is no .onnx file")
    root = path.resolve()
    files: dict[str, Path] = {}
    for role, entry in spec.items():
        name = entry.get("file", f"{role}.onnx") if isinstance(entry, dict) else str(entry)
        half = entry.get("fp16") if isinstance(entry, dict) else None
        if precision == "fp16" and isinstance(half, dict) and half.get("file"):
            name = str(half["file"])
        file = (root / name).resolve()
        if root not in file.parents:
            raise LoadError(f"graph {role!r}: file {name!r} lies outside {path}")
        if not file.is_file():
            raise LoadError(f"graph {role!r}: {name} is missing")
        files[role] = file
    return files


def graph_record(card: dict[str, Any], role: str, file: Path) -> dict[str, Any]:
    """What the card records for the file a role loads from: its own entry, or the entry of
    its fp16 copy when ``file`` is that copy (each copy carries its own sha256 and bytes)."""
    entry = (card.get("graphs") or {}).get(role)
    if not isinstance(entry, dict):
        return {}
    half = entry.get("fp16")
    if isinstance(half, dict) and Path(str(half.get("file", ""))).name == file.name:
        return half
    return entry


def file_digest(file: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks (graphs can be hundreds of MB)."""
    h = hashlib.sha256()
    with file.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def verify_graph(role: str, file: Path, record: dict[str, Any]) -> bool:
    """Check a graph file against its card record (``bytes`` first, it is free, then
    ``sha256``), so a file damaged on disk is never served. Raises ``LoadError`` naming the
    role, the file and the expected and actual values; returns False when the card records
    no sha256 (cards from before per-graph digests), True when the digest matched."""
    size = record.get("bytes")
    if isinstance(size, int) and not isinstance(size, bool):
        actual_size = file.stat().st_size
        if actual_size != size:
            raise LoadError(f"graph {role!r}: {file.name} is {actual_size} bytes, its card records {size}")
    expected = record.get("sha256")
    if not expected:
        return False
    actual = file_digest(file)
    if actual != str(expected).lower():
        raise LoadError(f"graph {role!r}: {file.name} has sha256 {actual}, its card records {expected}")
    return True


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int | None, ...]  # None where the dimension is symbolic (batch, H, W)
    dtype: Any

    def tile_shape(self, role: str) -> tuple[int, ...]:
        """Shape of one batch item; random inputs need it static to be drawn."""
        rest = self.shape[1:]
        if any(d is None for d in rest):
            raise LoadError(f"{role} input {self.name!r} has a non-static shape {list(self.shape)}")
        return tuple(int(d) for d in rest)  # type: ignore[arg-type]


Runner = Callable[[str, dict[str, np.ndarray]], np.ndarray]  # (role, feeds) -> first output


class Graph:
    """One ONNX graph (a role) and its input/output signature.

    It runs in this process, or, built by ``Graph.remote``, wherever its runner sends it: the
    HTTP-facing service keeps the signatures for validation and runs the graphs in the
    inference service (serving/engine.py).
    """

    def __init__(self, role: str, session: ort.InferenceSession | None, precision: str = "fp32") -> None:
        self.role = role
        self.precision = precision
        self.session = session
        self.runner: Runner | None = None
        assert session is not None
        self.inputs = {
            i.name: InputSpec(i.name, _dims(i.shape), _DTYPES.get(i.type, np.float32)) for i in session.get_inputs()
        }
        self.outputs = {o.name: _dims(o.shape) for o in session.get_outputs()}
        self.provider = session.get_providers()[0]

    def signature(self) -> dict[str, Any]:
        """What another process needs to validate requests for this graph (``Graph.remote``)."""
        return {
            "inputs": [[s.name, list(s.shape), _TYPE_NAMES[np.dtype(s.dtype)]] for s in self.inputs.values()],
            "outputs": [[name, list(shape)] for name, shape in self.outputs.items()],
            "provider": self.provider,
            "precision": self.precision,
        }

    @classmethod
    def remote(cls, role: str, signature: dict[str, Any], runner: Runner) -> Graph:
        """A graph known by its signature only, run by ``runner`` (in the inference service)."""
        graph = cls.__new__(cls)
        graph.role, graph.session, graph.runner = role, None, runner
        graph.precision = str(signature.get("precision", "fp32"))
        graph.provider = str(signature.get("provider", ""))
        graph.inputs = {
            n: InputSpec(n, _dims(shape), _DTYPES.get(t, np.float32)) for n, shape, t in signature["inputs"]
        }
        graph.outputs = {n: _dims(shape) for n, shape in signature["outputs"]}
        return graph

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """First output of the graph, feeding only the inputs it declares."""
        feeds = {k: v for k, v in feeds.items() if k in self.inputs}
        if self.runner is not None:
            return self.runner(self.role, feeds)
        assert self.session is not None
        out = next(iter(self.outputs))
        if IOBINDING and iobinding.wants_iobinding(self.session):  # CUDA only, GANZOO_IOBINDING=1
            return iobinding.run_with_iobinding(self.session, feeds, out)
        return self.session.run([out], feeds)[0]


_TYPE_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}
# ONNX Runtime IO binding on CUDA sessions (serving/iobinding.py): off until benchmarks/gpu_check.sh
# has measured that it helps on the GPU at hand (no GPU has run it yet)
IOBINDING = os.environ.get("GANZOO_IOBINDING", "0").strip() == "1"


def _dims(shape: Sequence[Any]) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)


def _scalar(spec: InputSpec, value: float) -> np.ndarray:
    """A scalar input (``psi``, ``crossover``) in the rank the graph declares ([] or [1])."""
    return np.full(tuple(1 for _ in spec.shape), value, dtype=spec.dtype)


def _json_value(value: Any, default: Any) -> Any:
    """Card values are native JSON, but tolerate the ONNX-metadata string form too."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return default if value is None else value


def _domains(value: Any) -> list[str]:
    if isinstance(value, str):
        return [d.strip() for d in value.split(",") if d.strip()]
    if isinstance(value, (list, tuple)):
        return [str(d) for d in value]
    return []


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _finite(value: Any) -> Any:
    """JSON-safe copy: NaN/inf (a failed FID, say) become null instead of breaking /models."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class GanModel:
    """A loaded model. Methods validate their arguments and raise ``ServingError`` (4xx)."""

    def __init__(self, name: str, version: str, card: dict[str, Any], graphs: dict[str, Graph]) -> None:
        self.name = name
        self.version = version
        self.chunk = 64  # items per ONNX Runtime call (GANZOO_BATCH)
        self.max_work_pixels = MAX_WORK_PIXELS  # GANZOO_MAX_WORK_PIXELS
        self.max_output_pixels = MAX_OUTPUT_PIXELS  # GANZOO_MAX_OUTPUT_PIXELS
        self.translate_size = TRANSLATE_SIZE  # GANZOO_TRANSLATE_SIZE
        self.card = card
        self.graphs = graphs
        self.curves_file: Path | None = None  # the verified training curves, where the card lists them
        self.task = str(card.get("task") or "")
        self.variant = str(card.get("variant") or name)
        classes = _json_value(card.get("classes"), [])
        self.classes: list[Any] = list(classes) if isinstance(classes, list) else []
        self.num_classes = _int(card.get("num_classes")) or len(self.classes)
        self.domains = _domains(card.get("domains"))
        self.channels = _int(card.get("channels"))
        self.image_size = _int(card.get("image_size"))
        self.latent_dim = _int(card.get("latent_dim"))
        self._check()
        self.random_specs = self._random_specs()
        self.rule = self._rule()
        self._check_mix_crossover()

    # -- structure ---------------------------------------------------------------------------
    def _check(self) -> None:
        """The artifact contract (serving/contract.py), the same check export and import run."""
        if not self.capabilities:
            raise LoadError(f"no usable graph among roles {sorted(self.graphs)}")
        declared = contract.Declared(self.channels, self.image_size, self.latent_dim, self.num_classes)
        contract.check(self.graphs, declared)
        gen = self.graphs.get("generator") or self.graphs.get("synthesis")
        if gen and self.image_size == 0:
            out = next(iter(gen.outputs.values()))
            self.image_size = out[-1] or 0
        if "encoder" in self.graphs:
            spec = next(iter(self.graphs["encoder"].inputs.values()))
            if not (spec.shape[-1] or self.image_size):
                raise LoadError("encoder input size is symbolic and card.json has no image_size: /encode could not "
                                "resize images for it")

    @property
    def needs_probe(self) -> bool:
        """Whether a dimension the contract checks is left symbolic by a graph (then load probes it)."""
        for role, g in self.graphs.items():
            out = next(iter(g.outputs.values()))
            if role == "critic":
                continue  # validate_artifact probes it; its [B] output leaves nothing open
            dims = out[1:2] if role in ("a2b", "b2a") else out[1:]
            if role != "mapping" and (len(out) != (2 if role == "encoder" else 4) or None in dims):
                return True
        return False

    def probe(self, value_range: bool = False) -> None:
        """Run every capability once on one item and check what comes out against the contract.

        Catches what the declared shapes leave open (symbolic dimensions); ``value_range`` also
        requires generated images in [-1, 1] (for graphs our training did not make)."""
        declared = contract.Declared(self.channels, self.image_size, self.latent_dim, self.num_classes)
        role = "generator" if "generator" in self.graphs else "synthesis"
        x: np.ndarray | None = None
        if self.can_sample:
            # the last class too: an embedding smaller than num_classes would fail only for high labels
            labels = np.array([0, self.num_classes - 1], dtype=np.int64) if self.conditional else None
            try:
                x = self._sample(sampling.draw_tiles(0, [0, 1], self.random_specs), labels, None)
            except Exception as e:  # onnxruntime raises several unrelated types
                what = f" with labels 0 and {self.num_classes - 1} (num_classes {self.num_classes})" if (
                    labels is not None) else ""
                raise LoadError(f"{role} graph fails on two drawn items{what}: {e}") from e
            contract.check_image(role, "output", tuple(x.shape), declared)
            lo, hi = float(np.min(x)), float(np.max(x))
            if value_range and not (-1.001 <= lo and hi <= 1.001):
                raise LoadError(f"{role} output spans [{lo:.3g}, {hi:.3g}]: images must be in [-1, 1] (end in tanh)")
        if "encoder" in self.graphs:
            enc = self.graphs["encoder"]
            size = self.image_size or (x.shape[-1] if x is not None else 0)
            img = x[:1] if x is not None else np.zeros((1, self.channels or 3, size, size), np.float32)
            try:
                code = enc.run({next(iter(enc.inputs)): img.astype(np.float32)})
            except Exception as e:
                raise LoadError(f"encoder graph fails on one image {list(img.shape)}: {e}") from e
            z = dict(self.random_specs).get("z")
            if z is not None and code[0].size != int(np.prod(z)):
                raise LoadError(f"encoder output has {code[0].size} values per image but the generator's z takes "
                                f"{int(np.prod(z))}")
        if "critic" in self.graphs and x is not None:
            try:
                d = self.score(x)
            except Exception as e:
                raise LoadError(f"critic graph fails on two generated images {list(x.shape)}: {e}") from e
            if d.shape != (len(x),) or not np.isfinite(d).all():
                raise LoadError(f"critic gives {d.size} values for {len(x)} images (or non-finite ones): it must give "
                                "one finite logit per image")
        for role in self.directions.values():
            g = self.graphs[role]
            img = np.zeros((1, 3, 8, 8), np.float32)
            try:
                y = g.run({next(iter(g.inputs)): img})
            except Exception as e:
                raise LoadError(f"{role} graph fails on a [1, 3, 8, 8] image: {e}") from e
            contract.check_image(role, "output", tuple(y.shape), contract.Declared(channels=3), spatial=False)
            if y.shape[2:] != img.shape[2:]:
                raise LoadError(f"{role} output is {y.shape[2]}x{y.shape[3]} for an 8x8 input: it must keep the size")

    def _check_mix_crossover(self) -> None:
        """A card's default crossover for /mix is the artifact's promise: a bad one is refused at
        load, not answered as a client's mistake on every /mix request."""
        value = self.card.get("mix_crossover")
        if value is None:
            return
        if "mix" not in self.capabilities:
            raise LoadError("card.json 'mix_crossover' is set but the generator has no z2/crossover inputs")
        layers = self.style_layers
        try:
            n = int(str(value))  # an int, or its digits (ONNX metadata holds strings); not 2.5 or true
        except ValueError:
            n = -1
        if n < 0 or (layers and n > layers):
            raise LoadError(f"card.json 'mix_crossover' must be an integer in 0..{layers or 'L'}, got {value!r}")

    def _rule(self) -> rejection.Rule | None:
        """The rejection rule of a model that ships a critic (serving/rejection.py)."""
        if "critic" not in self.graphs:
            return None
        entry = self.card.get("rejection")
        if entry is None:
            raise LoadError("a critic graph needs card.json 'rejection' (its threshold and temperature)")
        if self.conditional:
            raise LoadError("critic: rejection sampling is for unconditional generators (this one takes a label)")
        try:
            return rejection.Rule.from_card(entry)
        except rejection.RuleError as e:
            raise LoadError(str(e)) from None

    @property
    def filters(self) -> list[str]:
        """Values of ``/generate?filter=``: the first is the default."""
        return list(rejection.FILTERS) if self.rule is not None else ["none"]

    def check_filter(self, filter: str | None) -> str:
        """The filter a request gets: the model's default when ``filter`` is None."""
        if filter is None:
            return self.filters[0]
        if filter not in rejection.FILTERS:
            raise invalid(f"filter must be one of {', '.join(rejection.FILTERS)}, got '{filter[:40]}'")
        if filter not in self.filters:
            raise bad_request(f"model '{self.name}' has no critic: filter={filter} is not available (only none)",
                              {"model": self.name, "filters": self.filters})
        return filter

    def _random_specs(self) -> list[tuple[str, tuple[int, ...]]]:
        if "generator" in self.graphs:
            sources = [self.graphs["generator"]]
        else:
            sources = [g for r in ("mapping", "synthesis") if (g := self.graphs.get(r))]
        specs: dict[str, tuple[int, ...]] = {}
        for g in sources:
            for name, spec in g.inputs.items():
                if sampling.is_random_input(name):
                    specs[name] = spec.tile_shape(g.role)
        return [(n, specs[n]) for n in sampling.draw_order(specs)]

    @property
    def can_sample(self) -> bool:
        return "generator" in self.graphs or {"mapping", "synthesis"} <= self.graphs.keys()

    @property
    def can_mix(self) -> bool:
        gen = self.graphs.get("generator")
        return bool(gen and {"z", "z2", "crossover"} <= gen.inputs.keys())

    @property
    def directions(self) -> dict[str, str]:
        """``apple2orange`` -> ``a2b`` for the translation graphs present."""
        out: dict[str, str] = {}
        for role in ("a2b", "b2a"):
            if role in self.graphs:
                if len(self.domains) == 2:
                    a, b = self.domains if role == "a2b" else self.domains[::-1]
                    out[f"{a}2{b}"] = role
                else:
                    out[role] = role
        return out

    @property
    def capabilities(self) -> list[str]:
        caps: list[str] = []
        if self.can_sample:
            caps += ["generate", "interpolate"]
        if self.can_mix:
            caps.append("mix")
        if "encoder" in self.graphs:
            caps.append("encode")
            if "generator" in self.graphs:
                caps.append("reconstruct")
        if self.directions:
            caps.append("translate")
        return caps

    @property
    def conditional(self) -> bool:
        return any("label" in self.graphs[r].inputs for r in ("generator", "mapping") if r in self.graphs)

    @property
    def has_psi(self) -> bool:
        return any("psi" in self.graphs[r].inputs for r in ("generator", "mapping") if r in self.graphs)

    @property
    def style_layers(self) -> int | None:
        """L of ``w`` [B, L, W] when the mapping graph says it, else ``card["num_layers"]``."""
        if "mapping" in self.graphs:
            w = next(iter(self.graphs["mapping"].outputs.values()))
            if len(w) == 3 and w[1]:
                return w[1]
        return _int(self.card.get("num_layers")) or None

    @property
    def provider(self) -> str:
        return next(iter(self.graphs.values())).provider

    def info(self) -> dict[str, Any]:
        """What ``GET /models`` says about this model."""
        metrics = _json_value(self.card.get("metrics"), {})
        return {
            "name": self.name,
            "version": self.version,
            "variant": self.variant,
            "task": self.task,
            "capabilities": self.capabilities,
            "roles": sorted(self.graphs),
            "inputs": {r: list(g.inputs) for r, g in sorted(self.graphs.items())},
            "image_size": self.image_size or None,
            "channels": self.channels or None,
            "latent_dim": self.latent_dim or None,
            "num_classes": self.num_classes,
            "classes": self.classes,
            "conditional": self.conditional,
            "psi": self.has_psi,
            "style_layers": self.style_layers,
            "domains": self.domains,
            "directions": list(self.directions),
            "filters": self.filters,
            "provider": self.provider,
            "providers": sorted({g.provider for g in self.graphs.values()}),
            "precision": "fp16" if all(g.precision == "fp16" for g in self.graphs.values()) else
                         "fp32" if all(g.precision == "fp32" for g in self.graphs.values()) else "mixed",
            "sha256": _str(self.card.get("sha256")),
            "metrics": _finite(metrics) if isinstance(metrics, dict) else {},
            "dataset": _str(self.card.get("dataset")),
            "steps": _int(self.card.get("steps"), -1) if self.card.get("steps") is not None else None,
            "created": _str(self.card.get("created")),
            # what the variant's metadata() added to the card, and the package that provided it
            "variant_metadata": _finite(vm) if isinstance(vm := self.card.get("variant_metadata"), dict) else {},
            "plugin": self.card.get("plugin") if isinstance(self.card.get("plugin"), dict) else None,
        }

    # -- checks ------------------------------------------------------------------------------
    def require(self, capability: str, why: str) -> None:
        if capability not in self.capabilities:
            raise bad_request(
                f"model '{self.name}' cannot {capability}: {why}",
                {"model": self.name, "roles": sorted(self.graphs), "capabilities": self.capabilities},
            )

    def check_label(self, label: int | None) -> None:
        if label is None:
            return
        if not self.conditional:
            raise bad_request(f"model '{self.name}' is not conditional: it takes no label")
        if not 0 <= label < self.num_classes:
            raise invalid(
                f"label must be in 0..{self.num_classes - 1} for model '{self.name}', got {label}",
                {"num_classes": self.num_classes, "classes": self.classes},
            )

    def resolve_label(self, label: int | str | None) -> int | None:
        """Class index for ``label`` given as an index (``3``, ``"3"``) or a class name
        (``"Trouser"``, case-insensitive), checked like ``check_label``; None stays None."""
        if label is None:
            return None
        if isinstance(label, str):
            text = label.strip()
            names = [str(c) for c in self.classes]
            if text in names:
                index = names.index(text)
            elif text.lower() in (lowered := [c.lower() for c in names]):
                index = lowered.index(text.lower())
            else:
                try:
                    index = int(text)
                except ValueError:
                    if not self.conditional:
                        raise bad_request(f"model '{self.name}' is not conditional: it takes no label") from None
                    raise invalid(
                        f"unknown label {text!r} for model '{self.name}': give an index 0..{self.num_classes - 1} "
                        f"or a class name ({', '.join(names) or 'the card names none'})",
                        {"num_classes": self.num_classes, "classes": self.classes},
                    ) from None
            label = index
        self.check_label(label)
        return label

    def check_psi(self, psi: float | None) -> None:
        if psi is None:
            return
        if not self.has_psi:
            raise bad_request(f"model '{self.name}' has no truncation input: psi is not supported")
        if not PSI_MIN <= psi <= PSI_MAX:
            raise invalid(f"psi must be in [{PSI_MIN:g}, {PSI_MAX:g}], got {psi}")

    def check_tiles(self, tiles: int) -> None:
        """Refuse a grid whose tiles alone exceed ``max_output_pixels`` (before running anything)."""
        side = self.image_size
        if side and tiles * side * side > self.max_output_pixels:
            raise too_large(f"output would be {tiles} tiles of {side}x{side}", tiles * side * side,
                            self.max_output_pixels, "GANZOO_MAX_OUTPUT_PIXELS")

    # -- running graphs ----------------------------------------------------------------------
    def _feeds(
        self,
        graph: Graph,
        batch: dict[str, np.ndarray],
        labels: np.ndarray | None,
        psi: float | None,
        crossover: int | None,
    ) -> dict[str, np.ndarray]:
        feeds: dict[str, np.ndarray] = {}
        for name, spec in graph.inputs.items():
            if name in batch:
                feeds[name] = batch[name].astype(spec.dtype, copy=False)
            elif name == "label":
                n = len(next(iter(batch.values())))
                feeds[name] = (labels if labels is not None else np.zeros(n)).astype(spec.dtype)
            elif name == "psi":
                feeds[name] = _scalar(spec, 1.0 if psi is None else psi)
            elif name == "crossover":
                feeds[name] = _scalar(spec, -1 if crossover is None else crossover)
            else:  # ruled out by _check; a bug if reached
                raise RuntimeError(f"no value for {graph.role} input {name!r}")
        return feeds

    def _sample(
        self, batch: dict[str, np.ndarray], labels: np.ndarray | None, psi: float | None, crossover: int | None = None
    ) -> np.ndarray:
        """Images [-1, 1] NCHW from drawn latents, through ``generator`` or mapping -> synthesis.

        Runs ``self.chunk`` items per ONNX Runtime call to bound memory.
        """
        n = len(next(iter(batch.values())))
        if n > self.chunk:
            parts = []
            for a in range(0, n, self.chunk):
                part = {k: v[a : a + self.chunk] for k, v in batch.items()}
                parts.append(self._sample(part, None if labels is None else labels[a : a + self.chunk], psi, crossover))
            return np.concatenate(parts)
        if "generator" in self.graphs:
            g = self.graphs["generator"]
            return g.run(self._feeds(g, batch, labels, psi, crossover))
        m, s = self.graphs["mapping"], self.graphs["synthesis"]
        w = m.run(self._feeds(m, batch, labels, psi, None))
        return s.run(self._feeds(s, {**batch, "w": w}, labels, psi, None))

    def score(self, x: np.ndarray) -> np.ndarray:
        """Critic logits of images [-1, 1] NCHW, ``self.chunk`` per call."""
        critic = self.graphs["critic"]
        name = next(iter(critic.inputs))
        return np.concatenate([critic.run({name: x[a : a + self.chunk].astype(np.float32)}).reshape(-1)
                               for a in range(0, len(x), self.chunk)])

    def sample_tiles(
        self, batch: dict[str, np.ndarray], labels: np.ndarray | None, psi: float | None,
        seeds: Sequence[int] | None = None, indices: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, int]:
        """Images for drawn tiles and the number of candidates generated: through the critic's
        rejection rule when the tiles' ``seeds`` and ``indices`` are given (``batch`` is then
        their candidate 0), else the generator's own samples."""
        if seeds is None or indices is None or self.rule is None:
            return self._sample(batch, labels, psi), len(labels) if labels is not None else len(next(iter(
                batch.values())))
        res = rejection.rejection_sample(seeds, indices, self.random_specs, self.rule,
                                         sample=lambda d: self._sample(d, None, psi), score=self.score, first=batch)
        return res.images, res.candidates

    def generate(self, n: int, seed: int, label: int | None = None, psi: float | None = None,
                 filter: str | None = None) -> np.ndarray:
        """``n`` tiles, uint8 NHWC; tile ``i`` is a function of (seed, i, label, psi, filter) only."""
        self.require("generate", "it has no generator graph")
        self.check_label(label)
        self.check_psi(psi)
        self.check_tiles(n)
        filtered = self.check_filter(filter) == "critic"
        labels = np.full(n, label, dtype=np.int64) if label is not None else sampling.row_labels(n, self.num_classes)
        out = []
        for start in range(0, n, self.chunk):
            idx = range(start, min(n, start + self.chunk))
            batch = sampling.draw_tiles(seed, idx, self.random_specs)
            x, _ = self.sample_tiles(batch, labels[start : start + len(idx)], psi,
                                     [seed] * len(idx) if filtered else None, list(idx) if filtered else None)
            out.append(x)
        return images.to_uint8(np.concatenate(out))

    def interpolate(
        self, seed_a: int, seed_b: int, steps: int, label: int | None = None, psi: float | None = None
    ) -> np.ndarray:
        """Frames from tile 0 of ``seed_a`` to tile 0 of ``seed_b``: slerp in z, or lerp in w.

        Other random inputs (``noise``, ``z2``) stay those of ``seed_a``, so the first frame is
        ``generate(n=1, seed=seed_a)`` and nothing flickers along the way.
        """
        self.require("interpolate", "it has no generator graph")
        self.check_label(label)
        self.check_psi(psi)
        if not 2 <= steps <= MAX_STEPS:
            raise invalid(f"steps must be in 2..{MAX_STEPS}, got {steps}")
        self.check_tiles(steps)
        da = sampling.draw_tile(seed_a, 0, self.random_specs)
        db = sampling.draw_tile(seed_b, 0, self.random_specs)
        ts = np.linspace(0.0, 1.0, steps)
        lab = np.full(steps, label or 0, dtype=np.int64)
        fixed = {k: np.repeat(v[None], steps, axis=0) for k, v in da.items()}
        if {"mapping", "synthesis"} <= self.graphs.keys():
            m, s = self.graphs["mapping"], self.graphs["synthesis"]
            ends = sampling.stack_draws([da, db])
            w = m.run(self._feeds(m, ends, lab[:2], psi, None))
            ws = np.stack([sampling.lerp(w[0], w[1], t) for t in ts])
            x = s.run(self._feeds(s, {**fixed, "w": ws}, lab, psi, None))
        else:
            zs = np.stack([sampling.slerp(da["z"], db["z"], t) for t in ts])
            x = self._sample({**fixed, "z": zs}, lab, psi)
        return images.to_uint8(x)

    def mix(
        self, seeds: Sequence[int], styles: Sequence[int], crossover: int | None = None, psi: float | None = None
    ) -> tuple[np.ndarray, int]:
        """Style-mixing grid as (uint8 NHWC tiles, tiles per row).

        Row 0: a blank corner, then the style sources (``styles``); column 0: the content
        images (``seeds``). Cell (r, c) takes layers < crossover (coarse: pose, shape) from
        ``seeds[r]`` as ``z`` and layers >= crossover (fine: colour, texture) from
        ``styles[c]`` as ``z2``, with ``seeds[r]``'s noise. Headers equal
        ``generate(n=1, seed=s)``.
        """
        self.require("mix", "its generator has no z2/crossover inputs")
        self.check_psi(psi)
        for what, values in (("seeds", seeds), ("styles", styles)):
            if not 1 <= len(values) <= MAX_MIX:
                raise invalid(f"{what} must list 1..{MAX_MIX} seeds, got {len(values)}")
        self.check_tiles((len(seeds) + 1) * (len(styles) + 1))
        layers = self.style_layers
        if crossover is None and self.card.get("mix_crossover") is not None:
            crossover = _int(self.card["mix_crossover"])  # the card's choice: where mixing shows
        if crossover is None:
            if layers is None:
                raise invalid(f"model '{self.name}' does not declare its style layers: pass crossover=")
            crossover = layers // 2
        if crossover < 0 or (layers is not None and crossover > layers):
            raise invalid(f"crossover must be in 0..{layers if layers is not None else 'L'}, got {crossover}")
        draws = {s: sampling.draw_tile(s, 0, self.random_specs) for s in {*seeds, *styles}}
        heads = [draws[s] for s in (*styles, *seeds)]
        head_imgs = images.to_uint8(self._sample(sampling.stack_draws(heads), None, psi, -1))
        cells = [{**draws[r], "z2": draws[c]["z"]} for r in seeds for c in styles]
        cell_imgs = images.to_uint8(self._sample(sampling.stack_draws(cells), None, psi, crossover))
        k = len(styles)
        tiles = [np.zeros_like(head_imgs[0]), *head_imgs[:k]]  # blank corner, then style sources
        for i, content in enumerate(head_imgs[k:]):
            tiles += [content, *cell_imgs[i * k : (i + 1) * k]]
        return np.stack(tiles), k + 1

    # -- image in ----------------------------------------------------------------------------
    def _encoder_input(self, img: Image.Image) -> np.ndarray:
        spec = next(iter(self.graphs["encoder"].inputs.values()))
        channels = spec.shape[1] if len(spec.shape) == 4 and spec.shape[1] else self.channels or 3
        size = spec.shape[-1] if len(spec.shape) == 4 and spec.shape[-1] else self.image_size
        if not size:
            raise ServingError(500, f"model '{self.name}' declares no image size for its encoder")
        return images.pil_to_array(images.square(images.to_mode(img, channels), size))

    def encode(self, img: Image.Image) -> np.ndarray:
        """Latent code [latent] of one image (centre-cropped and resized to the model's size)."""
        self.require("encode", "it has no encoder graph")
        enc = self.graphs["encoder"]
        return enc.run({next(iter(enc.inputs)): self._encoder_input(img)})[0]

    def reconstruct(self, img: Image.Image, label: int | None = None) -> np.ndarray:
        """Encoder then generator: uint8 HWC at the model's size. Other random inputs use seed 0."""
        self.require("reconstruct", "it needs an encoder and a generator graph")
        self.check_label(label)
        code = self.encode(img)
        batch = {k: v[None] for k, v in sampling.draw_tile(0, 0, self.random_specs).items()}
        if batch["z"][0].size != code.size:  # ruled out by the contract at load
            raise ServingError(500, f"encoder code {code.shape} does not fit generator z {batch['z'].shape[1:]}")
        batch["z"] = code.reshape(batch["z"].shape).astype(np.float32)
        return images.to_uint8(self._sample(batch, np.array([label or 0]), None))[0]

    @staticmethod
    def check_size(size: int | None) -> None:
        """Explicit working resolution for /translate; None means the model's image size."""
        if size is not None and not MIN_SIZE <= size <= MAX_SIZE:
            raise invalid(f"size must be in {MIN_SIZE}..{MAX_SIZE}, got {size}")

    def resolve_direction(self, direction: str | None) -> str:
        """Role (``a2b``/``b2a``) for a direction name; ``a2b``/``b2a`` themselves are accepted."""
        self.require("translate", "it has no a2b/b2a graph")
        dirs = self.directions
        if direction is None:
            if len(dirs) == 1:
                return next(iter(dirs.values()))
            raise invalid(f"model '{self.name}' needs direction=: one of {', '.join(dirs)}", {"known": list(dirs)})
        if direction in dirs:
            return dirs[direction]
        if direction in ("a2b", "b2a") and direction in self.graphs:
            return direction
        raise invalid(
            f"unknown direction '{direction}' for model '{self.name}'; known: {', '.join(dirs)}", {"known": list(dirs)}
        )

    def translate(self, img: Image.Image, direction: str | None, size: int | None = None) -> Image.Image:
        """Translate at working resolution ``size`` (shorter side), keeping size and aspect ratio.

        Resize so the shorter side is ``size`` (default: the model's image size), pad
        bottom/right to a multiple of 4 and to at least the model's image size per side (the
        size it is known to run at: a 4x4 working image is too small for CycleGAN's reflect
        padding), run, crop the padding, resize back to the input size. The output and the
        padded working image are bounded by ``max_output_pixels`` and ``max_work_pixels``
        before any pixel is converted.
        """
        role = self.resolve_direction(direction)
        graph = self.graphs[role]
        self.check_size(size)
        w, h = img.size
        # default: the input's own resolution up to translate_size on the shorter side, never below
        # the model's image size (64 px, the training size, comes out a blur: docs/SERVING.md)
        size = size or max(self.image_size, min(min(w, h), self.translate_size))
        if w * h > self.max_output_pixels:
            raise too_large(f"output would be {w}x{h}", w * h, self.max_output_pixels, "GANZOO_MAX_OUTPUT_PIXELS")
        ww, wh = images.working_size(w, h, size)
        if max(ww, wh) > MAX_WORK_SIDE:
            raise invalid(
                f"aspect ratio too extreme: working image would be {ww}x{wh} (longest side max {MAX_WORK_SIDE})"
            )
        pw, ph = images.padded_size(ww, wh, 4, self.image_size)
        if pw * ph > self.max_work_pixels:
            largest = self._largest_size(w, h)
            hint = (f": lower size= (at most {largest} for a {w}x{h} image)" if largest else
                    f": no size= fits, the working image is padded to the model's {self.image_size} px per side")
            raise too_large(f"working image would be {pw}x{ph}", pw * ph, self.max_work_pixels,
                            "GANZOO_MAX_WORK_PIXELS", hint)
        rgb = images.to_mode(img, 3)
        work = rgb if (ww, wh) == (w, h) else rgb.resize((ww, wh), Image.Resampling.BICUBIC)
        x = images.pad_to_multiple(images.pil_to_array(work), 4, self.image_size)
        try:
            y = graph.run({next(iter(graph.inputs)): x})[:, :, :wh, :ww]
        finally:
            del x
            if pw * ph > 1 << 18:
                release_memory()
        out = images.to_pil(images.to_uint8(y)[0])
        return out if out.size == (w, h) else out.resize((w, h), Image.Resampling.BICUBIC)

    def _largest_size(self, w: int, h: int) -> int:
        """The largest ``size=`` whose padded working image fits ``max_work_pixels`` (0: none)."""
        s = min(MAX_SIZE, math.isqrt(self.max_work_pixels * min(w, h) // max(w, h)))
        while s >= MIN_SIZE:
            pw, ph = images.padded_size(*images.working_size(w, h, s), 4, self.image_size)
            if pw * ph <= self.max_work_pixels:
                return s
            s -= 1
        return 0

    def translate_array(self, img: Image.Image, direction: str | None, size: int | None = None) -> np.ndarray:
        """``translate`` as uint8 HWC."""
        out = np.asarray(self.translate(img, direction, size))
        return out[:, :, None] if out.ndim == 2 else out


def model_signature(model: GanModel) -> dict[str, Any]:
    """A loaded model as the HTTP-facing service rebuilds it (``remote_model``): card and graph signatures."""
    return {
        "version": model.version,
        "card": model.card,
        "graphs": {role: g.signature() for role, g in model.graphs.items()},
        "chunk": model.chunk,
        "max_work_pixels": model.max_work_pixels,
        "max_output_pixels": model.max_output_pixels,
        "translate_size": model.translate_size,
    }


def remote_model(name: str, signature: dict[str, Any], runner: Callable[[str], Runner]) -> GanModel:
    """The model ``model_signature`` describes, its graphs run by ``runner(name)`` elsewhere."""
    run = runner(name)
    graphs = {role: Graph.remote(role, sig, run) for role, sig in signature["graphs"].items()}
    model = GanModel(name, str(signature["version"]), dict(signature["card"]), graphs)
    model.chunk = int(signature.get("chunk", model.chunk))
    model.max_work_pixels = int(signature.get("max_work_pixels", model.max_work_pixels))
    model.max_output_pixels = int(signature.get("max_output_pixels", model.max_output_pixels))
    model.translate_size = int(signature.get("translate_size", model.translate_size))
    return model


def load_model(
    name: str, version: str, path: Path, card: dict[str, Any], providers: list[str], threads: int = 0,
    precision: str = "fp32", spin: bool | None = None,
) -> GanModel:
    """Open one session per known role listed in ``card["graphs"]`` (or per ``*.onnx`` file),
    from its fp16 copy where ``precision`` is fp16 and the card lists one. Each file is first
    checked against the sha256 and size its card records (``verify_graph``), and so is the
    training-curves file where the card lists one (``contract.check_curves``).

    ``spin=False`` stops ORT's intra-op threads from busy-waiting between ops (None: ORT's
    default, on). A server shares its cores with its own HTTP side, so the spinning threads
    take the CPU that encoding and I/O need: measured, it doubled the inference process's CPU
    time per request (docs/PERFORMANCE.md)."""
    files = graph_files(path, card, precision)
    curves_file = contract.check_curves(path, card)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # ONNX Runtime's CPU arena keeps the peak of the largest request for the process's life
    # (a 1024x1024 translate: 840 MiB still held afterwards); without it memory goes back.
    opts.enable_cpu_mem_arena = False
    if threads:
        opts.intra_op_num_threads = threads
    if spin is not None:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    graphs: dict[str, Graph] = {}
    served = contract.check_roles(files, card.get("unserved_roles") or ())
    for role, fpath in files.items():
        if role not in served:
            log.info("model %s: graph role %r is marked unserved", name, role)
            continue
        file = fpath.name
        if not verify_graph(role, fpath, graph_record(card, role, fpath)):
            log.warning("model %s: card.json records no sha256 for graph %r (%s): loaded unverified", name, role, file)
        try:
            session = ort.InferenceSession(str(fpath), sess_options=opts, providers=providers)
        except Exception as e:  # onnxruntime raises several unrelated types for bad files
            raise LoadError(f"graph {role!r}: onnxruntime cannot load {file}: {e}") from e
        graphs[role] = Graph(role, session, "fp16" if file.endswith(".fp16.onnx") else "fp32")
    model = GanModel(name, version, card, graphs)
    model.curves_file = curves_file
    if model.needs_probe:  # what passes load is servable: run what the shapes leave open
        model.probe()
    return model


def validate_artifact(path: str | Path, card: dict[str, Any] | None = None, value_range: bool = False) -> GanModel:
    """Load an artifact directory as serving would (CPU) and run it once: raises ``LoadError``
    naming the role and the mismatch. Export and ``import_models`` call this before storing."""
    path = Path(path)
    if card is None:
        try:
            card = json.loads((path / "card.json").read_text())
        except (OSError, ValueError) as e:
            raise LoadError(f"{path}: card.json cannot be read: {e}") from e
    model = load_model(str(card.get("name") or path.name), "check", path, card, ["CPUExecutionProvider"], 1)
    model.probe(value_range)
    return model
