"""BentoML's request timeout as installed by serving.traffic: answered requests are let go at
once (BentoML's own kept each one's context alive for the whole timeout), and a request past the
timeout still gets its 504."""

from __future__ import annotations

import asyncio
import contextvars
import json
import weakref
from typing import Any

from bentoml._internal.server.http import traffic as bentoml_traffic

from serving import traffic

REQUEST_STATE: contextvars.ContextVar[Any] = contextvars.ContextVar("request_state")


class _State:
    """Stands for what a request's context holds in the server (its span and all it refers to)."""


def _scope() -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/models", "headers": []}


async def _call(middleware: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await middleware(_scope(), receive, send)
    return sent


async def _answer(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _state_outlives_request(middleware_cls: type) -> bool:
    """Serve one request whose context holds a _State; is the _State still alive after the answer?"""

    async def main() -> bool:
        middleware = middleware_cls(_answer, timeout=60)

        async def request() -> weakref.ref[_State]:
            state = _State()
            REQUEST_STATE.set(state)  # this task's context, as the tracing middleware sets its span
            sent = await _call(middleware)
            assert sent[0]["status"] == 200
            return weakref.ref(state)

        ref = await asyncio.create_task(request())  # the task and its context are gone after this
        for _ in range(3):  # let the loop run the request's last callbacks
            await asyncio.sleep(0)
        return ref() is not None

    return asyncio.run(main())


def test_bentomls_own_timeout_keeps_each_answered_request_alive():
    """The reason for serving.traffic: if this stops holding, BentoML fixed it and the patch can go."""
    original = next(  # BentoML's class, whether or not install() has run in this process
        c for c in bentoml_traffic.TimeoutMiddleware.__mro__ if not getattr(c, "_ganzoo", False)
    )
    assert _state_outlives_request(original)


def test_the_installed_timeout_lets_an_answered_request_go():
    traffic.install()
    installed = bentoml_traffic.TimeoutMiddleware
    assert getattr(installed, "_ganzoo", False)
    assert not _state_outlives_request(installed)
    traffic.install()  # idempotent: the class is not wrapped twice
    assert bentoml_traffic.TimeoutMiddleware is installed


def test_a_request_past_the_timeout_gets_a_json_504_and_its_work_is_cancelled():
    traffic.install()
    cancelled = asyncio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> list[dict[str, Any]]:
        sent = await asyncio.wait_for(_call(bentoml_traffic.TimeoutMiddleware(slow, timeout=0.05)), 10)
        await asyncio.wait_for(cancelled.wait(), 10)
        return sent

    sent = asyncio.run(main())
    assert sent[0]["status"] == 504
    body = json.loads(sent[1]["body"])
    assert "within 0.05 s" in body["error"] and body["detail"] == {"timeout_s": 0.05}
