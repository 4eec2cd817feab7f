"""Admission control and response hygiene for the HTTP-facing service, as one ASGI middleware.

Why our own: BentoML's ``traffic.max_concurrency`` answers 429 with a plain body and no
``Retry-After``, and only counts requests; its ``traffic.timeout`` answers 504 and lets
the work run on. What a client of an image API needs past capacity is a fast 503 with
``Retry-After`` once the *expected wait* is too long, so this middleware estimates it with
Little's law (requests in flight / recent completions per second) and refuses at the door.
BentoML's adaptive batching still sheds tiles it cannot start in time (503 from the
inference service); both end in the same JSON error.

It also: bounds every request body (``Content-Length`` or streamed), answers a request not
started within the time budget with 503, gives every 4xx/5xx the project's JSON shape
``{"error", "detail"}`` (BentoML's and Starlette's own 404/405 are plain text), adds
``X-Content-Type-Options: nosniff``, and logs one line per refused request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from serving.routelabels import restore

log = logging.getLogger("bentoml.ganzoo")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# probes, metrics and docs are never refused: an overloaded server must still say so
EXEMPT = frozenset({"/readyz", "/livez", "/healthz", "/metrics", "/docs.json", "/", "/ui"})
COLD_INFLIGHT = 8  # requests of a kind admitted at once before its service rate is known
# A request is admitted while its expected wait is under this share of GANZOO_MAX_WAIT_S: the
# estimate lags a falling service rate and is a mean, so the rest is the margin that keeps the
# worst admitted wait under the limit (benchmarks/bench_serving.py's concurrency-128 row)
ADMIT_SHARE = 0.75
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]


def clip(text: Any, limit: int = 80) -> str:
    """A bounded prefix of something a client sent, for error messages and logs."""
    s = str(text)
    return s if len(s) <= limit else f"{s[:limit]}... ({len(s)} characters)"


def error_body(status: int, message: str, detail: Any = None) -> bytes:
    return json.dumps({"error": message, "detail": detail}).encode()


class Throughput:
    """Completions per *busy* second over a sliding window: the service rate in Little's law.

    Busy time (some request in flight) is the denominator, not wall time: an idle server that
    answered 3 requests in the last 5 s can still serve hundreds a second.
    """

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self.done: deque[tuple[float, float]] = deque()  # (time, cumulative busy seconds)
        self.last: float | None = None

    def record(self, now: float, busy: float) -> None:
        self.done.append((now, busy))
        self._trim(now)

    def rate(self, now: float) -> float | None:
        """Requests per busy second over the window; while it holds fewer than 8 completions,
        the last such estimate (None before the first): a server idle for a while still knows
        what a request costs, and does not refuse a burst as if it had never served one."""
        self._trim(now)
        if len(self.done) >= 8:
            busy = self.done[-1][1] - self.done[0][1]
            self.last = (len(self.done) - 1) / max(busy, 1e-6)
        return self.last

    def _trim(self, now: float) -> None:
        while self.done and now - self.done[0][0] > self.window_s:
            self.done.popleft()


class Lane:
    """Requests of one kind in flight, and their service rate (completions per busy second)."""

    def __init__(self) -> None:
        self.inflight = 0
        self.busy_total = 0.0  # seconds with at least one request of this lane in flight, before busy_since
        self.busy_since = 0.0
        self.throughput = Throughput()

    def start(self, now: float) -> None:
        if self.inflight == 0:
            self.busy_since = now
        self.inflight += 1

    def finish(self, now: float) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self.busy_total += now - self.busy_since
            busy = self.busy_total
        else:
            busy = self.busy_total + now - self.busy_since
        self.throughput.record(now, busy)


class Admission:
    """ASGI middleware; ``Ganzoo.add_asgi_middleware(Admission, **limits)``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_inflight: int,
        max_wait_s: float,
        timeout_s: float,
        max_bytes: int,
        typed: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.typed = typed  # routes of @bentoml.api methods: JSON or multipart bodies only
        self.max_inflight = max_inflight
        self.max_wait_s = max_wait_s
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.inflight = 0
        self.lanes: dict[tuple[str, int | None], Lane] = {}

    def lane(self, scope: Scope) -> Lane:
        """Requests alike in cost share an estimate: same route, and for /generate the same n.

        One estimate for all traffic would let a few slow requests (n=256, big translations)
        make a burst of cheap ones look expensive. Keys are bounded: unknown paths share one."""
        from serving.routelabels import cached_known_paths, label

        path = label(scope.get("path", ""), cached_known_paths())
        n: int | None = None
        if path == "/generate":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            raw = (query.get("n") or [""])[0]
            n = int(raw) if raw.isdigit() and len(raw) <= 6 else None
        return self.lanes.setdefault((path, n), Lane())

    # -- the decision -----------------------------------------------------------------------
    def refusal(self, lane: Lane, now: float) -> tuple[str, float] | None:
        """(why, seconds to wait) when a new request must be refused now."""
        if self.inflight >= self.max_inflight:
            return f"{self.inflight} requests in progress (limit GANZOO_MAX_INFLIGHT={self.max_inflight})", 1.0
        rate = lane.throughput.rate(now)
        if rate is None:  # not measured yet: admit a few, learn from them, then let Little's law decide
            if lane.inflight >= COLD_INFLIGHT:
                return f"measuring capacity ({lane.inflight} such requests in progress, none answered yet)", 1.0
            return None
        if lane.inflight > 0:
            wait = (lane.inflight + 1) / rate  # the ones ahead, and this one
            if wait > self.max_wait_s * ADMIT_SHARE:
                return (f"expected wait {wait:.1f} s is over {ADMIT_SHARE:.0%} of GANZOO_MAX_WAIT_S={self.max_wait_s:g}"
                        " (the rest is the estimate's margin)"), wait
        return None

    # -- ASGI --------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = restore(scope)
        path = scope.get("path", "")
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await _reply(send, 413, f"body is {length} bytes, over the limit of {self.max_bytes}",
                         {"max_bytes": self.max_bytes})
            _log_refusal(scope, 413, "body too large")
            return
        if path in EXEMPT:
            await self.app(scope, receive, _hygiene(send))
            return
        now = time.monotonic()
        lane = self.lane(scope)
        refused = self.refusal(lane, now)
        if refused is not None:
            why, wait = refused
            retry = str(max(1, math.ceil(wait)))
            await _reply(send, 503, f"server busy: {why}; retry later", {"retry_after_s": int(retry)},
                         [(b"retry-after", retry.encode())])
            _log_refusal(scope, 503, why)
            return
        if scope.get("method") == "POST" and path in self.typed and (bad := _bad_content_type(scope)):
            await _reply(send, bad[0], bad[1])
            _log_refusal(scope, bad[0], bad[1])
            return
        if scope.get("method") == "POST" and path in self.typed:
            receive, bad = await _checked_body(scope, receive, self.max_bytes)
            if bad is not None:
                await _reply(send, bad[0], bad[1], bad[2])
                _log_refusal(scope, bad[0], bad[1])
                return
        self.inflight += 1
        lane.start(now)
        try:
            await self._serve(scope, receive, send)
        finally:
            self.inflight -= 1
            lane.finish(time.monotonic())

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = {"started": False, "done": False, "overflow": False, "read": 0}
        hygienic = _hygiene(send)

        async def bounded_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > self.max_bytes:
                    state["overflow"] = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state["overflow"] and not state["started"]:
                return  # the app is unwinding from the cut-off body; 413 is sent below
            if message["type"] == "http.response.start":
                state["started"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                state["done"] = True
            await hygienic(message)

        task = asyncio.ensure_future(self.app(scope, bounded_receive, guarded_send))
        try:
            await asyncio.wait_for(asyncio.shield(task), self.timeout_s)
        except asyncio.TimeoutError:
            if not state["started"]:
                task.cancel()
                await _reply(send, 503, f"request not answered within {self.timeout_s:g} s (GANZOO_TIMEOUT_S); "
                             "retry later", {"timeout_s": self.timeout_s}, [(b"retry-after", b"1")])
                _log_refusal(scope, 503, "time budget exceeded")
                return
            await task
        except Exception as e:  # a server fault: answered as JSON, the connection stays usable
            if state["overflow"]:
                pass
            elif state["done"]:  # answered (Starlette re-raises after its 500): keep the connection
                log.error("error after answering %s %s", scope.get("method"), clip(scope.get("path"), 100), exc_info=e)
            elif state["started"]:
                raise
            else:
                log.error("unexpected error serving %s %s", scope.get("method"), clip(scope.get("path"), 100),
                          exc_info=e)
                await _reply(send, 500, "internal error (see the server log)", type(e).__name__)
                return
        if state["overflow"] and not state["started"]:
            await _reply(send, 413, f"body is over the limit of {self.max_bytes} bytes", {"max_bytes": self.max_bytes})
            _log_refusal(scope, 413, "body too large (streamed)")


def _media(scope: Scope) -> str:
    ctype = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"content-type"), "")
    return ctype.split(";")[0].strip().lower()


