"""BentoML's per-request timeout, with its timer let go when the request ends.

BentoML 1.4's ``TimeoutMiddleware`` (``bentoml._internal.server.http.traffic``) arms
``loop.call_later(timeout, ...)`` for every request and never cancels it, and asyncio's timer
keeps a copy of the request's context - its OpenTelemetry span and all the span holds - until it
fires. So every answered request stayed in memory for the whole ``traffic.timeout`` (60 s
here): at ~600 requests/s that pinned ~36,000 contexts, about 230 MiB of RSS, and the soak in
``tests/test_serving_hostile.py`` saw the service grow for a minute before it levelled off.
asyncpg fixed the same pattern in MagicStack/asyncpg#831. BentoML has no setting for it, so
``install()`` swaps in a subclass whose timer runs in an empty context and is cancelled once the
request is over; asyncio drops cancelled timers from its heap once they are the majority. Its
504 carries the project's JSON error shape ``{"error", "detail"}``.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any


def install() -> None:
    from bentoml._internal.server.http import traffic
    from starlette.responses import JSONResponse

    base = traffic.TimeoutMiddleware
    if getattr(base, "_ganzoo", False):
        return

    class ReleasingTimeout(base):  # type: ignore[misc, valid-type]
        """BentoML's timeout (504 past ``timeout`` while the work runs on), timer released after."""

        _ganzoo = True

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] not in ("http", "websocket"):
                return await self.app(scope, receive, send)
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            timer = loop.call_later(self.timeout, self._set_timer_out, waiter, context=contextvars.Context())

            async def _send(message: Any) -> None:
                if not waiter.done():
                    waiter.set_result(None)
                await send(message)

            fut = asyncio.ensure_future(self.app(scope, receive, _send))
            try:
                await waiter
            except asyncio.TimeoutError:
                if fut.cancel():
                    # the project's error shape (BentoML's has no "detail"); admission's 503 at
                    # GANZOO_TIMEOUT_S normally answers first, this is the backstop 30 s later
                    body = {"error": f"request not answered within {self.timeout:g} s (traffic.timeout)",
                            "detail": {"timeout_s": self.timeout}}
                    await JSONResponse(body, status_code=504)(scope, receive, send)
            else:
                await fut
            finally:
                timer.cancel()

    traffic.TimeoutMiddleware = ReleasingTimeout
