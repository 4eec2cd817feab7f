"""Two composed BentoML services with nothing in them: the floor of one internal hop.

``Outer.direct`` answers at once; ``Outer.hop`` calls ``Inner.echo``, a batchable API, as
serving/service.py calls ``Inference.tiles`` (a list of dicts holding numpy arrays, pickled
on the internal hop). ``benchmarks/bench_hop.py`` serves this and times both.
"""

from __future__ import annotations

from typing import Any

import bentoml
import numpy as np


@bentoml.service(name="hop-inner", runner_connection={"max_requests": 2**31 - 1, "max_age": 1e9},
                 logging={"access": {"enabled": False}})
class Inner:
    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=64, max_latency_ms=10000)
    def echo(self, jobs: list[dict[str, Any]]) -> list[Any]:
        return [np.zeros((len(j["labels"]), 64, 64, 3), np.uint8) for j in jobs]


@bentoml.service(name="hop-outer", logging={"access": {"enabled": False}})
class Outer:
    inner = bentoml.depends(Inner)

    @bentoml.api(route="/direct")
    def direct(self) -> dict[str, int]:
        return {"tiles": 1}

    @bentoml.api(route="/hop")
    async def hop(self) -> dict[str, int]:
        job = {"model": "m", "feeds": {"z": np.zeros((1, 100, 1, 1), np.float32)}, "labels": np.zeros(1, np.int64)}
        out = await self.inner.to_async.echo([job])
        return {"tiles": int(out[0].shape[0])}
