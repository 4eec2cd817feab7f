"""The ganzoo BentoML service: every ganzoo model in the store, served with ONNX Runtime.

    bentoml serve serving.service:Ganzoo

GET routes live on a FastAPI app mounted at ``/`` (BentoML ``@api`` routes are POST only,
bentoml/BentoML#4590); BentoML mounts it passively, so its own routes (``/readyz``,
``/livez``, ``/metrics``, ``/docs.json``) and ``POST /generate`` (an ``@bentoml.api``, for
``bentoml.SyncHTTPClient``) are matched first. Every error is JSON ``{"error", "detail"}``.
No API calls another API of this service (a sync API calling a batchable one deadlocks
with threads=1).
"""

import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any, Literal

import bentoml
import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from serving import images, ui
from serving.config import Settings
from serving.errors import ServingError, invalid
from serving.providers import pick_precision, pick_providers
from serving.runtime import GanModel
from serving.sampling import MAX_SEED
from serving.schemas import EncodeResponse, ErrorResponse, GenerateRequest, ModelInfo
from serving.store import load_served

log = logging.getLogger("bentoml.ganzoo")

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "The model cannot do this, or the body is not a usable image"),
        (404, "Unknown model"),
        (413, "Body or image too large"),
        (415, "Unsupported Content-Type"),
        (422, "A parameter is missing, malformed or out of range"),
    )
}
PNG = {200: {"content": {"image/png": {}}, "description": "PNG image"}}
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
    return JSONResponse(exc.payload(), status_code=exc.status)


@app.exception_handler(RequestValidationError)
async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
    names = ", ".join(str(e["loc"][-1]) for e in errors if e["loc"])
    return JSONResponse({"error": f"invalid request parameter(s): {names}", "detail": errors}, status_code=422)


@app.exception_handler(Exception)
async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
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
        raise invalid(f"{what} must be in 0..{MAX_SEED}, got {seed}")
    return seed


