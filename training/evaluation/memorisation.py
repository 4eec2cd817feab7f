"""Memorisation check: are samples closer to the training images than new images of the same data are?

On a small set (Olivetti: 256 training faces) a generator can score well on FID by copying.
Each sample's pixel distance to its nearest training image is compared with each held-out
(test) image's distance to its nearest training image: held-out faces are real images the
model never saw, so they set the distance that honest novelty has. A model that copies puts
its samples much closer (``ratio`` well under 1, ``copy_share`` high).

    python -m training.evaluation.memorisation ARTIFACT --dataset olivetti \\
        --data-root ../shared/data/olivetti_faces [--n 1000] [--json out.json] [--write]

``--write`` adds the row to each artifact's card (``memorisation_ratio``, ``memorisation_copy_share``, ...)
beside the suite's metrics, so the card of a model trained on a small set says whether it copies.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch


def nearest_distances(queries: torch.Tensor, reference: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """RMS pixel distance from each query image to its nearest reference image."""
    q, r = queries.flatten(1).double(), reference.flatten(1).double()
    out = [torch.cdist(c, r).min(dim=1).values for c in q.split(batch)]
    return torch.cat(out) / q.shape[1] ** 0.5


def memorisation(samples: torch.Tensor, train: torch.Tensor, heldout: torch.Tensor) -> dict[str, float]:
    """Images in [0, 1]. ``ratio``: median sample->train over median held-out->train distance (1 = as
    novel as new real images; -> 0 = copies). ``copy_share``: samples nearer a training image than
    the nearest held-out image ever is."""
    d_fake, d_held = nearest_distances(samples, train), nearest_distances(heldout, train)
    return {
        "nn_train_median_sample": float(d_fake.median()),
        "nn_train_median_heldout": float(d_held.median()),
        "ratio": float(d_fake.median() / d_held.median()),
        "copy_share": float((d_fake < d_held.min()).double().mean()),
        "n_samples": int(len(samples)),
        "n_heldout": int(len(heldout)),
    }


def evaluate_artifact(path: str | Path, dataset: str, data_root: str | Path, n: int = 1000,
                      seed: int = 0) -> dict[str, Any]:
    """:func:`memorisation` of an exported generator (ONNX Runtime) against ``dataset``'s train and test splits."""
    from training.evaluation.onnx_models import OnnxArtifact
    from training.evaluation.suite import draw, load_reference, resize, to_float, to_unit

    art = OnnxArtifact(path)
    ref = load_reference(dataset, data_root, art.image_size, art.card.get("channels"))
    samples = to_unit(resize(draw(art.sample, n, seed), art.image_size))
    return memorisation(samples, to_unit(to_float(ref.train.images)), to_unit(to_float(ref.test.images)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.evaluation.memorisation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact", nargs="+", help="exported artifact directories (card.json + generator.onnx)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", required=True)
    p.add_argument("--n", type=int, default=1000, help="samples per model (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--write", action="store_true", help="add the row to each card's metrics (memorisation_*)")
    a = p.parse_args(argv)
    rows = {str(d): evaluate_artifact(d, a.dataset, a.data_root, a.n, a.seed) for d in a.artifact}
    if a.write:
        from training.evaluation.cli import write_card_metrics

        for d, row in rows.items():
            card = json.loads((Path(d) / "card.json").read_text())
            write_card_metrics(d, {**(card.get("metrics") or {}), **{f"memorisation_{k}": v for k, v in row.items()}})
    for d, row in rows.items():
        print(d, " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
