"""serving.admission.Admission on small real ASGI apps: the decisions, not a server.

The server-level behaviour (a burst against a real ``bentoml serve``) is in
test_serving_engine.py; here each rule is driven directly, so its edge cases are cheap.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from serving.admission import Admission, Throughput, clip
from serving.routelabels import KEY, UNMATCHED, label, restore


def run(app: Any, path: str = "/generate", body: bytes = b"", headers: list | None = None, chunks: int = 1,
        **limits: Any) -> tuple[int, dict[str, str], bytes]:
    """One request through Admission(app); (status, headers, body)."""
    mw = Admission(app, **{"max_inflight": 8, "max_wait_s": 2.0, "timeout_s": 5.0, "max_bytes": 1000, **limits})
    return asyncio.run(_call(mw, path, body, headers or [], chunks))


async def _call(mw: Any, path: str, body: bytes, headers: list, chunks: int) -> tuple[int, dict[str, str], bytes]:
    parts = [body[i::chunks] for i in range(chunks)] if body else [b""]
    queue = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
    sent: list[dict] = []

    async def receive() -> dict:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    await mw(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, out


async def reads_body(scope: Any, receive: Any, send: Any) -> None:
    data = b""
    while True:
        m = await receive()
        if m["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        data += m.get("body", b"")
        if not m.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": data})


def test_a_small_body_passes_and_gets_the_security_header():
    status, headers, body = run(reads_body, body=b"hello")
    assert (status, body) == (200, b"hello")
    assert headers["x-content-type-options"] == "nosniff"


def test_a_body_over_the_limit_is_413_by_header_or_while_streaming():
    status, _, body = run(reads_body, body=b"x" * 2000, headers=[(b"content-length", b"2000")])
    assert status == 413 and "over the limit of 1000" in json.loads(body)["error"]
    status, _, body = run(reads_body, body=b"x" * 2000, chunks=4)  # no Content-Length
    assert status == 413 and json.loads(body)["detail"] == {"max_bytes": 1000}


def test_plain_text_errors_become_json():
    async def not_found(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 405, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Method Not Allowed"})

    status, headers, body = run(not_found)
    assert status == 405 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"].startswith("method not allowed")


def test_a_server_fault_is_a_json_500_not_a_dropped_connection():
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("bug")

    status, _, body = run(broken)
    assert status == 500 and json.loads(body) == {"error": "internal error (see the server log)",
                                                  "detail": "RuntimeError"}


def test_an_error_raised_after_the_answer_does_not_drop_the_connection():
    async def answers_then_raises(scope: Any, receive: Any, send: Any) -> None:  # Starlette's ServerErrorMiddleware
        await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Internal Server Error"})
        raise RuntimeError("re-raised for the server's log")

    status, _, body = run(answers_then_raises)  # no exception reaches the server: it keeps the connection
    assert status == 500 and json.loads(body)["error"] == "Internal Server Error"


def test_a_request_not_answered_within_the_budget_is_503_with_retry_after():
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(10)

    status, headers, body = run(slow, timeout_s=0.05)
    assert status == 503 and headers["retry-after"] == "1" and "GANZOO_TIMEOUT_S" in json.loads(body)["error"]


def test_refusal_by_inflight_count_and_by_expected_wait():
    mw = Admission(reads_body, max_inflight=40, max_wait_s=0.5, timeout_s=1, max_bytes=10)
    scope = {"type": "http", "path": "/generate", "query_string": b"n=64&seed=1"}
    lane = mw.lane(scope)
    assert mw.refusal(lane, 100.0) is None
    lane.inflight = 8  # nothing measured yet: a few at once only
    assert "measuring capacity" in mw.refusal(lane, 100.0)[0]
    lane.inflight = 0
    mw.inflight = 40
    why, _ = mw.refusal(lane, 100.0)
    assert "GANZOO_MAX_INFLIGHT=40" in why
    mw.inflight = lane.inflight = 3
    for i in range(10):  # 10 completions in 3.6 busy s: 2.5 requests/s, so 3 ahead and this one: ~1.6 s
        lane.throughput.record(96.0 + 0.4 * i, 0.4 * i)
    why, wait = mw.refusal(lane, 100.0)
    assert "GANZOO_MAX_WAIT_S=0.5" in why and wait == pytest.approx(4 / (9 / 3.6), rel=0.01)
    cheap = mw.lane({**scope, "query_string": b"n=1"})  # slow n=64 traffic does not price n=1 requests
    assert cheap is not lane and mw.refusal(cheap, 100.0) is None
    assert mw.lane({**scope, "query_string": b"seed=3&n=64"}) is lane
    lane.inflight = 0
    assert mw.refusal(lane, 100.0) is None  # nothing queued: never refuse
    mw.max_wait_s = 2.0  # admitted while the expected wait is under 75% of the limit, the margin
    lane.inflight = 2  # 3 / 2.5 = 1.2 s expected
    assert mw.refusal(lane, 100.0) is None
    lane.inflight = 3  # 1.6 s expected: under 2 s, but over the 1.5 s that leaves the margin
    why, wait = mw.refusal(lane, 100.0)
    assert "75% of GANZOO_MAX_WAIT_S=2" in why and wait == pytest.approx(1.6, rel=0.01)


def test_lanes_stay_few_whatever_the_paths():
    mw = Admission(reads_body, max_inflight=4, max_wait_s=0.5, timeout_s=1, max_bytes=10)
    for i in range(500):
        mw.lane({"type": "http", "path": f"/random/{i}", "query_string": b""})
        mw.lane({"type": "http", "path": "/generate", "query_string": f"n={'9' * (i % 40)}".encode()})
    assert len(mw.lanes) < 20


def test_throughput_needs_enough_samples_and_keeps_its_last_estimate_when_idle():
    t = Throughput(window_s=5)
    for i in range(7):  # one request every 0.5 s, each busy for 0.01 s: capacity is 100/s
        t.record(3.0 + 0.5 * i, 0.01 * (i + 1))
    assert t.rate(7.0) is None
    t.record(6.5, 0.08)
    assert t.rate(7.0) == pytest.approx(100)
    assert t.rate(100.0) == pytest.approx(100)  # all outside the window: the last estimate stands
    for i in range(8):  # then a slower spell replaces it: 0.05 busy s per request, 20/s
        t.record(101.0 + 0.1 * i, 0.08 + 0.05 * (i + 1))
    assert t.rate(102.0) == pytest.approx(20)


def test_unknown_paths_are_labelled_once_and_restored_before_routing():
    known = {"/generate", "/models"}
    assert label("/generate", known) == "/generate" and label("/x/y/z", known) == UNMATCHED
    assert label("/assets/app.js", known) == "/assets/app.js"
    scope = {"path": UNMATCHED, KEY: "/x/y/z"}
    assert restore(scope)["path"] == "/x/y/z" and KEY not in restore(scope)


def test_typed_routes_take_json_or_multipart_with_a_boundary_only():
    typed = frozenset({"/generate"})
    ok = run(reads_body, body=b"{}", headers=[(b"content-type", b"application/json")], typed=typed)
    assert ok[0] == 200
    status, _, body = run(reads_body, headers=[(b"content-type", b"multipart/form-data")], typed=typed)
    assert status == 400 and "boundary" in json.loads(body)["error"]
    status, _, body = run(reads_body, headers=[(b"content-type", b"text/csv")], typed=typed)
    assert status == 415 and "text/csv" in json.loads(body)["error"]
    assert run(reads_body, path="/other", headers=[(b"content-type", b"text/csv")], typed=typed)[0] == 200


def test_every_route_of_the_service_keeps_its_own_label():
    from serving.routelabels import known_paths

    assert {"/generate", "/translate", "/encode", "/reconstruct", "/models", "/mix", "/interpolate", "/api/translate",
            "/tiles", "/readyz", "/metrics"} <= known_paths()


def test_clip_bounds_what_is_echoed():
    assert clip("a" * 10) == "a" * 10
    long = clip("a" * 10_000)
    assert len(long) < 120 and "10000 characters" in long
