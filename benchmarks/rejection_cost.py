"""What serving through the critic costs: images/s and latency of ``GanModel.generate`` with
``filter=critic`` and ``filter=none``, in-process on ONNX Runtime (the inference service's
work per tile; the HTTP hop is the same for both), plus candidates per tile.

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
    print("| n | filter | images/s | p50 ms | p90 ms | candidates per tile |")
    print("|---|---|---|---|---|---|")
    for n in (1, 64):
        for filt in ("none", "critic"):
            times = []
            for r in range(args.repeats):
                t0 = time.perf_counter()
                model.generate(n, seed=1000 + r, filter=filt)
                times.append(time.perf_counter() - t0)
            t = np.array(times)
            cands = "1.00"
            if filt == "critic":
                res = [rejection.rejection_sample([1000 + r] * n, range(n), model.random_specs, model.rule,
                                                  lambda d: model._sample(d, None, None), model.score,
                                                  first=sampling.draw_tiles(1000 + r, range(n), model.random_specs))
                       for r in range(args.repeats)]
                cands = f"{sum(x.candidates for x in res) / (n * args.repeats):.2f}"
            print(f"| {n} | {filt} | {n / t.mean():.0f} | {np.median(t) * 1e3:.1f} | "
                  f"{np.quantile(t, 0.9) * 1e3:.1f} | {cands} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