async def _checked_body(scope: Scope, receive: Receive, limit: int) -> tuple[Receive, tuple[int, str, Any] | None]:
    """Parse a typed route's body once here: BentoML answers a malformed multipart body with a
    500, and logs a traceback for malformed JSON. The (bounded) body is then replayed unchanged."""
    from starlette.datastructures import Headers
    from starlette.formparsers import MultiPartException, MultiPartParser

    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return receive, (413, f"body is over the limit of {limit} bytes", {"max_bytes": limit})
        if not message.get("more_body"):
            break
    body = b"".join(chunks)

    async def stream() -> Any:
        yield body

    if _media(scope) == "multipart/form-data":
        try:
            form = await MultiPartParser(Headers(scope=scope), stream(), max_files=8, max_fields=32).parse()
            await form.close()
        except MultiPartException as e:
            return receive, (400, f"malformed multipart body: {clip(e.message)}", None)
        except (KeyError, ValueError) as e:
            return receive, (400, f"malformed multipart body: {clip(repr(e))}", None)
    elif body.strip():
        try:
            json.loads(body)
        except ValueError as e:  # UnicodeDecodeError included
            return receive, (400, f"body is not valid JSON: {clip(e)}", None)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay, None


def _bad_content_type(scope: Scope) -> tuple[int, str] | None:
    """Why BentoML could not parse this body (its own answer would be a 500), or None."""
    ctype = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"content-type"), "")
    media = ctype.split(";")[0].strip().lower()
    if media in ("", "application/json"):
        return None
    if media == "multipart/form-data":
        return None if "boundary=" in ctype.lower() else (400, "malformed multipart body: no boundary= in Content-Type")
    return 415, f"unsupported Content-Type {clip(media)!r}: send application/json or multipart/form-data"


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", []):
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


