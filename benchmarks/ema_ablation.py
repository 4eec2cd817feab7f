"""Which generator weights to ship: live G, its EMA, and the EMA with or without its own
BatchNorm statistics, scored by the course notes' pixel metrics on the test split.

    python benchmarks/ema_ablation.py runs/pretrained-dcgan --data-root ../shared/data/mnist

Reads ``checkpoints/latest.pt`` (or ``--checkpoint``); prints 1-NN accuracy and pixel MMD of
1000 samples against 1000 test images, for each of the three weight sets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.ema import recalibrate_batchnorm  # noqa: E402
from training.evaluation import metrics as M  # noqa: E402
from training.evaluation.suite import _subset, draw, load_reference, to_float  # noqa: E402
from training.export import load_run  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("--data-root", required=True)
    p.add_argument("--checkpoint", default="latest")
    p.add_argument("-n", type=int, default=1000)
    args = p.parse_args()
    variant, _, state = load_run(args.run, args.checkpoint)
    batch_size, dataset = state["config"]["batch_size"], state["config"]["data"]

    def nets_from(ema: bool, own_stats: bool) -> dict[str, torch.nn.Module]:
        nets = variant.build()
        for k, sd in state["nets"].items():
            nets[k].load_state_dict(sd)
        if ema:
            for k, sd in state["ema"].items():
                live = {n: v for n, v in state["nets"][k].items() if "running" in n or "num_batches" in n}
                nets[k].load_state_dict(sd if own_stats else {**sd, **live})
        for m in nets.values():
            m.eval()
        return nets

    ref = load_reference(dataset, args.data_root, variant.image_size, variant.channels)
    real = to_float(ref.test.images[_subset(len(ref.test), args.n, 1)])
    print(f"{args.run} step {state['step']}: {args.n} samples vs {args.n} test images")
    for label, ema, own in (("live G", False, False), ("EMA, live G's BN stats", True, False),
                            ("EMA, re-measured BN stats", True, True)):
        nets = nets_from(ema, own)
        if ema and own:  # checkpoints already hold re-measured stats; measure again to be sure
            g = torch.Generator().manual_seed(4242)
            recalibrate_batchnorm({k: nets[k] for k in state["ema"]},
                                  lambda nets=nets, g=g: variant.sample(nets, batch_size, g))
        with torch.no_grad():
            fake = draw(lambda n, gen, nets=nets: variant.sample(nets, n, gen), args.n, 0)
        r = M.one_nn_accuracy(fake, real)
        print(f"  {label:28s} 1-NN {r['one_nn_acc']:.3f} (fake {r['one_nn_acc_fake']:.3f}, "
              f"real {r['one_nn_acc_real']:.3f})  MMD {M.gaussian_mmd(fake, real)['mmd']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
