"""``GET /ui``: the web gallery, plain HTML/CSS/JS from ``serving/ui/`` (no build step, no CDN).

The page talks only to the public HTTP API (``/models``, ``/generate``, ``/interpolate``,
``/mix``, ``/translate``, ``/reconstruct``), so it works with any service that serves those
routes. Only the files in ``serving/ui/`` are served, by exact name.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, Response

UI_DIR = Path(__file__).resolve().parent / "ui"
_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}

router = APIRouter(include_in_schema=False)


def _file(name: str) -> Response:
    path = UI_DIR / name
    files = {p.name for p in UI_DIR.iterdir() if p.is_file() and p.suffix in _TYPES}
    if name not in files:
        return JSONResponse({"error": f"no such gallery file {name!r}", "detail": {"files": sorted(files)}},
                            status_code=404)
    return FileResponse(path, media_type=_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})


@router.get("/ui")
def gallery() -> Response:
    """The gallery page."""
    return _file("index.html")


@router.get("/ui/{name}")
def asset(name: str) -> Response:
    """A static file of the page (``app.js``, ``style.css``)."""
    return _file(name)
