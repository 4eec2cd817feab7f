"""Where an MNIST generator's ambiguous digits are: the suite classifier's top-probability
histogram of its samples beside real test digits, and what z truncation does to them.

    python benchmarks/confidence_tail.py serving/pretrained/dcgan --data-root ../shared/data/mnist \
        --temperatures 1,0.9,0.8,0.7

The histogram is over 5000 samples (seed 0); each temperature t (z ~ N(0, t^2)) gets the full
suite (10,000 samples, as ``python -m training eval onnx``). Needs a graph with one input ``z``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.data import to_float  # noqa: E402
from training.evaluation.classifier import classifier_predict  # noqa: E402
from training.evaluation.onnx_models import OnnxArtifact  # noqa: E402
from training.evaluation.suite import draw, evaluate_generator, load_reference  # noqa: E402

BINS = [0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.01]
KEYS = ("fid", "precision", "recall", "coverage_confident", "one_nn_acc", "one_nn_acc_std")


def shares(top: np.ndarray) -> str:
    return " | ".join(f"{100 * c / len(top):.1f}%" for c in np.histogram(top, bins=BINS)[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact", type=Path)
    p.add_argument("--data-root", required=True)
    p.add_argument("--temperatures", default="1,0.9,0.8,0.7")
    a = p.parse_args(argv)
    art = OnnxArtifact(a.artifact, threads=1)
    fake = draw(art.sample, 5000, seed=0)
    real = to_float(load_reference("mnist", a.data_root, 32).test.images[:5000])
    print("| top probability | " + " | ".join(f"{lo}-{hi}" for lo, hi in zip(BINS, BINS[1:], strict=False)) + " |")
    for name, x in (("samples", fake), ("real test digits", real)):
        top = classifier_predict("mnist", a.data_root, x).max(1)
        print(f"| {name} | {shares(top)} |  (> 0.9: {(top > 0.9).mean():.3f})")
    sess = art.session("generator")
    latent = sess.get_inputs()[0].shape[1]
    for t in (float(v) for v in a.temperatures.split(",")):
        def sample(n: int, g: torch.Generator, t: float = t) -> torch.Tensor:
            z = (torch.randn(n, latent, generator=g) * t).numpy()
            return torch.from_numpy(sess.run(None, {"z": z})[0])

        row = evaluate_generator(sample, "mnist", a.data_root, n=10000, seed=0)
        print(f"t={t:g}: " + ", ".join(f"{k} {row[k]:.4g}" for k in KEYS), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
