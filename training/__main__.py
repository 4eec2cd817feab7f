"""``python -m training``: train, export and evaluate any registered variant.

    python -m training train dcgan --data mnist --data-root ../shared/data/mnist --steps 3000 --out runs/dcgan
    python -m training export runs/dcgan --name dcgan
    python -m training fp16 serving/pretrained/cgan        # fp16 copies of an exported artifact
    torchrun --nproc_per_node=2 -m training train dcgan ...
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from typing import Any

import yaml
from pydantic import ValidationError

from training.config import TrainConfig, load_config_file
from training.data import DataError


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, with the field's description as help."""
    for name, field in TrainConfig.model_fields.items():
        if name in ("variant", "model"):
            continue
        if field.annotation is bool:
            p.add_argument(f"--{name.replace('_', '-')}", dest=name, action="store_const", const="true",
                           default=None, help=field.description)
            continue
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, metavar=name.upper(),
                       help=f"{field.description} (default: {field.default})")
    p.add_argument("--model", action="append", default=[], metavar="KEY=VALUE",
                   help="a variant hyperparameter (its Config), e.g. --model width=32; repeatable")


def _resolve(args: argparse.Namespace) -> TrainConfig:
    data: dict[str, Any] = load_config_file(args.config) if args.config else {}
    data["variant"] = args.variant
    for name in TrainConfig.model_fields:
        value = getattr(args, name, None)
        if value is not None and name not in ("variant", "model"):
            data[name] = yaml.safe_load(value) if name not in ("out", "data_root", "data", "init_from") else value
    model = dict(data.get("model") or {})
    for item in args.model:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--model expects KEY=VALUE, got {item!r}")
        model[key] = yaml.safe_load(value)
    data["model"] = model
    return TrainConfig(**data)


def export_summary(dest: Any, stored: bool, run: Any = None) -> str:
    """What an export did, in words: each graph's size and parity, the fp16 copies, where it went,
    and the command that measures the exported model itself."""
    import json
    from pathlib import Path

    card = json.loads((Path(dest) / "card.json").read_text())
    config = Path(run) / "config.yaml" if run is not None else None
    data_root = (yaml.safe_load(config.read_text()) or {}).get("data_root") if config and config.is_file() else None
    lines = [f"exported {card['name']} ({card.get('variant')}, step {card.get('steps')}, "
             f"checkpoint {card.get('checkpoint')}) -> {dest}"]
    for role, g in card.get("graphs", {}).items():
        line = (f"  {role}: {g['file']} {g.get('bytes', 0) / 1e6:.1f} MB, "
                f"ONNX Runtime vs torch max |diff| {g.get('parity_max_abs_diff', float('nan')):.2g}")
        half = g.get("fp16")
        if isinstance(half, dict):
            line += (f"; fp16 {half['file']} {half.get('bytes', 0) / 1e6:.1f} MB, "
                     f"max |diff| vs fp32 {half.get('max_abs_diff_vs_fp32', float('nan')):.2g}")
        lines.append(line)
    curves = card.get("curves")
    if isinstance(curves, dict):
        every = curves.get("averaged_every") or 0
        lines.append(f"  curves: {curves['file']} {curves.get('bytes', 0) / 1e3:.1f} kB, up to step "
                     f"{curves.get('last_step')} ({f'averaged per {every} steps' if every else 'every logged row'})")
    else:
        lines.append("  curves: none (the run folder has no metrics.csv)")
    if stored:
        from serving.store import list_models, model_store, select_latest

        store = model_store()
        tag = select_latest(list_models(store, card["name"])).get(card["name"])
        where = f"{tag.tag} in the BentoML model store {store._path}" if tag else "the BentoML model store"
        lines.append(f"  stored as {where} (serve it: make serve)")
    else:
        lines.append(f"  not stored (--no-store): python -m serving.import_models {dest}")
    if not card.get("metrics"):
        root = data_root or "<its data folder>"
        lines.append(f"  measure it: python -m training eval onnx {dest} --data-root {root} --write")
    return "\n".join(lines)


def variant_help(name: str) -> str:
    """The ``--model`` keys of variant ``name`` from its pydantic Config (fields, defaults, descriptions)."""
    from zoo import registry

    try:
        cls = registry.get_variant(name)
    except KeyError as e:
        return f"{e.args[0]}"
    lines = [f"hyperparameters of {name} (--model KEY=VALUE), from {cls.__module__}.{cls.Config.__name__}:"]
    for key, field in cls.Config.model_fields.items():
        desc = f"{field.description} " if field.description else ""
        lines.append(f"  {key:<18} {desc}(default {field.default!r})")
    return "\n".join(lines)


def _card_fields(items: list[str]) -> dict[str, Any]:
    """``--card KEY=VALUE`` flags: VALUE as JSON where it parses (3, true, [1]), else the string."""
    import json

    fields: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--card takes KEY=VALUE, got {item!r}")
        try:
            fields[key] = json.loads(value)
        except ValueError:
            fields[key] = value
    return fields


