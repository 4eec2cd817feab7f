"""Import artifact directories (docs/ARTIFACTS.md) into the BentoML model store.

This is the only way a model reaches serving: the service reads the store, never a run
directory. Importing is idempotent (a model whose ``card.json["sha256"]`` is already
stored under the same name is skipped, also when two imports run at once: they take a file
lock in the store) and only ever adds versions, never deletes.

    python -m serving.import_models runs/dcgan-mnist/export/dcgan ...
    python -m serving.import_models            # every directory under serving/pretrained/
    python -m serving.import_models --onnx dcgan.onnx --name my-dcgan --channels 1 --image-size 32 --latent-dim 100

``--onnx`` brings a generator our training did not make: it writes the card, checks the graph
against the artifact contract (serving/contract.py, the check export runs) and imports it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import bentoml
from filelock import FileLock

from serving.contract import check_curves
from serving.runtime import LoadError, file_digest, graph_files, validate_artifact, verify_graph
from serving.store import is_ganzoo, list_models, model_store

log = logging.getLogger("bentoml.ganzoo")
PRETRAINED = Path(__file__).resolve().parent / "pretrained"
LOCK_NAME = ".ganzoo-import.lock"  # in the store's directory ($BENTOML_HOME/models)
LOCK_TIMEOUT_S = 600  # an import that waits longer for another one fails instead of hanging


def _metadata(value: Any) -> Any:
    """card.json -> BentoML metadata: BentoML rejects ``None``, so null entries are dropped."""
    if isinstance(value, dict):
        return {str(k): _metadata(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_metadata(v) for v in value if v is not None]
    return value


def _sha256(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.read_bytes())
    return h.hexdigest()


def read_artifact(path: str | Path) -> tuple[dict[str, Any], list[Path]]:
    """Validated (card, graph files) of an artifact directory; ``ValueError`` says what is wrong."""
    path = Path(path)
    card_path = path / "card.json"
    if not card_path.is_file():
        raise ValueError(f"{path}: no card.json (not an artifact directory)")
    try:
        card = json.loads(card_path.read_text())
    except ValueError as e:
        raise ValueError(f"{card_path}: not valid JSON: {e}") from None
    if not isinstance(card, dict):
        raise ValueError(f"{card_path}: must hold a JSON object")
    files = {*graph_files(path, card).values(), *graph_files(path, card, "fp16").values()}
    return card, sorted(files)


def _fill(role: str, file: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` checked against ``file`` (a mismatch refuses the import) and completed with
    the file's sha256 and bytes where the card does not record them."""
    verify_graph(role, file, entry)
    if not entry.get("sha256"):
        entry["sha256"] = file_digest(file)
    if not isinstance(entry.get("bytes"), int):
        entry["bytes"] = file.stat().st_size
    return entry


def recorded_card(path: Path, card: dict[str, Any]) -> dict[str, Any]:
    """The card to store: every graph (and fp16 copy) with its sha256 and bytes, so serving
    can verify each file at load even when the artifact's card predates per-graph digests."""
    fp32, fp16 = graph_files(path, card), graph_files(path, card, "fp16")
    spec = card.get("graphs") if isinstance(card.get("graphs"), dict) else {}
    graphs: dict[str, Any] = {}
    for role, file in fp32.items():
        raw = spec.get(role, {"file": file.name})
        entry = _fill(role, file, dict(raw) if isinstance(raw, dict) else {"file": str(raw)})
        if fp16[role] != file and isinstance(entry.get("fp16"), dict):
            entry["fp16"] = _fill(role, fp16[role], dict(entry["fp16"]))
        graphs[role] = entry
    return {**card, "graphs": graphs}


def _import(path: Path, home: str | Path | None) -> tuple[str, bool]:
    card, files = read_artifact(path)
    curves = check_curves(path, card)  # the training curves travel with the graphs, checked like them
    full = recorded_card(path, card)
    name = str(card.get("name") or path.name)
    sha = card.get("sha256")
    if not sha:
        sha = _sha256(files)
        log.warning("%s: card.json has no sha256; using the graphs' hash %s", path, sha)
    store = model_store(home)
    labels = {"ganzoo": "true", "task": str(card.get("task") or ""), "variant": str(card.get("variant") or name)}
    metadata = _metadata({**full, "sha256": sha})
    root = path.resolve()
    base = Path(store._path)
    base.mkdir(parents=True, exist_ok=True)
    # Check-then-create under one lock per store: two concurrent imports of the same artifact
    # would otherwise both find no copy and both store one. BentoML's store has no lock of its
    # own; a file at the store's top level is not an entry to it (only directories are).
    with FileLock(str(base / LOCK_NAME), timeout=LOCK_TIMEOUT_S):
        for stored in list_models(store, name):
            if is_ganzoo(stored) and stored.info.metadata.get("sha256") == sha:
                return str(stored.tag), False
        with bentoml.models.create(name, labels=labels, metadata=metadata, _model_store=store) as model:
            for src in [root / "card.json", root / "card.md", *files, *([curves] if curves else [])]:
                if src.is_file():
                    dst = Path(model.path) / src.relative_to(root)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
            if full != card:  # digests were added: the stored card is the artifact's plus them
                (Path(model.path) / "card.json").write_text(json.dumps(full, indent=2))
    return str(model.tag), True


def import_artifact(path: str | Path, *, home: str | Path | None = None) -> str:
    """Import one artifact directory; returns the model tag (the existing one when skipped).

    ``home`` is a BENTOML_HOME to use instead of the configured one (tests, scripts).
    """
    return _import(Path(path), home)[0]


