"""``/translate``'s working size: detail kept vs time, for one translation artifact.

Runs the model through ``serving.load`` (ONNX Runtime in-process, the service's own resize and
padding) on the first N test photos of each direction at each working size, and prints one
Markdown row per size: the median sharpness ratio (variance of the Laplacian of the grey output
over the input's, at the photo's 256 px: ``training.evaluation.metrics.sharpness_ratio``) and
the median milliseconds per photo. The table in docs/SERVING.md comes from this script.

    python benchmarks/translate_sizes.py --artifact serving/pretrained/cyclegan --data ../shared/data/apple2orange
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = (64, 128, 192, 256)


def as_tensor(arrays: list[np.ndarray]):  # noqa: ANN201
    import torch

    return torch.from_numpy(np.stack(arrays).astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifact", type=Path, default=ROOT / "serving" / "pretrained" / "cyclegan")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "apple2orange")
    p.add_argument("--n", type=int, default=20, help="test photos per direction")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    from serving import api
    from training.evaluation.metrics import sharpness_ratio

    m = api.load(args.artifact, threads=args.threads)
    a, b = str(m.card.get("domains") or "A,B").split(",")
    directions = [f"{a}2{b}", f"{b}2{a}"]
    folders = ("testA", "testB")
    photos = {d: sorted((args.data / f).glob("*.jpg"))[: args.n] for d, f in zip(directions, folders, strict=True)}
    print(f"{args.artifact.name} (trained at {m.card.get('image_size')} px), {args.n} test photos per direction, "
          f"{args.threads} ONNX Runtime thread(s)\n")
    print("| working size | sharpness, output / input (median: a2b, b2a) | ms per photo (median) |")
    print("|---|---|---|")
    for size in SIZES:
        ratios, ms = [], []
        for direction, files in photos.items():
            ins, outs = [], []
            for f in files:
                src = np.asarray(Image.open(f).convert("RGB"))
                t = time.perf_counter()
                out = m.translate(f, direction, size)
                ms.append((time.perf_counter() - t) * 1e3)
                ins.append(src)
                outs.append(np.asarray(Image.fromarray(out).resize(src.shape[1::-1], Image.Resampling.BICUBIC)))
            ratios.append(sharpness_ratio(as_tensor(outs), as_tensor(ins))["sharpness"])
        print(f"| {size} | {ratios[0]:.2f} / {ratios[1]:.2f} | {statistics.median(ms):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
