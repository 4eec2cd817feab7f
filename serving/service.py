"""The ganzoo BentoML service: every ganzoo model in the store, served with ONNX Runtime.

    bentoml serve serving.service:Ganzoo

Two composed BentoML services (``bentoml.depends``), as BentoML documents for adaptive
batching: ``Ganzoo`` (this module) faces HTTP: it validates requests, draws latents from
seeds, decodes uploads and encodes responses; ``Inference`` (serving/engine.py) holds the
ONNX Runtime sessions, and its batchable ``tiles`` API lets BentoML coalesce the tiles of
concurrent ``/generate`` requests into one graph call. Each scales on its own.

Every capability is a typed ``@bentoml.api`` (``generate``, ``interpolate``, ``mix``,
``models``, ``encode``, ``reconstruct``, ``translate``), callable from
``bentoml.SyncHTTPClient``. The curl/browser routes (``GET /generate`` ..., raw-body
``POST /translate`` ...) live on a FastAPI app mounted at ``/`` (BentoML APIs are POST only
and parse bodies by Content-Type, with no parser for a raw image body); both call the same
code, so the same parameters give the same bytes. Every error is JSON ``{"error", "detail"}``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import aiohttp
import bentoml
import httpx
import numpy as np
from bentoml.exceptions import BentoMLException
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from serving import images, openapi, routelabels, sampling, traffic, ui, wire
from serving.admission import Admission, clip
from serving.coalesce import Coalescer
from serving.engine import SETTINGS, Inference
from serving.errors import ServingError, invalid
from serving.runtime import GanModel, remote_model
from serving.sampling import MAX_SEED
from serving.schemas import EncodeResponse, ErrorResponse, FailedModel, GenerateRequest, ModelInfo
from serving.supervise import die_with_parent

log = logging.getLogger("bentoml.ganzoo")


class _ClientErrorsWithoutTraceback(logging.Filter):
    """BentoML logs a full traceback for a typed API's request-validation error (a client's
    mistake, answered 400): keep its one line, drop the traceback. Server faults keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__name__ == "ValidationError":
            record.msg = f"refused: 400 {record.msg} ({clip(exc, 200)})".replace("\n", " ")
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


logging.getLogger("bentoml._internal.server.http_app").addFilter(_ClientErrorsWithoutTraceback())

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "The model cannot do this, or the body is not a usable image"),
        (404, "Unknown model"),
        (413, "Body or image too large"),
        (415, "Unsupported Content-Type"),
        (422, "A parameter is missing, malformed or out of range"),
        (503, "Busy (see Retry-After) or not answered within the time budget"),
    )
}
PNG = {200: {"content": {"image/png": {}}, "description": "PNG image"}}
GENERATE_MEDIA = {
    200: {
        "content": {"image/png": {}, "application/octet-stream": {}, "application/json": {}},
        "description": "PNG grid (format=png), uint8 NHWC .npy (format=npy) or JSON tiles (format=json)",
    }
}
INTERPOLATE_MEDIA = {200: {"content": {"image/png": {}, "image/gif": {}}, "description": "PNG strip or animated GIF"}}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
IMAGE_BODY = {  # the routes read the body themselves; this documents what they accept
    "requestBody": {
        "required": True,
        "content": {
            "image/png": _BINARY,
            "image/jpeg": _BINARY,
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"image": {"type": "string", "format": "binary"}},
                    "required": ["image"],
                }
            },
        },
    }
}

# FastAPI's own /docs and /openapi.json are off: BentoML serves one OpenAPI document
# (/docs.json, UI at /) that merges this app's routes with the @bentoml.api ones.
app = FastAPI(title="ganzoo", docs_url=None, redoc_url=None, openapi_url=None)
app.include_router(ui.router)  # GET /ui: the web gallery (plain files, talks to the routes below)


@app.exception_handler(ServingError)
async def _serving_error(_: Request, exc: ServingError) -> JSONResponse:
    return _error_response(exc)


