"""Service settings from the environment, read once at start-up.

A bad value (``GANZOO_MAX_N=abc``) raises at start: a server that silently ignores its
configuration is worse than one that does not start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from serving.providers import DEVICES, PRECISIONS
from serving.runtime import MAX_OUTPUT_PIXELS, MAX_WORK_PIXELS


def _float(env: Mapping[str, str], key: str, default: float, minimum: float) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{key} must be a number, got {raw!r}") from None
    if not value >= minimum:
        raise ValueError(f"{key} must be >= {minimum}, got {value}")
    return value


def _int(env: Mapping[str, str], key: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{key} must be an integer, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{key} must be {bound}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    device: str = "auto"  # GANZOO_DEVICE: auto | cpu | cuda
    precision: str = "auto"  # GANZOO_PRECISION: auto (fp16 on CUDA) | fp32 | fp16
    models: frozenset[str] | None = None  # GANZOO_MODELS: comma list; None = every ganzoo model
    max_n: int = 256  # GANZOO_MAX_N: most tiles per /generate
    max_pixels: int = 16_000_000  # GANZOO_MAX_PIXELS: largest accepted input image
    max_bytes: int = 64 * 1024 * 1024  # GANZOO_MAX_BYTES: largest accepted request body
    max_work_pixels: int = MAX_WORK_PIXELS  # GANZOO_MAX_WORK_PIXELS: largest image a graph runs on
    max_output_pixels: int = MAX_OUTPUT_PIXELS  # GANZOO_MAX_OUTPUT_PIXELS: largest response image
    translate_size: int = 256  # GANZOO_TRANSLATE_SIZE: default working shorter side of /translate (up to)
    ort_threads: int = 0  # GANZOO_ORT_THREADS: intra-op threads per session, 0 = ORT default
    ort_spin: bool = False  # GANZOO_ORT_SPIN: ORT's intra-op threads busy-wait between ops (docs/PERFORMANCE.md)
    batch: int = 64  # GANZOO_BATCH: tiles per ONNX Runtime call (also BentoML's max batch size)
    max_latency_ms: int = 10000  # GANZOO_MAX_LATENCY_MS: BentoML adaptive batching sheds tiles it cannot start by then
    inference_workers: int = 1  # GANZOO_INFERENCE_WORKERS: processes of the inference service
    inference_threads: int = 1  # GANZOO_INFERENCE_THREADS: concurrent ONNX Runtime calls per inference worker
    http_workers: int = 1  # GANZOO_HTTP_WORKERS: processes of the HTTP-facing service
    coalesce: int = 2  # GANZOO_COALESCE: inference calls in flight per HTTP worker (0 = one per request)
    max_inflight: int = 64  # GANZOO_MAX_INFLIGHT: requests in progress before new ones get 503
    max_wait_s: float = 2.0  # GANZOO_MAX_WAIT_S: estimated queue wait before new requests get 503
    timeout_s: float = 30.0  # GANZOO_TIMEOUT_S: a request not answered by then gets 503
    ready_requires_all: bool = False  # GANZOO_READY_REQUIRES_ALL: /readyz is 503 while any model failed to load
    inference_url: str = ""  # GANZOO_INFERENCE_URL: an inference service elsewhere (docs/DEPLOY.md)
    png_level: int = 1  # GANZOO_PNG_LEVEL: zlib level of PNG responses (docs/PERFORMANCE.md)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        device = env.get("GANZOO_DEVICE", "auto").strip().lower() or "auto"
        if device not in DEVICES:
            raise ValueError(f"GANZOO_DEVICE must be one of {', '.join(DEVICES)}, got {device!r}")
        precision = env.get("GANZOO_PRECISION", "auto").strip().lower() or "auto"
        if precision not in PRECISIONS:
            raise ValueError(f"GANZOO_PRECISION must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        names = [n.strip() for n in env.get("GANZOO_MODELS", "").split(",") if n.strip()]
        return cls(
            device=device,
            precision=precision,
            models=frozenset(names) if names else None,
            max_n=_int(env, "GANZOO_MAX_N", cls.max_n, 1),
            max_pixels=_int(env, "GANZOO_MAX_PIXELS", cls.max_pixels, 1),
            max_bytes=_int(env, "GANZOO_MAX_BYTES", cls.max_bytes, 1),
            max_work_pixels=_int(env, "GANZOO_MAX_WORK_PIXELS", cls.max_work_pixels, 1),
            max_output_pixels=_int(env, "GANZOO_MAX_OUTPUT_PIXELS", cls.max_output_pixels, 1),
            translate_size=_int(env, "GANZOO_TRANSLATE_SIZE", cls.translate_size, 4),
            ort_threads=_int(env, "GANZOO_ORT_THREADS", cls.ort_threads, 0),
            ort_spin=_int(env, "GANZOO_ORT_SPIN", 0, 0, 1) == 1,
            batch=_int(env, "GANZOO_BATCH", cls.batch, 2),
            max_latency_ms=_int(env, "GANZOO_MAX_LATENCY_MS", cls.max_latency_ms, 1),
            inference_workers=_int(env, "GANZOO_INFERENCE_WORKERS", cls.inference_workers, 1),
            inference_threads=_int(env, "GANZOO_INFERENCE_THREADS", cls.inference_threads, 1),
            http_workers=_int(env, "GANZOO_HTTP_WORKERS", cls.http_workers, 1),
            coalesce=_int(env, "GANZOO_COALESCE", cls.coalesce, 0),
            max_inflight=_int(env, "GANZOO_MAX_INFLIGHT", cls.max_inflight, 1),
            max_wait_s=_float(env, "GANZOO_MAX_WAIT_S", cls.max_wait_s, 0.0),
            timeout_s=_float(env, "GANZOO_TIMEOUT_S", cls.timeout_s, 0.1),
            ready_requires_all=_int(env, "GANZOO_READY_REQUIRES_ALL", 0, 0, 1) == 1,
            png_level=_int(env, "GANZOO_PNG_LEVEL", cls.png_level, 0, 9),
            inference_url=env.get("GANZOO_INFERENCE_URL", "").strip(),
        )
