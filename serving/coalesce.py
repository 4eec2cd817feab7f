"""Join the tile jobs of concurrent requests into one call of the inference service.

BentoML's adaptive batching runs on the callee's side: its dispatcher merges the *calls*
waiting in the inference service into one batch. Each call is still one HTTP request on the
internal hop, and on this machine that hop costs about 4 ms of CPU in the inference process
and 1 ms in the caller (measured with ``benchmarks/bench_serving.py``'s CPU columns;
docs/PERFORMANCE.md), against 1.5 ms for the graph call of one 64x64 tile. At concurrency 32
of n=1 the hop, not the graph, was the bottleneck. BentoML has no caller-side batching of a
dependency's calls, so this module adds the smallest one: while ``max_inflight`` calls are
on their way, jobs that arrive wait in a list, and the next call takes them all (up to
``max_tiles``). A lone request is sent at once, so it waits for nothing; BentoML's batching
still merges the calls of several HTTP workers, and still sheds what it cannot start in time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

Call = Callable[[list[dict[str, Any]]], Awaitable[list[Any]]]


class Coalescer:
    """Per-event-loop: ``await submit(jobs, sizes)`` returns the tiles of ``jobs`` (of
    ``sizes`` tiles each) in order, as ``call(jobs)`` would, sharing calls with the jobs of
    concurrent requests."""

    def __init__(self, call: Call, max_tiles: int, max_inflight: int = 2) -> None:
        self.call, self.max_tiles, self.max_inflight = call, max_tiles, max_inflight
        self.inflight = 0
        self.calls = 0  # calls made, for tests and logs
        self._queue: deque[tuple[dict[str, Any], int, asyncio.Future[Any]]] = deque()

    async def submit(self, jobs: list[dict[str, Any]], sizes: list[int]) -> list[Any]:
        loop = asyncio.get_running_loop()
        futures = []
        for job, n in zip(jobs, sizes, strict=True):
            fut: asyncio.Future[Any] = loop.create_future()
            self._queue.append((job, n, fut))
            futures.append(fut)
        self._kick()
        try:
            return list(await asyncio.gather(*futures))
        except BaseException:
            for fut in futures:  # a cancelled request: its queued jobs are dropped, not run
                fut.cancel()
            raise

    def _take(self) -> list[tuple[dict[str, Any], asyncio.Future[Any]]]:
        batch: list[tuple[dict[str, Any], asyncio.Future[Any]]] = []
        tiles = 0
        while self._queue:
            job, n, fut = self._queue[0]
            if fut.done():  # cancelled while queued
                self._queue.popleft()
                continue
            if batch and tiles + n > self.max_tiles:
                break
            self._queue.popleft()
            batch.append((job, fut))
            tiles += n
        return batch

    def _kick(self) -> None:
        while self.inflight < self.max_inflight:
            batch = self._take()
            if not batch:
                return
            self.inflight += 1
            self.calls += 1
            asyncio.get_running_loop().create_task(self._send(batch))

    async def _send(self, batch: list[tuple[dict[str, Any], asyncio.Future[Any]]]) -> None:
        try:
            parts = await self.call([job for job, _ in batch])
            for (_, fut), part in zip(batch, parts, strict=True):
                if not fut.done():
                    fut.set_result(part)
        except BaseException as e:  # every request of the call gets the call's error
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            if not isinstance(e, Exception):
                raise
        finally:
            self.inflight -= 1
            self._kick()