def onnx_card(file: Path, name: str, channels: int, image_size: int, latent_dim: int, num_classes: int = 0,
              classes: list[str] | None = None) -> dict[str, Any]:
    """card.json for a foreign generator graph, from what the user declares about it."""
    import datetime as dt

    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises several unrelated types for bad files
        raise LoadError(f"{file.name}: onnxruntime cannot load it: {e}") from e
    classes = list(classes or [])
    if classes and num_classes and len(classes) != num_classes:
        raise LoadError(f"--classes names {len(classes)} classes but --num-classes is {num_classes}")
    data = file.read_bytes()
    return {
        "name": name,
        "variant": "imported",
        "task": "generate",
        "description": f"generator imported from {file.name}",
        "latent_dim": latent_dim,
        "num_classes": num_classes or len(classes),
        "classes": classes or [str(i) for i in range(num_classes)],
        "channels": channels,
        "image_size": image_size,
        "value_range": "-1,1",
        "dataset": "unknown",
        "source": file.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "graphs": {"generator": {"file": "generator.onnx", "sha256": hashlib.sha256(data).hexdigest(),
                                 "inputs": [i.name for i in sess.get_inputs()],
                                 "outputs": [o.name for o in sess.get_outputs()], "bytes": len(data)}},
    }


def import_onnx(file: str | Path, name: str, channels: int, image_size: int, latent_dim: int, num_classes: int = 0,
                classes: list[str] | None = None, out: str | Path | None = None,
                home: str | Path | None = None) -> tuple[str, bool]:
    """Write an artifact directory for a foreign generator graph (into ``out``, or a temporary
    folder), refuse it with ``LoadError`` unless serving can serve it, then import it."""
    file = Path(file)
    if not file.is_file():
        raise LoadError(f"{file}: no such file")
    card = onnx_card(file, name, channels, image_size, latent_dim, num_classes, classes)
    if "z" not in card["graphs"]["generator"]["inputs"]:
        found = card["graphs"]["generator"]["inputs"]
        raise LoadError(f"generator inputs {found}: the latent input must be named 'z' "
                        "(torch.onnx.export(..., input_names=['z']))")
    with tempfile.TemporaryDirectory(prefix="ganzoo-import-") as tmp:
        dest = Path(out) if out is not None else Path(tmp) / name
        if out is not None and dest.exists():
            raise LoadError(f"{dest} already exists")
        dest.mkdir(parents=True)
        try:
            shutil.copy2(file, dest / "generator.onnx")
            validate_artifact(dest, card, value_range=True)
            (dest / "card.json").write_text(json.dumps(card, indent=2) + "\n")
            (dest / "card.md").write_text(f"# {name}\n\nGenerator imported from `{file.name}` with "
                                          "`python -m serving.import_models --onnx`.\n")
            return _import(dest, home)
        except BaseException:
            if out is not None:
                shutil.rmtree(dest, ignore_errors=True)
            raise


def default_dirs(pretrained: Path = PRETRAINED) -> list[Path]:
    if not pretrained.is_dir():
        return []
    return sorted(p for p in pretrained.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def main(argv: list[str] | None = None, pretrained: Path = PRETRAINED) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.import_models", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="*", type=Path, help=f"artifact directories (default: every one in {pretrained})")
    foreign = parser.add_argument_group("a generator our training did not make (--onnx)")
    foreign.add_argument("--onnx", type=Path, metavar="FILE", help="an ONNX generator: z [B, D] or [B, D, 1, 1] "
                         "(optional label int64 [B]) -> image [B, C, S, S] in [-1, 1]")
    foreign.add_argument("--name", help="model name in the store and in /generate?model=")
    foreign.add_argument("--channels", type=int, help="C of the output image")
    foreign.add_argument("--image-size", type=int, help="S of the output image")
    foreign.add_argument("--latent-dim", type=int, help="D of the z input")
    foreign.add_argument("--num-classes", type=int, default=0, help="K, when the graph also takes a label input")
    foreign.add_argument("--classes", help="comma-separated class names (label order)")
    foreign.add_argument("--out", type=Path, help="keep the artifact directory written for it here")
    args = parser.parse_args(argv)
    if args.onnx is not None:
        missing = [f"--{k.replace('_', '-')}" for k in ("name", "channels", "image_size", "latent_dim")
                   if getattr(args, k) is None]
        if missing or args.dirs:
            parser.error(f"--onnx needs {', '.join(missing)}" if missing else "--onnx takes no artifact directories")
        try:
            tag, created = import_onnx(args.onnx, args.name, args.channels, args.image_size, args.latent_dim,
                                       args.num_classes, args.classes.split(",") if args.classes else None, args.out)
        except (LoadError, ValueError, OSError) as e:
            print(f"error: {args.onnx}: {e}", file=sys.stderr)
            return 2
        print(f"{'imported' if created else 'already stored, skipped'}: {tag} <- {args.onnx}")
        return 0
    dirs = args.dirs or default_dirs(pretrained)
    if not dirs:
        print(f"nothing to import: no artifact directory given and none under {pretrained}")
        return 0
    status = 0
    for d in dirs:
        try:
            tag, created = _import(d, None)
        except Exception as e:  # report every directory, then fail
            print(f"error: {d}: {e}", file=sys.stderr)
            status = 1
            continue
        print(f"{'imported' if created else 'already stored, skipped'}: {tag} <- {d}")
    return status


if __name__ == "__main__":
    sys.exit(main())
