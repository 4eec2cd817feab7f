"""What serving through the critic costs: images/s and latency of ``GanModel.generate`` with
``filter=critic`` and ``filter=none``, in-process on ONNX Runtime (the inference service's
work per tile; the HTTP hop is the same for both), plus candidates per tile and graph calls per
request. ``critic, look-ahead`` is the rule with ``rejection.rounds``' growing rounds (the same
tiles: 0 | 1 | 2-3 | 4-7 | 8-15 candidates per open tile per round).

    python benchmarks/rejection_cost.py serving/pretrained/dcgan --threads 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving import rejection, sampling  # noqa: E402
from serving.runtime import load_model  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("artifact")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    import json

    path = Path(args.artifact)
    model = load_model(path.name, "bench", path, json.loads((path / "card.json").read_text()),
                       ["CPUExecutionProvider"], args.threads)
    assert model.rule is not None, f"{path} has no critic"
    print(f"# {path.name}: {dt.date.today()}, {platform.machine()}, {os.cpu_count()} cores, "
          f"{args.threads} ORT threads")
    print("| n | filter | images/s | p50 ms | p90 ms | candidates per tile | rounds |")
    print("|---|---|---|---|---|---|---|")

    def filtered(seed: int, n: int, lookahead: bool) -> rejection.Filtered:
        calls.append(0)
        return rejection.rejection_sample([seed] * n, range(n), model.random_specs, model.rule, sample, model.score,
                                          first=sampling.draw_tiles(seed, range(n), model.random_specs),
                                          lookahead=lookahead)

    def sample(d: dict[str, np.ndarray]) -> np.ndarray:
        calls[-1] += 1
        return model._sample(d, None, None)

    calls: list[int] = []
    for n in (1, 64):
        for filt in ("none", "critic", "critic, look-ahead"):
            times, cands = [], []
            calls.clear()
            for r in range(args.repeats):
                t0 = time.perf_counter()
                if filt == "none":
                    model.generate(n, seed=1000 + r, filter="none")
                elif filt == "critic":  # the served path, as /generate runs it
                    model.generate(n, seed=1000 + r, filter="critic")
                else:
                    cands.append(filtered(1000 + r, n, lookahead=True).candidates)
                times.append(time.perf_counter() - t0)
            if filt == "critic":
                calls.clear()
                cands = [filtered(1000 + r, n, lookahead=False).candidates for r in range(args.repeats)]
            t = np.array(times)
            per_tile = f"{sum(cands) / (n * args.repeats):.2f}" if cands else "1.00"
            rounds = f"{np.mean(calls):.1f}" if calls else "1"
            print(f"| {n} | {filt} | {n / t.mean():.0f} | {np.median(t) * 1e3:.1f} | "
                  f"{np.quantile(t, 0.9) * 1e3:.1f} | {per_tile} | {rounds} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
