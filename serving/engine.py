"""The inference service: every served model's ONNX Runtime sessions, behind BentoML APIs.

The HTTP-facing service (serving/service.py) validates requests, draws latents and encodes
images; it reaches this service through ``bentoml.depends``, which makes each scale on its
own (``GANZOO_INFERENCE_WORKERS``; on GPU hosts this is the service that holds the GPU).

``tiles`` is a batchable API: BentoML's adaptive batching (its CorkDispatcher) coalesces the
tiles of concurrent ``/generate`` requests into one list, which is run as one ONNX Runtime
call per (model, psi). A tile's latents come with it, drawn from (seed, index) by the
caller, so what a tile looks like never depends on what it was batched with. BentoML also
sheds load here: a tile that cannot be started within ``GANZOO_MAX_LATENCY_MS`` is
cancelled and its request answered 503.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
import time
from collections import defaultdict
from typing import Any

import bentoml
import numpy as np
import onnxruntime as ort

from serving import images, wire
from serving.config import Settings
from serving.providers import pick_precision, pick_providers
from serving.runtime import GanModel, model_signature
from serving.store import load_served
from serving.supervise import die_with_parent

log = logging.getLogger("bentoml.ganzoo")
SETTINGS = Settings.from_env()  # read at import: BentoML's decorators below take these values

_BATCH = bentoml.metrics.Histogram(
    name="ganzoo_batch_size",
    documentation="Tiles per ONNX Runtime call of the batched generate path",
    labelnames=["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
_IMAGES = bentoml.metrics.Counter(
    name="ganzoo_images_generated",
    documentation="Tiles generated",
    labelnames=["model"],
)
_SECONDS = bentoml.metrics.Histogram(
    name="ganzoo_inference_seconds",
    documentation="Seconds spent in ONNX Runtime per call",
    labelnames=["model", "role"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
_WAIT = bentoml.metrics.Histogram(
    name="ganzoo_queue_wait_seconds",
    documentation="Seconds from the HTTP service queueing a tile to its batch starting",
    labelnames=["model"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


def batch_without_cork_wait() -> None:
    """BentoML's adaptive batching, minus the learned wait before a batch is released.

    Its CorkDispatcher holds a lone request back for the *average wait of recent batches*
    (``Optimizer.wait``), relearned at most every 5 s from the last 50 batches. After a burst
    that average is large and recovers by a few percent per refresh: measured here, n=1
    requests at concurrency 1 right after an n=64 burst waited 355 ms each (9.5 ms before
    the burst), for minutes. On a CPU (or one GPU) running one graph call at a time nothing is
    gained by waiting: tiles that arrive while a call runs queue up and go together in the
    next call anyway. So the learned wait is pinned to 0 and everything else (the queue, the
    batch size cap, one call at a time, the latency model that sheds hopeless tiles) stays
    BentoML's.
    """
    from bentoml._internal.marshal.dispatcher import Optimizer

    if getattr(Optimizer.trigger_refresh, "_ganzoo", False):
        return
    refresh = Optimizer.trigger_refresh

    def trigger_refresh(self: Any) -> None:
        refresh(self)
        self.wait = 0

    trigger_refresh._ganzoo = True  # type: ignore[attr-defined]
    Optimizer.trigger_refresh = trigger_refresh


batch_without_cork_wait()


def cache_response_media_types() -> None:
    """BentoML works out an API's response media type per response, by building the return
    type's JSON schema with pydantic (``IOMixin.mime_type``): a tenth of the inference
    process's Python time per call, measured with py-spy. It depends on the class alone, so it
    is cached per class."""
    from _bentoml_sdk.io_models import IOMixin

    if getattr(IOMixin.mime_type, "_ganzoo", False):
        return
    cached = functools.cache(IOMixin.mime_type.__func__)  # type: ignore[attr-defined]
    cached._ganzoo = True  # type: ignore[attr-defined]
    IOMixin.mime_type = classmethod(cached)  # type: ignore[method-assign,assignment]


cache_response_media_types()


_CANDIDATES = bentoml.metrics.Counter(
    name="ganzoo_critic_candidates",
    documentation="Candidate images generated and scored for tiles served through the critic (filter=critic)",
    labelnames=["model"],
)


def group_key(job: dict[str, Any]) -> tuple[Any, ...]:
    """Jobs that can share one ONNX Runtime call: same model, psi, random inputs and filter."""
    return job["model"], job.get("psi"), tuple(sorted(job["feeds"])), "seed" in job


def run_tiles(models: dict[str, GanModel], jobs: list[dict[str, Any]]) -> list[np.ndarray]:
    """uint8 NHWC tiles per job, in order; one graph call per group of ``group_key`` (of at most
    the model's chunk of tiles: ``GanModel._sample`` splits bigger groups).

    A job is one request's chunk of tiles, ``{"model", "feeds": {name: [k, ...] array},
    "labels": [k] int64, "psi", "queued": unix time}``, as ``serving.service`` builds it:
    the per-request cost of BentoML's batching is paid once per chunk, not once per tile.
    A job filtered by the model's critic also has ``"seed"`` and ``"start"`` (its tiles are
    ``start .. start + k - 1`` of that seed), from which later candidates are drawn.
    """
    out: list[np.ndarray | None] = [None] * len(jobs)
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for i, job in enumerate(jobs):
        groups[group_key(job)].append(i)
    start = time.time()
    for (name, psi, _, filtered), idx in groups.items():
        model = models[name]
        sizes = [len(jobs[i]["labels"]) for i in idx]
        for i in idx:
            if (queued := jobs[i].get("queued")) is not None:
                _WAIT.labels(model=name).observe(max(0.0, start - float(queued)))
        batch = {k: np.concatenate([jobs[i]["feeds"][k] for i in idx]) for k in jobs[idx[0]]["feeds"]}
        labels = np.concatenate([np.asarray(jobs[i]["labels"], dtype=np.int64) for i in idx])
        seeds = indices = None
        if filtered:
            seeds = [int(jobs[i]["seed"]) for i, k in zip(idx, sizes, strict=True) for _ in range(k)]
            indices = [int(jobs[i]["start"]) + t for i, k in zip(idx, sizes, strict=True) for t in range(k)]
        t0 = time.perf_counter()
        x, candidates = model.sample_tiles(batch, labels, psi, seeds, indices)
        tiles = images.to_uint8(x)
        _SECONDS.labels(model=name, role="tiles").observe(time.perf_counter() - t0)
        if filtered:
            _CANDIDATES.labels(model=name).inc(candidates)
        for a in range(0, len(labels), model.chunk):  # one observation per graph call
            _BATCH.labels(model=name).observe(min(model.chunk, len(labels) - a))
        _IMAGES.labels(model=name).inc(len(labels))
        for i, part in zip(idx, np.split(tiles, np.cumsum(sizes)[:-1]), strict=True):
            out[i] = part
    return out  # type: ignore[return-value]


@bentoml.service(
    name="ganzoo-inference",
    workers=SETTINGS.inference_workers,
    threads=SETTINGS.inference_threads,
    traffic={"timeout": SETTINGS.timeout_s},
    # BentoML's client to this service otherwise closes its connection pool every 100
    # requests, failing the requests still in flight on it ("Server disconnected")
    runner_connection={"max_requests": 2**31 - 1, "max_age": 1e9},
    # internal calls, one or more per HTTP request (which the HTTP service logs): not logged
    logging={"access": {"enabled": False}},
)
class Inference:
    """Runs the graphs; knows nothing about HTTP, images or seeds."""

    def __init__(self) -> None:
        die_with_parent()  # a worker must not outlive `bentoml serve` (serving/supervise.py)
        settings = SETTINGS
        available = ort.get_available_providers()
        self.providers = pick_providers(available, settings.device)
        self.precision = pick_precision(self.providers, settings.precision)
        log.info(
            "onnxruntime %s: available providers %s; GANZOO_DEVICE=%s -> %s; GANZOO_PRECISION=%s -> %s",
            ort.__version__, available, settings.device, self.providers, settings.precision, self.precision,
        )
        self._busy = 0
        self._last = time.monotonic()
        self._stop_when_idle()
        self.models, self.failed = load_served(
            self.providers, settings.models, settings.ort_threads, chunk=settings.batch, precision=self.precision,
            settings=settings,
        )

    def _stop_when_idle(self, idle_s: float = 2.0) -> None:
        """Drain behind the HTTP service: circus sends SIGTERM to both services at once, and an
        inference worker that stopped at once would fail the requests the HTTP service is still
        draining (decoding an upload, say). So SIGTERM is passed on to uvicorn only once no
        graph call has run for ``idle_s``, counted from the signal at the earliest (circus still
        kills a worker that outlasts the grace period)."""
        if threading.current_thread() is not threading.main_thread():
            return
        uvicorn_exit = signal.getsignal(signal.SIGTERM)
        if not callable(uvicorn_exit):
            return

        def wait_then_exit(signum: int, frame: Any) -> None:
            while self._busy or time.monotonic() - self._last < idle_s:
                time.sleep(0.05)
            log.info("inference service idle for %.1f s after SIGTERM: stopping", idle_s)
            uvicorn_exit(signum, frame)

        def on_sigterm(signum: int, frame: Any) -> None:
            self._last = max(self._last, time.monotonic())
            threading.Thread(target=wait_then_exit, args=(signum, frame), daemon=True).start()

        signal.signal(signal.SIGTERM, on_sigterm)

    def _enter(self) -> None:
        self._busy += 1
        self._last = time.monotonic()

    def _leave(self) -> None:
        self._busy -= 1
        self._last = time.monotonic()

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=SETTINGS.batch, max_latency_ms=SETTINGS.max_latency_ms)
    def tiles(self, jobs: list[dict[str, Any]]) -> list[Any]:
        """Tiles of concurrent generate requests, coalesced by BentoML's adaptive batching."""
        self._enter()
        try:
            tiles = run_tiles(self.models, [{**j, "feeds": wire.unpack(j["feeds"]), "labels": wire.unpack(j["labels"])}
                                            for j in jobs])
            return [wire.pack(t) if wire.packed(j["feeds"]) else t for j, t in zip(jobs, tiles, strict=True)]
        finally:
            self._leave()

    @bentoml.api
    def run(self, model: str, role: str, feeds: dict[str, Any]) -> Any:
        """One graph call (interpolate, mix, encode, reconstruct, translate)."""
        graph = self.models[model].graphs[role]
        self._enter()
        try:
            t0 = time.perf_counter()
            out = graph.run(wire.unpack(feeds))
            _SECONDS.labels(model=model, role=role).observe(time.perf_counter() - t0)
            return wire.pack(out) if wire.packed(feeds) else out
        finally:
            self._leave()

    @bentoml.api
    def loaded(self) -> dict[str, Any]:
        """What this worker serves (name -> card and graph signatures, which the HTTP service
        validates requests with) and name -> reason for failed loads."""
        return {"models": {n: model_signature(m) for n, m in self.models.items()}, "failed": dict(self.failed)}
