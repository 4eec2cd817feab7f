"""Which ONNX Runtime execution providers to ask for: a pure function, so it is testable.

``onnxruntime-gpu`` lists ``CUDAExecutionProvider`` whenever it is installed; whether a
session really runs on the GPU is known only after it is created, so the service also
logs ``session.get_providers()`` (ORT silently falls back to CPU when CUDA cannot start).
"""

from __future__ import annotations

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")


def pick_providers(available: list[str], want: str = "auto") -> list[str]:
    """Providers to pass to ``InferenceSession``, best first.

    ``want`` is ``GANZOO_DEVICE``: ``auto`` takes CUDA when it is available, else CPU;
    ``cpu`` forces CPU; ``cuda`` demands CUDA and raises ``ValueError`` when the installed
    onnxruntime has no CUDA provider (a misconfigured deployment should fail loudly at start,
    not quietly run 50x slower). CPU is always last as the fallback.
    """
    choice = (want or "auto").strip().lower()
    if choice not in DEVICES:
        raise ValueError(f"GANZOO_DEVICE must be one of {', '.join(DEVICES)}, got {want!r}")
    if choice == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if choice == "cuda":
        raise ValueError(
            "GANZOO_DEVICE=cuda but onnxruntime offers no CUDAExecutionProvider "
            f"(install onnxruntime-gpu; available: {', '.join(available) or 'none'})"
        )
    return [CPU]


PRECISIONS = ("auto", "fp32", "fp16")


def pick_precision(providers: list[str], want: str = "auto") -> str:
    """Which graphs to load: ``fp16`` copies or ``fp32`` originals.

    ``want`` is ``GANZOO_PRECISION``. ``auto`` takes fp16 only when CUDA leads ``providers``:
    there it halves memory traffic, while ONNX Runtime's CPU kernels gain nothing from it.
    ``fp16``/``fp32`` force the choice (a model without fp16 copies still loads, in fp32).
    """
    choice = (want or "auto").strip().lower()
    if choice not in PRECISIONS:
        raise ValueError(f"GANZOO_PRECISION must be one of {', '.join(PRECISIONS)}, got {want!r}")
    if choice != "auto":
        return choice
    return "fp16" if providers and providers[0] == CUDA else "fp32"
