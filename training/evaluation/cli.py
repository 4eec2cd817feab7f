"""``python -m training.evaluation.cli`` (or ``python -m training eval``): measure models.

    # an exported artifact, run with ONNX Runtime; --write puts the numbers into its card
    python -m training.evaluation.cli onnx serving/pretrained/dcgan --dataset mnist \\
        --data-root ../shared/data/mnist [--n 10000] [--baselines] [--write]
    # the scale rows: real train vs test, uniform noise, one image repeated
    python -m training.evaluation.cli baselines --dataset mnist --data-root ../shared/data/mnist
    # every serving/pretrained/* artifact (datasets under --data), cards and docs/MODEL_CARDS.md
    python -m training.evaluation.cli all --data ../shared/data
    python -m training.evaluation.cli render-cards [--out docs/MODEL_CARDS.md]
    python -m training.evaluation.cli classifier --dataset mnist --data-root ../shared/data/mnist
    python -m training.evaluation.cli metrics
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PRETRAINED = ROOT / "serving" / "pretrained"
MODEL_CARDS = ROOT / "docs" / "MODEL_CARDS.md"
BASELINES_FILE = Path(__file__).resolve().parent / "baselines.json"  # measured scale rows, per dataset
# dataset name (card["dataset"]) -> folder under the --data root
DATA_FOLDERS = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "cifar10": "cifar10",
                "olivetti": "olivetti_faces", "unpaired": "apple2orange", "apple2orange": "apple2orange"}
# the columns shown in cards, in order (every key is kept in card.json)
HEADLINE = ["fid", "kid", "precision", "recall", "coverage_classes", "coverage_min_share", "pixel_mmd2",
            "one_nn_acc", "parzen_ll", "label_acc", "recon_mse", "code_mmd2", "cycle_l1_a", "cycle_l1_b"]


# -- formatting ---------------------------------------------------------------------------------
def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool) or isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4g}" if abs(v) >= 1 else f"{v:.4f}"
    return str(v)


def table(rows: dict[str, dict[str, Any]], keys: list[str] | None = None) -> str:
    """Markdown table, one metric per line, one column per row (model or baseline)."""
    names = list(rows)
    if keys is None:
        keys = []
        for r in rows.values():
            keys += [k for k, v in r.items() if k not in keys and not isinstance(v, (list, dict))]
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(fmt(rows[n].get(k)) for n in names) + " |")
    return "\n".join(lines)


def clean(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe, rounded metrics for a card (lists and NaNs dropped)."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, float):
            if math.isnan(v) or math.isinf(v):
                continue
            out[k] = float(f"{v:.6g}")
        elif isinstance(v, (int, str)):
            out[k] = v
    return out


# -- evaluating one artifact --------------------------------------------------------------------
def evaluate_artifact(path: str | Path, dataset: str | None, data_root: str | Path, n: int = 10000,
                      seed: int = 0, threads: int = 1) -> dict[str, Any]:
    from training.evaluation.onnx_models import OnnxArtifact
    from training.evaluation.suite import (
        evaluate_generator,
        evaluate_reconstruction,
        evaluate_translation,
        evaluate_translation_at,
    )

    art = OnnxArtifact(path, threads=threads)
    ds = dataset or str(art.card.get("dataset") or "")
    if not ds:
        raise ValueError(f"{path}: card has no dataset; pass --dataset")
    row: dict[str, Any] = {}
    if art.task == "translate":
        row |= evaluate_translation(art.a2b, art.b2a, data_root, image_size=art.image_size, seed=seed)
        row |= evaluate_translation_at(art.a2b, art.b2a, data_root, seed=seed)
    else:
        if art.task == "reconstruct":
            row |= evaluate_reconstruction(art.encode, art.decode, ds, data_root, art.image_size, seed=seed)
        label_fn = None
        if art.conditional:
            from training.evaluation.suite import load_reference

            classes = load_reference(ds, data_root, art.image_size, art.card.get("channels")).test.num_classes
            if art.num_classes == classes:  # the model's labels are the dataset's classes
                label_fn = art.sample_labels
            else:
                logging.warning("%s: %d model classes vs %d dataset classes: no label fidelity",
                                art.name, art.num_classes, classes)
        row |= evaluate_generator(art.sample, ds, data_root, n=n, seed=seed, label_fn=label_fn)
    row["eval_dataset"] = ds
    row["eval_seed"] = seed
    return row


def baselines_for(task: str, dataset: str, data_root: str | Path, n: int, seed: int, image_size: int,
                  latent_dim: int = 8) -> dict[str, dict[str, Any]]:
    from training.evaluation import suite

    if task == "translate":
        return suite.evaluate_translation_baselines(data_root, image_size, seed)
    if task == "reconstruct":
        rows = suite.evaluate_reconstruction_baselines(dataset, data_root, latent_dim, image_size, seed=seed)
        return rows
    return suite.evaluate_real_baselines(dataset, data_root, n, seed, image_size)


def write_card_metrics(path: str | Path, metrics: dict[str, Any]) -> None:
    """Put ``metrics`` into the artifact's card.json and re-render its card.md."""
    from training.export import render_card

    path = Path(path)
    card = json.loads((path / "card.json").read_text())
    card["metrics"] = clean(metrics)
    (path / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (path / "card.md").write_text(render_card(card))


# -- model cards --------------------------------------------------------------------------------
def load_saved_baselines() -> dict[str, Any]:
    try:
        return json.loads(BASELINES_FILE.read_text())
    except (OSError, ValueError):
        return {}


def render_model_cards(pretrained: Path = PRETRAINED) -> str:
    cards = []
    for p in sorted(pretrained.glob("*/card.json")) if pretrained.is_dir() else []:
        try:
            cards.append(json.loads(p.read_text()))
        except ValueError:
            logging.warning("skipping %s: not valid JSON", p)
    lines = ["# Model cards", "",
             "Generated by `python -m training.evaluation.cli render-cards` from "
             "`serving/pretrained/*/card.json`. Metric definitions, protocols and the scale rows "
             "(real data, trivial generators) are in [METRICS.md](METRICS.md).", ""]
    if not cards:
        lines += ["No pretrained models are shipped yet (`make pretrained`, then `make eval`).", ""]
        return "\n".join(lines)
    lines += ["| model | variant | task | dataset | steps | " + " | ".join(HEADLINE) + " |",
              "|---|---|---|---|---|" + "---|" * len(HEADLINE)]
    for c in cards:
        m = c.get("metrics") or {}
        lines.append(f"| {c.get('name')} | {c.get('variant')} | {c.get('task')} | {c.get('dataset')} | "
                     f"{c.get('steps')} | " + " | ".join(fmt(m.get(k)) for k in HEADLINE) + " |")
    lines.append("")
    saved = load_saved_baselines()
    for c in cards:
        m = c.get("metrics") or {}
        lines += [f"## {c.get('name')}", "", str(c.get("description") or ""), "",
                  f"- variant `{c.get('variant')}`, task `{c.get('task')}`, dataset `{c.get('dataset')}`, "
                  f"{c.get('image_size')}px, {c.get('channels')} channel(s), latent {c.get('latent_dim')}",
                  f"- trained {c.get('steps')} steps in {c.get('wall_time_s')} s, commit `{c.get('git_commit')}`",
                  f"- weights sha256 `{c.get('sha256')}`", "", "```", str(c.get("train_command") or ""), "```", ""]
        if not m:
            lines += ["Not measured yet (`make eval`).", ""]
            continue
        rows = {c.get("name", "model"): m}
        ds = str(m.get("eval_dataset") or c.get("dataset"))
        per_task = saved.get(ds) or saved.get(DATA_FOLDERS.get(ds, ds)) or {}
        task = str(c.get("task") or "generate")
        for t in [task] + (["generate"] if task == "reconstruct" else []):  # an AAE also generates
            rows |= per_task.get(t) or {}
        lines += [table(rows), ""]
        from training.evaluation.suite import coverage_warning

        k = int(c.get("num_classes") or m.get("coverage_of") or 10) if "coverage_classes" in m else None
        warn = coverage_warning(m, k)
        if warn:
            lines += [f"> **Warning**: {warn}", ""]
    return "\n".join(lines)


# -- commands -----------------------------------------------------------------------------------
def _cmd_onnx(a: argparse.Namespace) -> int:
    from training.evaluation.onnx_models import OnnxArtifact
    from training.evaluation.suite import coverage_warning

    row = evaluate_artifact(a.path, a.dataset, a.data_root, a.n, a.seed, a.threads)
    art = OnnxArtifact(a.path)
    rows = {art.name: row}
    if a.baselines:
        rows |= baselines_for(art.task, row["eval_dataset"], a.data_root, a.n, a.seed, art.image_size,
                              art.latent_dim or 8)
    print(table(rows))
    k = art.num_classes or (int(row.get("coverage_of") or 10) if "coverage_classes" in row else None)
    warn = coverage_warning(row, k)
    if warn:
        print(f"\nwarning: {warn}")
    if a.json:
        Path(a.json).write_text(json.dumps({k: clean(v) for k, v in rows.items()}, indent=2) + "\n")
    if a.write:
        write_card_metrics(a.path, row)
        print(f"\nwrote metrics into {Path(a.path) / 'card.json'}")
    return 0


def _cmd_baselines(a: argparse.Namespace) -> int:
    from training.evaluation.classifier import canonical_name

    ds = canonical_name(a.dataset)
    size = a.image_size or (64 if a.task == "translate" else 32)
    rows = baselines_for(a.task, ds, a.data_root, a.n, a.seed, size, a.latent_dim)
    print(f"{ds}, task {a.task}, seed {a.seed}\n")
    print(table(rows))
    if a.json:
        Path(a.json).write_text(json.dumps({k: clean(v) for k, v in rows.items()}, indent=2) + "\n")
    if a.save:
        saved = load_saved_baselines()
        saved.setdefault(ds, {})[a.task] = {k: clean(v) for k, v in rows.items()}
        BASELINES_FILE.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
        print(f"\nsaved into {BASELINES_FILE}")
    return 0


def _cmd_all(a: argparse.Namespace) -> int:
    from training.evaluation.onnx_models import OnnxArtifact

    pretrained = Path(a.pretrained)
    dirs = sorted(p.parent for p in pretrained.glob("*/card.json")) if pretrained.is_dir() else []
    if not dirs:
        print(f"no artifacts under {pretrained}")
    rows = {}
    for d in dirs:
        art = OnnxArtifact(d)
        ds = str(art.card.get("dataset") or "")
        folder = DATA_FOLDERS.get(ds, ds)
        root = Path(a.data) / folder
        print(f"evaluating {art.name} ({art.task}, {ds}) against {root} ...", flush=True)
        row = evaluate_artifact(d, ds, root, a.n, a.seed, a.threads)
        rows[art.name] = row
        if not a.no_write:
            write_card_metrics(d, row)
    if rows:
        print(table(rows))
    if not a.no_write:
        Path(a.cards_out).write_text(render_model_cards(pretrained))
        print(f"wrote {a.cards_out}")
    return 0


def _cmd_render(a: argparse.Namespace) -> int:
    text = render_model_cards(Path(a.pretrained))
    if a.out == "-":
        print(text)
    else:
        Path(a.out).write_text(text)
        print(f"wrote {a.out}")
    return 0


def _cmd_classifier(a: argparse.Namespace) -> int:
    from training.evaluation.classifier import get_classifier

    clf = get_classifier(a.dataset, a.data_root, a.image_size, a.steps, a.seed)
    print(f"{clf.dataset} classifier ({clf.image_size}px, {clf.num_classes} classes, {clf.steps} steps, "
          f"trained in {clf.train_time_s:.0f}s): test accuracy {clf.test_accuracy:.4f}\n{clf.path}")
    return 0


def _cmd_metrics(a: argparse.Namespace) -> int:
    from training.evaluation.registry import list_metrics, metric_info

    for name in list_metrics():
        info = metric_info(name)
        print(f"{name:15s} [{info.space}; {info.better} is better] {info.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m training.evaluation.cli", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch / ONNX Runtime threads (default 1)")
    sub = p.add_subparsers(dest="cmd", required=True)

    o = sub.add_parser("onnx", help="evaluate an exported artifact directory with ONNX Runtime")
    o.add_argument("path", help="artifact directory (card.json + *.onnx)")
    o.add_argument("--dataset", help="dataset name (default: the card's)")
    o.add_argument("--data-root", required=True, help="the dataset's folder, e.g. ../shared/data/mnist")
    o.add_argument("--n", type=int, default=10000, help="samples for FID/KID/coverage/Parzen (default 10000)")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--baselines", action="store_true", help="add the real-data and trivial rows to the table")
    o.add_argument("--write", action="store_true", help="write the metrics into card.json (and card.md)")
    o.add_argument("--json", help="also write the rows to this JSON file")
    o.set_defaults(fn=_cmd_onnx)

    b = sub.add_parser("baselines", help="real-vs-real and trivial-generator rows for a dataset")
    b.add_argument("--dataset", required=True)
    b.add_argument("--data-root", required=True)
    b.add_argument("--task", choices=["generate", "reconstruct", "translate"], default="generate")
    b.add_argument("--n", type=int, default=10000)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--image-size", type=int, help="default 32 (64 for translate: the cyclegan default)")
    b.add_argument("--latent-dim", type=int, default=8, help="code size of the PCA row (reconstruct)")
    b.add_argument("--json", help="also write the rows to this JSON file")
    b.add_argument("--save", action="store_true", help=f"store the rows in {BASELINES_FILE.name} for the model cards")
    b.set_defaults(fn=_cmd_baselines)

    al = sub.add_parser("all", help="evaluate every artifact under serving/pretrained, update cards")
    al.add_argument("--data", default="../shared/data", help="folder holding mnist/, fashion_mnist/, ...")
    al.add_argument("--pretrained", default=str(PRETRAINED))
    al.add_argument("--n", type=int, default=10000)
    al.add_argument("--seed", type=int, default=0)
    al.add_argument("--no-write", action="store_true", help="print only; leave cards alone")
    al.add_argument("--cards-out", default=str(MODEL_CARDS))
    al.set_defaults(fn=_cmd_all)

    r = sub.add_parser("render-cards", help="render docs/MODEL_CARDS.md from serving/pretrained/*/card.json")
    r.add_argument("--pretrained", default=str(PRETRAINED))
    r.add_argument("--out", default=str(MODEL_CARDS), help="output file, '-' for stdout")
    r.set_defaults(fn=_cmd_render)

    c = sub.add_parser("classifier", help="train (or load) and report a dataset's feature classifier")
    c.add_argument("--dataset", required=True)
    c.add_argument("--data-root", required=True)
    c.add_argument("--image-size", type=int)
    c.add_argument("--steps", type=int, help="training steps at batch 128 (default: the dataset's budget)")
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(fn=_cmd_classifier)

    m = sub.add_parser("metrics", help="list the registered metrics")
    m.set_defaults(fn=_cmd_metrics)

    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    import torch

    torch.set_num_threads(max(1, a.threads))
    return int(a.fn(a) or 0)


if __name__ == "__main__":
    sys.exit(main())
