"""serving/coalesce.py: concurrent requests' jobs share inference calls, each gets its own answer.

The callee here is an async function standing in for the inference service's batchable
``tiles`` (the service-level test, tests/test_serving_engine.py, runs the real one): it
answers each job with its own labels, so a mix-up between requests would show.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from serving.coalesce import Coalescer


class Callee:
    def __init__(self, fail_on: int | None = None) -> None:
        self.calls: list[list[int]] = []  # the job ids of each call
        self.release = asyncio.Event()
        self.fail_on = fail_on

    async def __call__(self, jobs: list[dict]) -> list[np.ndarray]:
        self.calls.append([int(j["id"]) for j in jobs])
        await self.release.wait()
        if self.fail_on is not None and any(j["id"] == self.fail_on for j in jobs):
            raise RuntimeError("inference failed")
        return [np.asarray(j["labels"]) * 10 for j in jobs]


def job(i: int, n: int = 1) -> dict:
    return {"id": i, "labels": np.full(n, i)}


async def gather_requests(c: Coalescer, callee: Callee, ids: list[int], n: int = 1) -> list:
    tasks = [asyncio.create_task(c.submit([job(i, n)], [n])) for i in ids]
    await asyncio.sleep(0)  # let every request queue its job before the callee answers
    callee.release.set()
    out = await asyncio.gather(*tasks, return_exceptions=True)
    return [o[0] if isinstance(o, list) else o for o in out]  # each request had one job


def test_concurrent_jobs_share_calls_and_each_request_gets_its_own_tiles():
    async def main() -> None:
        callee = Callee()
        c = Coalescer(callee, max_tiles=64, max_inflight=1)
        out = await gather_requests(c, callee, list(range(10)))
        assert [o.tolist() for o in out] == [[i * 10] for i in range(10)]
        # the first request goes at once; the nine that arrived meanwhile share the next call
        assert callee.calls == [[0], list(range(1, 10))]

    asyncio.run(main())


def test_a_call_never_exceeds_max_tiles_and_a_big_job_still_goes():
    async def main() -> None:
        callee = Callee()
        c = Coalescer(callee, max_tiles=8, max_inflight=1)
        out = await gather_requests(c, callee, [0, 1, 2, 3, 4], n=3)
        assert [o.tolist() for o in out] == [[i * 10] * 3 for i in range(5)]
        assert callee.calls == [[0], [1, 2], [3, 4]]  # 3 + 3 <= 8 < 3 + 3 + 3
        big = Coalescer(callee, max_tiles=8)
        assert (await big.submit([job(7, 20)], [20]))[0].tolist() == [70] * 20

    asyncio.run(main())


def test_max_inflight_calls_go_at_once():
    async def main() -> None:
        callee = Callee()
        c = Coalescer(callee, max_tiles=64, max_inflight=2)
        await gather_requests(c, callee, list(range(6)))
        assert callee.calls == [[0], [1], [2, 3, 4, 5]]

    asyncio.run(main())


def test_a_failed_call_fails_its_requests_only_and_the_next_call_runs():
    async def main() -> None:
        callee = Callee(fail_on=0)
        c = Coalescer(callee, max_tiles=64, max_inflight=1)
        out = await gather_requests(c, callee, [0, 1, 2])
        assert isinstance(out[0], RuntimeError)
        assert [o.tolist() for o in out[1:]] == [[10], [20]]
        assert c.inflight == 0

    asyncio.run(main())


def test_a_cancelled_request_is_not_sent():
    async def main() -> None:
        callee = Callee()
        c = Coalescer(callee, max_tiles=64, max_inflight=1)
        first = asyncio.create_task(c.submit([job(0)], [1]))
        await asyncio.sleep(0)
        gone = asyncio.create_task(c.submit([job(1)], [1]))
        kept = asyncio.create_task(c.submit([job(2)], [1]))
        await asyncio.sleep(0)
        gone.cancel()
        callee.release.set()
        assert (await first)[0].tolist() == [0]
        assert (await kept)[0].tolist() == [20]
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert callee.calls == [[0], [2]]

    asyncio.run(main())


def test_a_request_of_several_jobs_gets_them_back_in_order():
    async def main() -> None:
        callee = Callee()
        callee.release.set()
        c = Coalescer(callee, max_tiles=4)
        out = await c.submit([job(1, 4), job(2, 4), job(3, 2)], [4, 4, 2])
        assert [o.tolist() for o in out] == [[10] * 4, [20] * 4, [30] * 2]

    asyncio.run(main())