def parse_seeds(text: str, what: str) -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]``; a 422 naming ``what`` otherwise."""
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise invalid(f"{what} must be a comma-separated list of integers, got {text!r}") from None
    for v in values:
        check_seed(v, what)
    return values


def png_response(arr: np.ndarray, headers: dict[str, str] | None = None) -> Response:
    return Response(images.encode_png(arr), media_type="image/png", headers=headers)


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


@bentoml.service(name="ganzoo", traffic={"timeout": 120})
@bentoml.asgi_app(app, path="/")
class Ganzoo:
    """GAN zoo: sample, interpolate, style-mix, reconstruct and translate with exported GANs."""

    def __init__(self) -> None:
        self.settings = Settings.from_env()
        Image.MAX_IMAGE_PIXELS = self.settings.max_pixels  # PIL's own decompression-bomb guard
        available = ort.get_available_providers()
        self.providers = pick_providers(available, self.settings.device)
        self.precision = pick_precision(self.providers, self.settings.precision)
        log.info(
            "onnxruntime %s: available providers %s; GANZOO_DEVICE=%s -> %s; GANZOO_PRECISION=%s -> %s",
            ort.__version__,
            available,
            self.settings.device,
            self.providers,
            self.settings.precision,
            self.precision,
        )
        self.models, self.failed = load_served(
            self.providers, self.settings.models, self.settings.ort_threads, chunk=self.settings.batch,
            precision=self.precision,
        )
        if not self.models:
            log.warning("no ganzoo model to serve: import some with `python -m serving.import_models DIR`")

    # -- helpers -----------------------------------------------------------------------------
    def model(self, name: str | None, capability: str) -> GanModel:
        """The named model, or the only one able to do ``capability`` when no name is given."""
        known = sorted(self.models)
        if name is None:
            able = [m for m in self.models.values() if capability in m.capabilities]
            if len(able) == 1:
                return able[0]
            names = ", ".join(m.name for m in able) or "none"
            raise invalid(f"model= is required (models that can {capability}: {names})", {"known": known})
        if name in self.models:
            return self.models[name]
        if name in self.failed:
            raise ServingError(
                404, f"model '{name}' is not served: it failed to load (see the server log)", {"known": known}
            )
        raise ServingError(404, f"unknown model '{name}'; known: {', '.join(known) or 'none'}", {"known": known})

    def _generate(self, req: GenerateRequest) -> tuple[GanModel, np.ndarray, int]:
        model = self.model(req.model, "generate")
        n = check_n(req.n, self.settings.max_n)
        seed = check_seed(req.seed)
        return model, model.generate(n, seed, req.label, req.psi), seed

    def _generate_png(self, req: GenerateRequest) -> Response:
        model, tiles, seed = self._generate(req)
        grid = images.make_grid(tiles, images.grid_columns(len(tiles)))
        return png_response(grid, {"X-Seed": str(seed), "X-Model": model.name})

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.max_bytes
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise ServingError(413, f"body is {length} bytes, over the limit of {limit}", {"max_bytes": limit})
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ServingError(413, f"body is over the limit of {limit} bytes", {"max_bytes": limit})
            chunks.append(chunk)
        return b"".join(chunks)

    async def _image(self, request: Request) -> Image.Image:
        """The uploaded image: raw body (image/*) or multipart field ``image``."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        accepted = "send image/png or image/jpeg as the body, or multipart/form-data with a file field 'image'"
        if media == "multipart/form-data":
            body = await self._body(request)
            try:
                form = await MultiPartParser(request.headers, _once(body), max_files=4, max_fields=16).parse()
            except MultiPartException as e:
                raise ServingError(400, f"malformed multipart body: {e.message}") from None
            except (KeyError, ValueError) as e:  # e.g. no boundary= in the Content-Type
                raise ServingError(400, f"malformed multipart body: {e!r}") from None
            try:
                field = form.get("image")
                if not isinstance(field, UploadFile):
                    raise ServingError(400, "multipart body has no file field 'image'", {"fields": list(form.keys())})
                data = await field.read()
            finally:
                await form.close()
        elif media.startswith("image/") or media == "application/octet-stream":
            data = await self._body(request)
        else:
            raise ServingError(415, f"unsupported Content-Type {media or '(none)'!r}: {accepted}")
        return await run_in_threadpool(images.decode_image, data, self.settings.max_pixels)

    # -- POST /generate: a BentoML API (JSON body, usable from bentoml.SyncHTTPClient) -------
    @bentoml.api(route="/generate", input_spec=GenerateRequest)
    def generate(self, **params: Any) -> Image.Image:
        """PNG grid of n samples (same bytes as GET /generate with the same parameters)."""
        try:
            return self._generate_png(GenerateRequest(**params))  # type: ignore[return-value]
        except ServingError as e:
            return JSONResponse(e.payload(), status_code=e.status)  # type: ignore[return-value]

    # -- GET routes (FastAPI) ----------------------------------------------------------------
    @app.get("/models", response_model=list[ModelInfo], summary="Served models and their metadata")
    def list_models(self) -> list[dict[str, Any]]:
        return [m.info() for m in self.models.values()]

    @app.get("/generate", response_class=Response, responses={**PNG, **ERRORS}, summary="Grid of samples")
    def get_generate(
        self,
        model: str | None = Query(None, description="Model name; optional when one model can generate"),
        n: int = Query(16, description="Tiles, 1..GANZOO_MAX_N; ceil(sqrt(n)) per row"),
        seed: int | None = Query(None, description="Seed >= 0 (random when omitted; echoed in X-Seed)"),
        label: str | None = Query(None, description="Class of every tile: index or name (conditional models)"),
        psi: float | None = Query(None, description="Truncation in [0, 2] (models with a psi input)"),
        format: Literal["png", "npy", "json"] = Query("png", description="png grid, or the tiles as uint8 NHWC"),
    ) -> Response:
        index = self.model(model, "generate").resolve_label(label)
        req = GenerateRequest(model=model, n=n, seed=seed, label=index, psi=psi)
        if format == "png":
            return self._generate_png(req)
        m, tiles, used = self._generate(req)
        headers = {"X-Seed": str(used), "X-Model": m.name}
        if format == "npy":
            headers["Content-Disposition"] = f'attachment; filename="{m.name}-seed{used}.npy"'
            return Response(images.encode_npy(tiles), media_type="application/octet-stream", headers=headers)
        body = {"model": m.name, "seed": used, "layout": "NHWC", "shape": list(tiles.shape), "images": tiles.tolist()}
        return JSONResponse(body, headers=headers)

    # Documentation twin of the @bentoml.api above, which takes precedence at runtime. It is
    # here because BentoML merges OpenAPI paths by URL and the mounted app's /generate entry
    # would otherwise replace the POST operation. It answers the same should it ever be hit.
    @app.post("/generate", response_class=Response, responses={**PNG, **ERRORS}, summary="Grid of samples (JSON body)")
    def post_generate_doc(self, request: GenerateRequest) -> Response:
        return self._generate_png(request)

    @app.get("/interpolate", response_class=Response, responses={**PNG, **ERRORS}, summary="Latent interpolation")
    def get_interpolate(
        self,
        model: str | None = Query(None),
        seed_a: int | None = Query(None, description="Start: tile 0 of this seed (random when omitted)"),
        seed_b: int | None = Query(None, description="End: tile 0 of this seed (random when omitted)"),
        steps: int = Query(8, description="Frames, 2..64"),
        label: str | None = Query(None, description="Class: index or name (conditional models)"),
        psi: float | None = Query(None),
        format: Literal["png", "gif"] = Query("png", description="png strip or animated gif"),
    ) -> Response:
        m = self.model(model, "interpolate")
        a, b = check_seed(seed_a, "seed_a"), check_seed(seed_b, "seed_b")
        frames = m.interpolate(a, b, steps, m.resolve_label(label), psi)
        headers = {"X-Seed-A": str(a), "X-Seed-B": str(b), "X-Model": m.name}
        if format == "gif":
            return Response(images.encode_gif(frames), media_type="image/gif", headers=headers)
        return png_response(images.make_grid(frames, len(frames)), headers)

    @app.get("/mix", response_class=Response, responses={**PNG, **ERRORS}, summary="Style-mixing grid")
    def get_mix(
        self,
        model: str | None = Query(None),
        seeds: str = Query("1,2,3", description="Content images (left column): coarse styles, comma list"),
        styles: str = Query("4,5,6", description="Style sources (top row): fine styles, comma list"),
        crossover: int | None = Query(None, description="First layer taken from the style source (default L/2)"),
        psi: float | None = Query(None),
    ) -> Response:
        m = self.model(model, "mix")
        tiles, cols = m.mix(parse_seeds(seeds, "seeds"), parse_seeds(styles, "styles"), crossover, psi)
        return png_response(images.make_grid(tiles, cols), {"X-Model": m.name})

    @app.post(
        "/reconstruct",
        response_class=Response,
        responses={**PNG, **ERRORS},
        openapi_extra=IMAGE_BODY,
        summary="Encode then generate",
    )
    async def post_reconstruct(
        self,
        request: Request,
        model: str | None = Query(None),
        label: int | None = Query(None, description="Class for the generator (conditional models)"),
    ) -> Response:
        m = self.model(model, "reconstruct")
        m.require("reconstruct", "it needs an encoder and a generator graph")
        m.check_label(label)
        img = await self._image(request)
        out = await run_in_threadpool(m.reconstruct, img, label)
        return png_response(out, {"X-Model": m.name})

    @app.post(
        "/encode",
        response_model=EncodeResponse,
        responses=ERRORS,
        openapi_extra=IMAGE_BODY,
        summary="Latent code of an image",
    )
    async def post_encode(self, request: Request, model: str | None = Query(None)) -> dict[str, Any]:
        m = self.model(model, "encode")
        m.require("encode", "it has no encoder graph")
        img = await self._image(request)
        code = await run_in_threadpool(m.encode, img)
        return {"model": m.name, "version": m.version, "code": [float(v) for v in code.ravel()]}

    @app.post(
        "/translate",
        response_class=Response,
        responses={**PNG, **ERRORS},
        openapi_extra=IMAGE_BODY,
        summary="Image-to-image translation",
    )
    async def post_translate(
        self,
        request: Request,
        model: str | None = Query(None, description="Model; optional, picked by direction"),
        direction: str | None = Query(None, description="e.g. apple2orange (see directions in GET /models)"),
        size: int | None = Query(None, description="Working resolution of the shorter side (default image_size)"),
    ) -> Response:
        m = self._translator(model, direction)
        m.resolve_direction(direction)
        m.check_size(size)
        img = await self._image(request)
        out = await run_in_threadpool(m.translate_array, img, direction, size)
        return png_response(out, {"X-Model": m.name})

    def _translator(self, name: str | None, direction: str | None) -> GanModel:
        if name is not None or direction is None:
            return self.model(name, "translate")
        known = sorted({d for m in self.models.values() for d in m.directions})
        for m in self.models.values():  # sorted by name: the first that serves the direction
            if direction in m.directions:
                return m
        raise invalid(f"unknown direction '{direction}'; known: {', '.join(known) or 'none'}", {"known": known})
