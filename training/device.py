"""Where training runs and in which precision: pure functions of the request and the machine.

``--device auto|cpu|cuda|cuda:N`` and ``--precision fp32|bf16|fp16`` are resolved here, once,
before a run folder is touched, so a wrong request fails with one clear line (exit code 2
from the CLI) instead of a CUDA traceback half-way into a run.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from typing import Any

import torch

DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"
PRECISIONS = ("fp32", "bf16", "fp16")


class DeviceError(ValueError):
    """A device or precision this machine cannot give; the CLI prints it as one line."""


def cuda_count() -> int:
    """CUDA devices torch can use here (0 for a CPU-only build or a machine without a GPU)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(spec: str, local_rank: int | None = None, world: int | None = None,
                   cuda_devices: int | None = None) -> torch.device:
    """The ``torch.device`` a process trains on.

    ``auto`` takes CUDA when there is any, else the CPU. Under torchrun (``world > 1``) each
    process takes ``cuda:LOCAL_RANK``, one device per local rank, so ``cuda:N`` is refused
    there. ``cuda_devices`` defaults to what torch sees; tests pass it to cover GPU machines.
    """
    spec = (spec or "auto").strip().lower()
    if not re.match(DEVICE_PATTERN, spec):
        raise DeviceError(f"--device must be auto, cpu, cuda or cuda:N, got {spec!r}")
    local_rank = int(os.environ.get("LOCAL_RANK", "0")) if local_rank is None else local_rank
    world = int(os.environ.get("WORLD_SIZE", "1")) if world is None else world
    count = cuda_count() if cuda_devices is None else cuda_devices
    if spec == "cpu" or (spec == "auto" and count == 0):
        return torch.device("cpu")
    if count == 0:
        raise DeviceError(f"--device {spec}: CUDA is not available on this machine "
                          f"(torch {torch.__version__}, torch.cuda.is_available() is False); use --device cpu or auto")
    if spec.startswith("cuda:"):
        index = int(spec.split(":", 1)[1])
        if world > 1:
            raise DeviceError(f"--device {spec}: under torchrun each process takes cuda:LOCAL_RANK; pass --device cuda")
    else:
        index = local_rank if world > 1 else 0
    if index >= count:
        raise DeviceError(f"--device {spec}: cuda:{index} asked for, but this machine has {count} CUDA device(s)")
    return torch.device("cuda", index)


@dataclass(frozen=True)
class Precision:
    """How a step runs: ``dtype`` is the autocast dtype (None: plain fp32); ``scaler``: fp16's loss scaling."""

    name: str
    device: torch.device
    dtype: torch.dtype | None
    scaler: bool

    def autocast(self) -> Any:
        """The context a training step runs in: autocast for bf16/fp16, nothing for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(self.device.type) if self.scaler else None


def resolve_precision(name: str, device: torch.device, bf16_supported: bool | None = None) -> Precision:
    """Check ``--precision`` against the device.

    bf16 needs no loss scaling (fp32's exponent range) and runs on the CPU and on CUDA GPUs
    that support it. fp16 is refused on the CPU: torch's CPU autocast has fp16 kernels for
    few ops and no speed to gain there, so it would be a slow, lossy fp32; use bf16.
    """
    name = (name or "fp32").strip().lower()
    if name not in PRECISIONS:
        raise DeviceError(f"--precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "fp32":
        return Precision(name, device, None, False)
    if name == "fp16":
        if device.type != "cuda":
            raise DeviceError(f"--precision fp16 needs a CUDA device (training on {device}); "
                              "use --precision bf16 on the CPU")
        return Precision(name, device, torch.float16, True)
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported() if bf16_supported is None else bf16_supported
        if not ok:
            raise DeviceError(f"--precision bf16: {device} does not support bfloat16; use fp16 or fp32")
    return Precision(name, device, torch.bfloat16, False)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A batch moved to ``device``: through pinned memory and a non-blocking copy on CUDA."""
    if device.type != "cuda":
        return batch
    return {k: v.pin_memory().to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}

