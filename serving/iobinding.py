"""ONNX Runtime IO binding for CUDA sessions: inputs copied to the GPU once, the output left in a
buffer on the device until a single copy back, instead of ``session.run``'s implicit copies.

Self-contained (numpy and onnxruntime only, like the rest of serving/). The runtime calls
:func:`run_with_iobinding` only when a session's first provider is CUDA (:func:`wants_iobinding`);
on the CPU provider plain ``session.run`` is what to use. Whether it measurably helps on a given GPU
is for benchmarks/gpu_check.sh to say, not for this docstring.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnxruntime as ort

CUDA = "CUDAExecutionProvider"


def wants_iobinding(session: ort.InferenceSession) -> bool:
    """IO binding pays only where inputs and outputs cross to a device: CUDA leading the providers."""
    providers = session.get_providers()
    return bool(providers) and providers[0] == CUDA


def _device(session: ort.InferenceSession) -> tuple[str, int]:
    """(ORT device name, device id) the session computes on."""
    if not wants_iobinding(session):
        return "cpu", 0
    options: dict[str, Any] = session.get_provider_options().get(CUDA, {})
    return "cuda", int(options.get("device_id", 0) or 0)


def run_with_iobinding(session: ort.InferenceSession, feeds: Mapping[str, np.ndarray], output_name: str) -> np.ndarray:
    """``session.run([output_name], feeds)[0]``, through an IO binding on the session's device.

    Inputs are made contiguous (ORT binds raw buffers) and copied to the device once; the
    output is allocated by ORT on the device and copied back to host memory once.
    """
    device, device_id = _device(session)
    binding = session.io_binding()
    for name, value in feeds.items():
        array = np.ascontiguousarray(value)
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, device, device_id))
    binding.bind_output(output_name, device, device_id)
    session.run_with_iobinding(binding)
    (out,) = binding.copy_outputs_to_cpu()
    return out
