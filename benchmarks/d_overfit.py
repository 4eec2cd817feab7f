"""How far a run's discriminator has overfitted: its outputs on training reals vs held-out reals vs fakes.

ADA's heuristic r_t = E[sign(D(x))] on the training reals, beside the same on held-out images of
the same data (which D never saw) and on generator samples. A D that memorised its training set
says "real" to the training images and hesitates on held-out ones: the gap is the overfitting.

    python benchmarks/d_overfit.py runs/olivetti-plain runs/olivetti-diffaug --data-root ../shared/data/olivetti_faces
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@torch.no_grad()
def d_stats(run: Path, data_root: str, batch: int = 64, seed: int = 0) -> dict[str, float]:
    """Mean logit and E[sign] of D (training-mode BatchNorm, as in a step) on train, held-out and fake batches."""
    from training.data import load_dataset, to_float
    from training.export import load_run

    variant, nets, state = load_run(run, "latest")
    cfg = state["config"]
    size = variant.image_size
    train = to_float(load_dataset(cfg["data"], data_root, "train", image_size=size).images)
    held = to_float(load_dataset(cfg["data"], data_root, "test", image_size=size).images)
    D = nets["D"].train()
    g = torch.Generator().manual_seed(seed)
    fakes = variant.sample(nets, len(held), g)
    out: dict[str, float] = {}
    for name, x in (("train", train[torch.randperm(len(train), generator=g)[: len(held)]]), ("heldout", held),
                    ("fake", fakes)):
        logits = torch.cat([D(c) for c in x.split(batch)])
        out[f"sign_{name}"] = float(logits.sign().mean())
        out[f"logit_{name}"] = float(logits.mean())
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--data-root", required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    for run in a.runs:
        stats = d_stats(Path(run), a.data_root)
        print(run, " ".join(f"{k}={v:.3f}" for k, v in stats.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
