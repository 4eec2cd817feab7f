"""Half-precision copies of exported graphs, for serving on a GPU (docs/ARTIFACTS.md).

On a GPU, fp16 halves weight and activation traffic and runs on tensor cores. ONNX Runtime's
CPU provider runs these graphs too, but no faster, so serving picks them only with the CUDA
provider (``serving.providers.pick_precision``). Inputs and outputs stay float32
(``keep_io_types``): clients and the server's feeding code see no difference. Each copy is
checked against its float32 graph, which export has already checked against PyTorch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

FP16_TOLERANCE = 0.05  # max abs difference on [-1, 1] outputs: about 6 of 255 grey levels
IMAGE_INPUTS = ("image",)


class FP16Error(ValueError):
    """A half-precision graph strays from its float32 original."""


def fp16_name(file: str) -> str:
    return file[: -len(".onnx")] + ".fp16.onnx" if file.endswith(".onnx") else file + ".fp16"


def example_feeds(session: Any, image_size: int, batch: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for a parity check built from a session's signature alone: symbolic dims get
    ``batch`` (first) or ``image_size``; scalars are 1 (psi = 1, crossover layer 1); integer
    tensors are 0 (label 0); ``image`` inputs are uniform in [-1, 1]; other floats N(0, 1)."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in session.get_inputs():
        shape = [d if isinstance(d, int) else (batch if i == 0 else image_size) for i, d in enumerate(spec.shape)]
        is_int = "int" in spec.type
        dtype = np.int64 if spec.type == "tensor(int64)" else np.int32 if is_int else np.float32
        if not shape:
            feeds[spec.name] = np.array(1, dtype=dtype)
        elif is_int:
            feeds[spec.name] = np.zeros(shape, dtype=dtype)
        elif spec.name in IMAGE_INPUTS:
            feeds[spec.name] = rng.uniform(-1, 1, shape).astype(dtype)
        else:
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def convert(src: Path, dest: Path, image_size: int, tolerance: float = FP16_TOLERANCE) -> float:
    """Write the fp16 copy of ``src`` to ``dest``; return its max abs difference from ``src``
    on ONNX Runtime's CPU provider, raising ``FP16Error`` (and writing nothing) above
    ``tolerance``. ``metadata_props`` are kept."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    half = convert_float_to_float16(model, keep_io_types=True)
    tmp = dest.with_suffix(".tmp")
    onnx.save(half, str(tmp))
    try:
        ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
        got = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        feeds = example_feeds(ref, image_size)
        diff = max(float(np.abs(a.astype(np.float32) - b.astype(np.float32)).max())
                   for a, b in zip(ref.run(None, feeds), got.run(None, feeds), strict=True))
        if not diff <= tolerance:
            raise FP16Error(f"{dest.name}: fp16 differs from float32 by {diff:.3g} (> {tolerance:g})")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return diff


def add_fp16(artifact: Path, tolerance: float = FP16_TOLERANCE) -> dict[str, float]:
    """Give every graph of an artifact directory its fp16 copy and record it in card.json
    (``graphs[role]["fp16"]``). Returns role -> max abs difference."""
    card_path = artifact / "card.json"
    card = json.loads(card_path.read_text())
    size = int(card.get("image_size") or 32)
    diffs: dict[str, float] = {}
    for role, entry in card.get("graphs", {}).items():
        src = artifact / entry["file"]
        dest = artifact / fp16_name(entry["file"])
        diffs[role] = convert(src, dest, size, tolerance)
        entry["fp16"] = {
            "file": dest.name,
            "sha256": hashlib.sha256(dest.read_bytes()).hexdigest(),
            "bytes": dest.stat().st_size,
            "max_abs_diff_vs_fp32": diffs[role],
        }
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return diffs
