"""Prometheus labels by route, never by raw path.

BentoML 1.4's HTTP metrics middleware (``bentoml._internal.server.http.instruments``)
labels every series with ``scope["path"]`` and has no setting to change it, so each
distinct unknown path a client sends becomes new series: 20,000 random paths made
``/metrics`` 156 MB. ``install()`` swaps in a subclass that reports any path which is not
a route of the service as ``/{unmatched}``; the real path travels on in the ASGI scope
under ``ganzoo.path`` and is put back by ``restore`` before routing.
"""

from __future__ import annotations

from typing import Any

UNMATCHED = "/{unmatched}"
_PREFIXES = ("/assets/", "/static_content/", "/ui/")
KEY = "ganzoo.path"


def known_paths() -> set[str]:
    """Every route path of the ganzoo services (BentoML APIs, the mounted app, system routes)."""
    from serving.engine import Inference
    from serving.service import Ganzoo, app

    paths = {"/", "/docs.json", "/schema.json", "/readyz", "/livez", "/healthz", "/metrics", "/ui"}
    for svc in (Ganzoo, Inference):
        paths |= {api.route for api in svc.apis.values()}
    from fastapi.openapi.utils import get_openapi

    paths |= set(get_openapi(title="ganzoo", version="0", routes=app.routes)["paths"])  # the mounted app's routes
    return paths


_CACHE: dict[str, set[str]] = {}


def cached_known_paths() -> set[str]:
    """``known_paths()``, computed once per process (the routes do not change once served)."""
    if "paths" not in _CACHE:
        _CACHE["paths"] = known_paths()
    return _CACHE["paths"]


def label(path: str, known: set[str]) -> str:
    return path if path in known or path.startswith(_PREFIXES) else UNMATCHED


def restore(scope: dict[str, Any]) -> dict[str, Any]:
    """The scope with its real path back (a no-op for paths that were not relabelled)."""
    if KEY in scope:
        scope = dict(scope)
        scope["path"] = scope.pop(KEY)
    return scope


def install() -> None:
    from bentoml._internal.server.http import instruments

    base = instruments.RunnerTrafficMetricsMiddleware
    if getattr(base, "_ganzoo", False):
        return
    class RouteLabelledMetrics(base):  # type: ignore[misc, valid-type]
        _ganzoo = True

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope.get("type") == "http":
                shown = label(scope["path"], cached_known_paths())
                if shown != scope["path"]:
                    scope = {**scope, "path": shown, KEY: scope["path"]}
            await super().__call__(scope, receive, send)

    instruments.RunnerTrafficMetricsMiddleware = RouteLabelledMetrics
