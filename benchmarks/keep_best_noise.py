"""How noisy and how costly is the keep-best score (``quick_score``) on one fixed generator?

    OMP_NUM_THREADS=1 python benchmarks/keep_best_noise.py RUN --data-root ../shared/data/mnist \\
        --draws 1,16 --repeats 10

``RUN`` is a run folder (``checkpoints/best.pt``, or ``--checkpoint latest``), rebuilt as export
does (EMA weights with their own BatchNorm statistics), or an exported artifact folder
(``serving/pretrained/dcgan``: its ``generator.onnx`` on ONNX Runtime, z ~ N(0, I)). For each
number of draws it scores the generator ``--repeats`` times with independent seeds against the
reference the training loop uses (the first ``draws x n`` train images) and prints the mean, the
std over the repeats and the seconds per score on ``--threads`` threads, one markdown table row
per setting.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.data import load_dataset  # noqa: E402
from training.evaluation.suite import SampleFn, quick_score  # noqa: E402
from training.export import load_run  # noqa: E402


def sampler(path: Path, checkpoint: str, threads: int) -> tuple[SampleFn, str, int, str]:
    """(sample_fn, dataset, image size, description) of a run folder or an artifact folder."""
    card_file = path / "card.json"
    if card_file.is_file():
        import onnxruntime as ort

        card = json.loads(card_file.read_text())
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path / "generator.onnx"), opts, providers=["CPUExecutionProvider"])
        z_shape = sess.get_inputs()[0].shape[1:]

        def sample_onnx(k: int, g: torch.Generator) -> torch.Tensor:
            z = torch.randn(k, *z_shape, generator=g).numpy()
            return torch.from_numpy(sess.run(None, {"z": z})[0])

        return sample_onnx, card["dataset"], int(card["image_size"]), f"generator.onnx, step {card['steps']}"
    variant, nets, state = load_run(path, checkpoint)

    def sample_run(k: int, g: torch.Generator) -> torch.Tensor:
        return variant.sample(nets, k, g).float()

    what = f"{Path(state['checkpoint']).name}, step {state['step']}"
    return sample_run, state["config"]["data"], variant.image_size, what


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("--data-root", required=True)
    p.add_argument("--checkpoint", default="best")
    p.add_argument("--draws", default="1,16", help="comma list of draws per score")
    p.add_argument("-n", type=int, default=500, help="samples (and reference images) per draw")
    p.add_argument("--repeats", type=int, default=10, help="independent seeds per setting")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pair", help="a second run/artifact: also the std of the paired difference of the two "
                   "scores on the same seeds (the common random numbers keep-best relies on)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    sample, dataset, size, what = sampler(Path(args.run), args.checkpoint, args.threads)
    data = load_dataset(dataset, args.data_root, "train", image_size=size)
    print(f"{args.run} ({what}), {args.threads} thread(s)")
    print("| draws x n | mean | std over seeds | min-max | s per score |")
    print("|---|---|---|---|---|")
    for draws in (int(d) for d in args.draws.split(",")):
        reference = data.get_batch(torch.arange(draws * args.n))["image"]
        scores, secs = [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            with torch.no_grad():
                s = quick_score(sample, reference, n=args.n, seed=10_000 * (r + 1), draws=draws)
            secs.append(time.perf_counter() - t0)
            scores.append(s)
        print(f"| {draws} x {args.n} | {statistics.mean(scores):.4f} | {statistics.stdev(scores):.4f} | "
              f"{min(scores):.3f}-{max(scores):.3f} | {statistics.median(secs):.1f} |", flush=True)
        if args.pair:
            other = sampler(Path(args.pair), args.checkpoint, args.threads)[0]
            with torch.no_grad():
                theirs = [quick_score(other, reference, n=args.n, seed=10_000 * (r + 1), draws=draws)
                          for r in range(args.repeats)]
            diffs = [a - b for a, b in zip(scores, theirs, strict=True)]
            print(f"|   minus {args.pair}: {statistics.mean(theirs):.4f} ± {statistics.stdev(theirs):.4f}; "
                  f"paired difference {statistics.mean(diffs):.4f} ± {statistics.stdev(diffs):.4f} "
                  f"(unpaired would be ± {(statistics.stdev(scores) ** 2 + statistics.stdev(theirs) ** 2) ** 0.5:.4f})"
                  " | | | |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