@app.exception_handler(RequestValidationError)
async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
    names = ", ".join(str(e["loc"][-1]) for e in errors if e["loc"])
    log.info("refused: 422 invalid request parameter(s): %s", clip(names))
    return JSONResponse({"error": f"invalid request parameter(s): {clip(names)}", "detail": errors}, status_code=422)


@app.exception_handler(BentoMLException)
async def _bentoml_error(_: Request, exc: BentoMLException) -> JSONResponse:
    return _error_response(exc)


@app.exception_handler(aiohttp.ClientError)
@app.exception_handler(httpx.TransportError)
async def _unreachable(_: Request, exc: Exception) -> JSONResponse:
    return _error_response(exc)


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    what = {404: "no such route", 405: "method not allowed on this route"}.get(exc.status_code, str(exc.detail))
    return JSONResponse(
        {"error": f"{what}: {request.method} {clip(request.url.path)}", "detail": None}, status_code=exc.status_code
    )


def _error_response(exc: BaseException) -> JSONResponse:
    """The JSON answer for anything raised while serving (routes and BentoML APIs alike)."""
    if isinstance(exc, ServingError):
        log.info("refused: %d %s", exc.status, clip(exc.message, 200))
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        return JSONResponse(exc.payload(), status_code=exc.status, headers=headers)
    if isinstance(exc, BentoMLException) and int(exc.error_code) == 503:  # shed by the inference service
        log.warning("refused: 503 inference service busy: %s", clip(exc, 200))
        return JSONResponse(
            {"error": "server busy: the inference queue is full; retry later", "detail": None},
            status_code=503,
            headers={"Retry-After": "1"},
        )
    if isinstance(exc, (aiohttp.ClientError, httpx.TransportError)):  # the inference service is restarting
        log.error("refused: 503 inference service unreachable: %s", clip(exc, 200))
        return JSONResponse(
            {"error": "inference service unavailable; retry later", "detail": type(exc).__name__},
            status_code=503,
            headers={"Retry-After": "1"},
        )
    log.error("unexpected error", exc_info=exc)
    return JSONResponse({"error": "internal error (see the server log)", "detail": type(exc).__name__}, status_code=500)


def check_n(n: int, max_n: int) -> int:
    if not 1 <= n <= max_n:
        raise invalid(f"n must be in 1..{max_n}, got {n}", {"max_n": max_n})
    return n


def check_seed(seed: int | None, what: str = "seed") -> int:
    """The seed to use: the given one (0..2**63-1) or a fresh random one."""
    if seed is None:
        return secrets.randbelow(2**31)
    if not 0 <= seed <= MAX_SEED:
        raise invalid(f"{what} must be in 0..{MAX_SEED}, got {clip(seed)}")
    return seed