def _hygiene(send: Send) -> Send:
    """Security headers on every response; JSON bodies for every error that lacks one."""
    state: dict[str, Any] = {"rewrite": False, "status": 200, "chunks": [], "start": None}

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in (b"server",)]
            headers += SECURITY_HEADERS
            ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
            status = int(message["status"])
            if status >= 400 and not ctype.startswith(b"application/json"):
                state.update(rewrite=True, status=status, start={**message, "headers": headers})
                return
            await send({**message, "headers": headers})
            return
        if message["type"] == "http.response.body" and state["rewrite"]:
            state["chunks"].append(message.get("body", b""))
            if message.get("more_body"):
                return
            text = b"".join(state["chunks"]).decode("utf-8", "replace").strip()
            body = error_body(state["status"], _reason(state["status"], text), None)
            start = state["start"]
            headers = [(k, v) for k, v in start["headers"] if k.lower() not in (b"content-type", b"content-length")]
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return wrapped


def _reason(status: int, text: str) -> str:
    known = {404: "no such route", 405: "method not allowed on this route"}
    base = known.get(status, text or f"HTTP {status}")
    return f"{base}: {clip(text, 200)}" if text and status in known else clip(base, 300)


async def _reply(
    send: Send, status: int, message: str, detail: Any = None, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = error_body(status, message, detail)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *SECURITY_HEADERS, *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _log_refusal(scope: Scope, status: int, why: str) -> None:
    log.warning("refused %s %s: %d %s", scope.get("method"), clip(scope.get("path"), 100), status, why)