def build_parser(variant: str | None = None) -> argparse.ArgumentParser:
    """The CLI; with ``variant`` the train command's help lists that variant's hyperparameters."""
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a variant (--resume continues the run folder's latest checkpoint)",
                       epilog=variant_help(variant) if variant else "python -m training train NAME --help lists "
                       "the hyperparameters of variant NAME", formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("variant", help="registered variant (python -m zoo list)")
    t.add_argument("--config", help="YAML or JSON file with TrainConfig fields; flags override it")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_config_flags(t)
    e = sub.add_parser("export", help="export a run to ONNX, check parity, store it in BentoML")
    e.add_argument("run", help="run folder written by train")
    e.add_argument("--name", required=True, help="model name in the store and in /generate?model=")
    e.add_argument("--out", help="artifact directory (default: RUN/export/NAME)")
    e.add_argument("--checkpoint", choices=["best", "latest"], default="best", help="which checkpoint")
    e.add_argument("--no-store", action="store_true", help="do not save into the BentoML model store")
    e.add_argument("--no-fp16", action="store_true", help="no half-precision copies of the graphs")
    e.add_argument("--average-with", metavar="ARTIFACT",
                   help="the artifact the run was fine-tuned from: export a weight-space average of the two")
    e.add_argument("--card", action="append", default=[], metavar="KEY=VALUE",
                   help="an optional card.json field (VALUE as JSON, else a string), e.g. mix_crossover=3 "
                        "(docs/ARTIFACTS.md); repeatable")
    e.add_argument("--run-share", type=float, default=0.5,
                   help="with --average-with: the run's share of the averaged weights (0 < share < 1)")
    h = sub.add_parser("fp16", help="add checked fp16 copies of the graphs to exported artifact directories")
    h.add_argument("dirs", nargs="+", help="artifact directories (card.json + *.onnx)")
    c = sub.add_parser("critic", help="fit a critic to an exported unconditional generator: /generate then serves "
                       "through it (discriminator rejection sampling, docs/SAMPLING.md)")
    c.add_argument("artifact", help="artifact directory (card.json + generator.onnx); written in place")
    c.add_argument("--data-root", help="folder of the card's dataset (e.g. ../shared/data/mnist)")
    c.add_argument("--steps", type=int, default=1500, help="critic training steps of 64 real + 64 generated images")
    c.add_argument("--quantile", type=float, default=0.5,
                   help="threshold: this quantile of the critic's logits on samples (always kept above it)")
    c.add_argument("--temperature", type=float, default=1.0,
                   help="temperature in standard deviations of those logits (smaller: stricter, slower)")
    c.add_argument("--from-run", metavar="RUN",
                   help="use the discriminator of this training run (the one the artifact was exported from) "
                        "instead of fitting a critic; --steps is then unused")
    c.add_argument("--net", default="D", help="with --from-run: which of the run's nets is the critic")
    c.add_argument("--checkpoint", choices=["best", "latest"], default="latest",
                   help="with --from-run: the checkpoint the artifact was exported from")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    v = sub.add_parser("eval", help="evaluation suite (see python -m training eval --help)", add_help=False)
    v.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "eval":  # argparse's REMAINDER drops a leading --help: hand eval its own argv
        from training.evaluation.cli import main as eval_main

        return eval_main(argv[1:])
    named = argv[1] if len(argv) > 1 and argv[0] == "train" and not argv[1].startswith("-") else None
    args = build_parser(named if {"-h", "--help"} & set(argv) else None).parse_args(argv)

    try:
        if args.cmd == "train":
            from training.loop import train

            cfg = _resolve(args)
            command = "python -m training " + shlex.join(argv)
            summary = train(cfg, progress=not args.no_progress, command=command)
            print(f"trained {cfg.variant} to step {summary['steps']} in {summary['wall_time_s']:.1f}s -> {cfg.out}")
        elif args.cmd == "export":
            from training.export import export_run

            dest = export_run(args.run, args.name, args.out, args.checkpoint, store=not args.no_store,
                              fp16=not args.no_fp16, average_with=args.average_with, run_share=args.run_share,
                              card_fields=_card_fields(args.card), command="python -m training " + shlex.join(argv))
            print(export_summary(dest, stored=not args.no_store, run=args.run))
        elif args.cmd == "fp16":
            from pathlib import Path

            from training.fp16 import add_fp16

            for d in args.dirs:
                diffs = add_fp16(Path(d))
                print(f"{d}: fp16 max abs diff vs fp32: " + ", ".join(f"{r} {v:.2g}" for r, v in diffs.items()))
        elif args.cmd == "critic":
            import torch

            from training.critic import add_critic, critic_from_run

            if args.threads:
                torch.set_num_threads(args.threads)
            command = "python -m training " + shlex.join(argv)
            if args.from_run:
                entry = critic_from_run(args.artifact, args.from_run, args.data_root, args.net, args.checkpoint,
                                        args.quantile, args.temperature, args.seed, command=command)
            else:
                entry = add_critic(args.artifact, args.data_root, args.steps, args.quantile, args.temperature,
                                   args.seed, command=command)
            print(f"{args.artifact}: critic {entry['source']} in {entry['critic_seconds']} s (held-out AUC "
                  f"{entry['held_out_auc']}); threshold {entry['threshold']:.4g}, temperature "
                  f"{entry['temperature']:.4g}: {entry['acceptance']:.0%} of samples accepted -> critic.onnx")
        else:
            from training.evaluation.cli import main as eval_main

            return eval_main(args.rest)
    except (DataError, KeyError, ValueError, ValidationError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except Exception as exc:
        from training.export import ExportError

        if isinstance(exc, ExportError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