def parse_seeds(text: str, what: str) -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]``; a 422 naming ``what`` otherwise."""
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise invalid(f"{what} must be a comma-separated list of integers, got {clip(repr(text))}") from None
    for v in values:
        check_seed(v, what)
    return values


async def _once(body: bytes) -> Any:
    yield body


async def _guard(work: Awaitable[Response]) -> Any:
    """Run a handler body; any error becomes the JSON answer (BentoML APIs have no handlers)."""
    try:
        return await work
    except Exception as e:  # noqa: BLE001 - turned into a 4xx/5xx JSON response here
        return _error_response(e)


@bentoml.service(name="ganzoo", workers=SETTINGS.http_workers, traffic={"timeout": SETTINGS.timeout_s + 30})
@bentoml.asgi_app(app, path="/")
class Ganzoo:
    """GAN zoo: sample, interpolate, style-mix, reconstruct and translate with exported GANs."""

    # GANZOO_INFERENCE_URL: an inference service deployed elsewhere (docs/DEPLOY.md); unset, the
    # local one that `bentoml serve` starts beside this service
    inference = bentoml.depends(Inference, url=SETTINGS.inference_url or None)

    def __init__(self) -> None:
        die_with_parent()  # a worker must not outlive `bentoml serve` (serving/supervise.py)
        self.settings = SETTINGS
        Image.MAX_IMAGE_PIXELS = self.settings.max_pixels  # PIL's own decompression-bomb guard
        # The models are the inference service's: this service learns their cards and graph
        # signatures from it at startup (`_learn_models`) and validates requests with them.
        self.served: dict[str, GanModel] = {}
        self.failed: dict[str, str] = {}
        self._learned = False
        self._learning = asyncio.Lock()
        self._coalescer: Coalescer | None = None  # made on the event loop, at the first request

    async def _ensure(self) -> None:
        """Learn the models from the inference service on first use (a readiness probe, or the
        first request): its client is usable only once BentoML has started both services."""
        if self._learned:
            return
        async with self._learning:
            if self._learned:
                return
            try:
                loaded = await self.inference.to_async.loaded()
            except Exception as e:  # noqa: BLE001 - not up yet: connection refused, 503, ...
                raise ServingError(503, "starting: the inference service is not ready yet; retry later",
                                   {"reason": clip(repr(e))}) from None
            self.served = {n: remote_model(n, sig, self._remote) for n, sig in sorted(loaded["models"].items())}
            self.failed = dict(loaded["failed"])
            self._learned = True
            for m in self.served.values():
                log.info("model %s:%s served (%s) on %s", m.name, m.version, ", ".join(m.capabilities), m.provider)
            if not self.served:
                log.warning("no ganzoo model to serve: import some with `python -m serving.import_models DIR`")

    def _remote(self, name: str) -> Callable[[str, dict[str, np.ndarray]], np.ndarray]:
        def run(role: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
            return wire.unpack(self.inference.run(model=name, role=role, feeds=self._pack(feeds)))

        return run

    def _pack(self, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
        return wire.pack(feeds) if self.settings.inference_url else feeds

    async def __is_ready__(self) -> bool:
        """Ready once the models are known and at least one is served (all, when
        GANZOO_READY_REQUIRES_ALL=1)."""
        try:
            await self._ensure()
        except ServingError:
            return False
        if self.settings.ready_requires_all and self.failed:
            return False
        return bool(self.served)

    # -- helpers -----------------------------------------------------------------------------
    def model(self, name: str | None, capability: str) -> GanModel:
        """The named model, or the only one able to do ``capability`` when no name is given."""
        known = sorted(self.served)
        if name is None:
            able = [m for m in self.served.values() if capability in m.capabilities]
            if len(able) == 1:
                return able[0]
            names = ", ".join(m.name for m in able) or "none"
            raise invalid(f"model= is required (models that can {capability}: {names})", {"known": known})
        if name in self.served:
            return self.served[name]
        if name in self.failed:
            raise ServingError(
                404, f"model '{clip(name)}' is not served: it failed to load (see the server log)", {"known": known}
            )
        raise ServingError(404, f"unknown model '{clip(name)}'; known: {', '.join(known) or 'none'}", {"known": known})

    async def _tiles(self, req: GenerateRequest) -> tuple[GanModel, np.ndarray, int]:
        """``n`` tiles (uint8 NHWC) through the batched inference API; tile ``i`` depends on
        (seed, i, label, psi) only, however BentoML batches it."""
        await self._ensure()
        model = self.model(req.model, "generate")
        n = check_n(req.n, self.settings.max_n)
        seed = check_seed(req.seed)
        model.require("generate", "it has no generator graph")
        model.check_label(req.label)
        model.check_psi(req.psi)
        filtered = model.check_filter(req.filter) == "critic"
        labels = np.full(n, req.label) if req.label is not None else sampling.row_labels(n, model.num_classes)
        queued = time.time()
        size = self.settings.batch  # tiles per job: a request of n <= GANZOO_BATCH tiles is one job
        jobs = [
            {
                "model": model.name,
                "feeds": sampling.draw_tiles(seed, range(a, min(n, a + size)), model.random_specs),
                "labels": labels[a : a + size].astype(np.int64),
                "psi": req.psi,
                "queued": queued,
                **({"seed": seed, "start": a} if filtered else {}),
            }
            for a in range(0, n, size)
        ]
        if self.settings.inference_url:  # a JSON hop (serving/wire.py)
            jobs = [{**j, "feeds": wire.pack(j["feeds"]), "labels": wire.pack(j["labels"])} for j in jobs]
        parts = await self._call_tiles(jobs, [min(size, n - a) for a in range(0, n, size)])
        return model, np.concatenate([wire.unpack(part) for part in parts]), seed

    async def _call_tiles(self, jobs: list[dict[str, Any]], sizes: list[int]) -> list[Any]:
        """The inference service's batchable ``tiles``; with GANZOO_COALESCE (default), the
        jobs of concurrent requests share calls (serving/coalesce.py says why)."""
        if not self.settings.coalesce:
            return await self.inference.to_async.tiles(jobs)
        if self._coalescer is None:
            self._coalescer = Coalescer(self.inference.to_async.tiles, self.settings.batch, self.settings.coalesce)
        return await self._coalescer.submit(jobs, sizes)

    async def _png(self, arr: np.ndarray, headers: dict[str, str]) -> Response:
        body = await run_in_threadpool(images.encode_png, arr, self.settings.png_level)
        return Response(body, media_type="image/png", headers=headers)

    async def _generate(self, req: GenerateRequest, format: str = "png") -> Response:
        m, tiles, used = await self._tiles(req)
        headers = {"X-Seed": str(used), "X-Model": m.name, "X-Filter": m.check_filter(req.filter)}
        if format == "png":
            grid = images.make_grid(tiles, images.grid_columns(len(tiles)))
            return await self._png(grid, headers)
        if format == "npy":
            headers["Content-Disposition"] = f'attachment; filename="{m.name}-seed{used}.npy"'
            return Response(images.encode_npy(tiles), media_type="application/octet-stream", headers=headers)
        body = {"model": m.name, "seed": used, "filter": headers["X-Filter"], "layout": "NHWC",
                "shape": list(tiles.shape), "images": tiles.tolist()}
        return JSONResponse(body, headers=headers)

    async def _interpolate(
        self, model: str | None, seed_a: int | None, seed_b: int | None, steps: int, label: int | None,
        psi: float | None, format: str,
    ) -> Response:
        await self._ensure()
        m = self.model(model, "interpolate")
        a, b = check_seed(seed_a, "seed_a"), check_seed(seed_b, "seed_b")
        frames = await run_in_threadpool(m.interpolate, a, b, steps, label, psi)
        headers = {"X-Seed-A": str(a), "X-Seed-B": str(b), "X-Model": m.name}
        if format == "gif":
            return Response(await run_in_threadpool(images.encode_gif, frames), media_type="image/gif", headers=headers)
        return await self._png(images.make_grid(frames, len(frames)), headers)

    async def _mix(
        self, model: str | None, seeds: str, styles: str, crossover: int | None, psi: float | None
    ) -> Response:
        await self._ensure()
        m = self.model(model, "mix")
        s, t = parse_seeds(seeds, "seeds"), parse_seeds(styles, "styles")
        tiles, cols = await run_in_threadpool(m.mix, s, t, crossover, psi)
        return await self._png(images.make_grid(tiles, cols), {"X-Model": m.name})

    async def _file_image(self, path: Path) -> Image.Image:
        """The upload of a typed API (BentoML stores it as a file), decoded like a raw upload.

        Typed as ``Path``, not ``PIL.Image``: BentoML's own decoding of an Image parameter
        answers a non-image with a 500; ours answers it, and bombs, with a clear 4xx."""
        data = await run_in_threadpool(Path(path).read_bytes)
        return await run_in_threadpool(images.decode_image, data, self.settings.max_pixels)

    async def _reconstruct(self, img: Image.Image, model: str | None, label: int | None) -> Response:
        await self._ensure()
        m = self.model(model, "reconstruct")
        m.require("reconstruct", "it needs an encoder and a generator graph")
        m.check_label(label)
        out = await run_in_threadpool(m.reconstruct, img, label)
        return await self._png(out, {"X-Model": m.name})

    async def _encode(self, img: Image.Image, model: str | None) -> dict[str, Any]:
        await self._ensure()
        m = self.model(model, "encode")
        m.require("encode", "it has no encoder graph")
        code = await run_in_threadpool(m.encode, img)
        return {"model": m.name, "version": m.version, "code": [float(v) for v in np.ravel(code)]}

    async def _translate(
        self, img: Image.Image, model: str | None, direction: str | None, size: int | None
    ) -> Response:
        await self._ensure()
        m = self._translator(model, direction)
        m.resolve_direction(direction)
        m.check_size(size)
        out = await run_in_threadpool(m.translate_array, img, direction, size)
        return await self._png(out, {"X-Model": m.name})

    def _translator(self, name: str | None, direction: str | None) -> GanModel:
        if name is not None or direction is None:
            return self.model(name, "translate")
        known = sorted({d for m in self.served.values() for d in m.directions})
        for m in self.served.values():  # sorted by name: the first that serves the direction
            if direction in m.directions:
                return m
        raise invalid(f"unknown direction '{clip(direction)}'; known: {', '.join(known) or 'none'}", {"known": known})

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.max_bytes
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ServingError(413, f"body is over the limit of {limit} bytes", {"max_bytes": limit})
                chunks.append(chunk)
        except ClientDisconnect:  # the client hung up mid-upload: nobody to answer, nothing to trace
            raise ServingError(400, f"client disconnected after {size} bytes of the body") from None
        return b"".join(chunks)

    async def _upload(self, request: Request) -> Image.Image:
        """The uploaded image of a curl route: raw body (image/*) or multipart field ``image``."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        accepted = "send image/png or image/jpeg as the body, or multipart/form-data with a file field 'image'"
        if media == "multipart/form-data":
            body = await self._body(request)
            try:
                form = await MultiPartParser(request.headers, _once(body), max_files=4, max_fields=16).parse()
            except MultiPartException as e:
                raise ServingError(400, f"malformed multipart body: {e.message}") from None
            except (KeyError, ValueError) as e:  # e.g. no boundary= in the Content-Type
                raise ServingError(400, f"malformed multipart body: {clip(repr(e))}") from None
            try:
                field = form.get("image")
                if not isinstance(field, UploadFile):
                    raise ServingError(
                        400, "multipart body has no file field 'image'", {"fields": [clip(k) for k in form.keys()]}
                    )
                data = await field.read()
            finally:
                await form.close()
        elif media.startswith("image/") or media == "application/octet-stream":
            data = await self._body(request)
        else:
            raise ServingError(415, f"unsupported Content-Type {clip(media) or '(none)'!r}: {accepted}")
        return await run_in_threadpool(images.decode_image, data, self.settings.max_pixels)

    # -- typed BentoML APIs (POST, JSON or multipart; bentoml.SyncHTTPClient) ----------------
    @bentoml.api(route="/generate", input_spec=GenerateRequest)
    async def generate(self, **params: Any) -> Image.Image:
        """PNG grid of n samples (same bytes as GET /generate with the same parameters)."""
        return await _guard(self._generate(GenerateRequest(**params)))

    @bentoml.api(route="/interpolate")
    async def interpolate(
        self,
        model: str | None = None,
        seed_a: int | None = None,
        seed_b: int | None = None,
        steps: int = 8,
        label: int | None = None,
        psi: float | None = None,
        format: Literal["png", "gif"] = "png",
    ) -> Image.Image:
        """Frames from tile 0 of seed_a to tile 0 of seed_b (same bytes as GET /interpolate)."""
        return await _guard(self._interpolate(model, seed_a, seed_b, steps, label, psi, format))

    @bentoml.api(route="/mix")
    async def mix(
        self,
        model: str | None = None,
        seeds: str = "1,2,3",
        styles: str = "4,5,6",
        crossover: int | None = None,
        psi: float | None = None,
    ) -> Image.Image:
        """Style-mixing grid (same bytes as GET /mix)."""
        return await _guard(self._mix(model, seeds, styles, crossover, psi))

    @bentoml.api(route="/models")
    async def models(self) -> list[ModelInfo]:
        """Served models and their metadata (same JSON as GET /models)."""

        async def work() -> Any:
            await self._ensure()
            return [ModelInfo(**m.info()) for m in self.served.values()]

        return await _guard(work())

    @bentoml.api(route="/api/encode")
    async def encode(self, image: Path, model: str | None = None) -> EncodeResponse:
        """Latent code of an image (multipart: file field 'image'; the curl route is POST /encode)."""

        async def work() -> Any:
            return EncodeResponse(**await self._encode(await self._file_image(image), model))

        return await _guard(work())

    @bentoml.api(route="/api/reconstruct")
    async def reconstruct(self, image: Path, model: str | None = None, label: int | None = None) -> Image.Image:
        """Encode then generate (multipart; the curl route is POST /reconstruct)."""

        async def work() -> Any:
            return await self._reconstruct(await self._file_image(image), model, label)

        return await _guard(work())

    @bentoml.api(route="/api/translate")
    async def translate(
        self, image: Path, model: str | None = None, direction: str | None = None, size: int | None = None
    ) -> Image.Image:
        """Image-to-image translation (multipart; the curl route is POST /translate)."""

        async def work() -> Any:
            return await self._translate(await self._file_image(image), model, direction, size)

        return await _guard(work())

    # -- curl and browser routes (FastAPI) ---------------------------------------------------
    @app.get("/models", response_model=list[ModelInfo | FailedModel], summary="Served models and their metadata")
    async def get_models(
        self, include_failed: bool = Query(False, description="Also list models that failed to load, with the reason")
    ) -> list[dict[str, Any]]:
        await self._ensure()
        served = [m.info() for m in self.served.values()]
        if not include_failed:
            return served
        return served + [{"name": n, "status": "failed", "reason": r} for n, r in sorted(self.failed.items())]

    @app.get("/generate", response_class=Response, responses={**GENERATE_MEDIA, **ERRORS}, summary="Grid of samples")
    async def get_generate(
        self,
        model: str | None = Query(None, max_length=200, description="Model name; optional when one model can generate"),
        n: int = Query(16, description="Tiles, 1..GANZOO_MAX_N (default 256); ceil(sqrt(n)) per row",
                       json_schema_extra={"minimum": 1, "maximum": SETTINGS.max_n, "example": 16}),
        seed: int | None = Query(None, description="Seed >= 0 (random when omitted; echoed in X-Seed)",
                                 json_schema_extra={"minimum": 0, "maximum": MAX_SEED, "example": 7}),
        label: str | None = Query(None, description="Class of every tile: index or name (conditional models)"),
        psi: float | None = Query(None, description="Truncation in [0, 2] (models with a psi input)",
                                  json_schema_extra={"minimum": 0, "maximum": 2, "example": 0.7}),
        format: Literal["png", "npy", "json"] = Query("png", description="png grid, or the tiles as uint8 NHWC"),
        filter: str | None = Query(None, max_length=40, description="critic (rejection sampling through the model's "
                                   "critic, the default where it ships one) or none (the generator's own samples)"),
    ) -> Response:
        await self._ensure()
        index = self.model(model, "generate").resolve_label(label)
        return await self._generate(
            GenerateRequest(model=model, n=n, seed=seed, label=index, psi=psi, filter=filter), format)

    @app.get("/interpolate", response_class=Response, responses={**INTERPOLATE_MEDIA, **ERRORS},
             summary="Latent interpolation")
    async def get_interpolate(
        self,
        model: str | None = Query(None, max_length=200),
        seed_a: int | None = Query(None, description="Start: tile 0 of this seed (random when omitted)"),
        seed_b: int | None = Query(None, description="End: tile 0 of this seed (random when omitted)"),
        steps: int = Query(8, description="Frames, 2..64", json_schema_extra={"minimum": 2, "maximum": 64}),
        label: str | None = Query(None, description="Class: index or name (conditional models)"),
        psi: float | None = Query(None),
        format: Literal["png", "gif"] = Query("png", description="png strip or animated gif"),
    ) -> Response:
        await self._ensure()
        index = self.model(model, "interpolate").resolve_label(label)
        return await self._interpolate(model, seed_a, seed_b, steps, index, psi, format)

    @app.get("/mix", response_class=Response, responses={**PNG, **ERRORS}, summary="Style-mixing grid")
    async def get_mix(
        self,
        model: str | None = Query(None, max_length=200),
        seeds: str = Query("1,2,3", max_length=400, description="Content images (left column): coarse styles"),
        styles: str = Query("4,5,6", max_length=400, description="Style sources (top row): fine styles, comma list"),
        crossover: int | None = Query(None, description="First layer taken from the style source (default L/2)"),
        psi: float | None = Query(None),
    ) -> Response:
        return await self._mix(model, seeds, styles, crossover, psi)

    @app.post("/reconstruct", response_class=Response, responses={**PNG, **ERRORS}, openapi_extra=IMAGE_BODY,
              summary="Encode then generate (raw image body or multipart)")
    async def post_reconstruct(
        self,
        request: Request,
        model: str | None = Query(None, max_length=200),
        label: int | None = Query(None, description="Class for the generator (conditional models)"),
    ) -> Response:
        await self._ensure()
        m = self.model(model, "reconstruct")
        m.require("reconstruct", "it needs an encoder and a generator graph")
        m.check_label(label)
        return await self._reconstruct(await self._upload(request), model, label)

    @app.post("/encode", response_model=EncodeResponse, responses=ERRORS, openapi_extra=IMAGE_BODY,
              summary="Latent code of an image (raw image body or multipart)")
    async def post_encode(self, request: Request, model: str | None = Query(None, max_length=200)) -> dict[str, Any]:
        await self._ensure()
        self.model(model, "encode").require("encode", "it has no encoder graph")
        return await self._encode(await self._upload(request), model)

    @app.post("/translate", response_class=Response, responses={**PNG, **ERRORS}, openapi_extra=IMAGE_BODY,
              summary="Image-to-image translation (raw image body or multipart)")
    async def post_translate(
        self,
        request: Request,
        model: str | None = Query(None, max_length=200, description="Model; optional, picked by direction"),
        direction: str | None = Query(None, max_length=200, description="e.g. apple2orange (GET /models)"),
        size: int | None = Query(None, description="Working resolution of the shorter side (default: the input's, "
                                 "up to GANZOO_TRANSLATE_SIZE=256, at least the model's image size)"),
    ) -> Response:
        await self._ensure()
        m = self._translator(model, direction)
        m.resolve_direction(direction)
        m.check_size(size)
        return await self._translate(await self._upload(request), model, direction, size)


Ganzoo.add_asgi_middleware(
    Admission,
    max_inflight=SETTINGS.max_inflight,
    max_wait_s=SETTINGS.max_wait_s,
    timeout_s=SETTINGS.timeout_s,
    max_bytes=SETTINGS.max_bytes,
    typed=frozenset(api.route for api in Ganzoo.apis.values()),
)
routelabels.install()
traffic.install()
openapi.install(Ganzoo)
