"""One OpenAPI document for the service: every route once, with our title and version.

BentoML 1.4 (``_bentoml_sdk.service.openapi.generate_spec``) merges the mounted FastAPI
app's paths over its own API paths by URL, so a path that has both a GET route (curl) and
a POST ``@bentoml.api`` (``/generate``, ``/interpolate``, ``/mix``, ``/models``) would
lose its POST operation; and its ``info`` says BentoML's contact and version "None" for a
service that is not built into a Bento. ``install`` wraps the generator to merge the
operations of such paths and to state ganzoo's own title, version and description.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

DESCRIPTION = (
    "**Gallery: [/ui](/ui)** (pictures, in a browser). "
    "Sample, interpolate, style-mix, reconstruct and translate with exported GANs (ONNX Runtime). "
    "GET routes and raw-body POST routes are for curl and browsers; the POST APIs of the same names "
    "(and /api/encode, /api/reconstruct, /api/translate, multipart) are for bentoml.SyncHTTPClient. "
    "Every error is JSON {error, detail}; 503 comes with Retry-After. Guide: docs/SERVING.md."
)
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def version() -> str:
    try:
        return metadata.version("ganzoo")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def install(service: Any) -> None:
    import attr
    from _bentoml_sdk.service import openapi as sdk

    if getattr(sdk.generate_spec, "_ganzoo", False):
        return
    original = sdk.generate_spec

    def generate_spec(svc: Any, **kwargs: Any) -> Any:
        spec = original(svc, **kwargs)
        if svc is not service:
            return spec
        paths = dict(spec.paths)
        for path, ours in sdk._get_api_routes(svc).items():
            merged = paths.get(path)
            if merged is None:
                continue
            filled = {m: getattr(ours, m) for m in METHODS if getattr(ours, m) and not getattr(merged, m)}
            if filled:
                paths[path] = attr.evolve(merged, **filled)
        bento = getattr(svc, "bento", None)
        built = getattr(getattr(bento, "tag", None), "version", None)
        info = attr.evolve(spec.info, title="ganzoo", version=str(built or version()), description=DESCRIPTION,
                           contact=None)
        return attr.evolve(spec, paths=paths, info=info)

    generate_spec._ganzoo = True  # type: ignore[attr-defined]
    sdk.generate_spec = generate_spec
