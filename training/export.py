"""Export a trained run to an ONNX artifact directory (docs/ARTIFACTS.md), check parity, store it.

Each graph a variant declares becomes ``<role>.onnx`` with its weights inside the one file and
a dynamic batch axis; ONNX Runtime's output must match PyTorch's within ``tolerance`` on a
fresh random batch, or export fails loudly. The metadata that serving needs rides along in
``metadata_props`` and in ``card.json``, which becomes the BentoML model's metadata.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from serving.curves import CURVES_FILE, CurvesError, compact
from serving.curves import record as curves_record
from training.config import TrainConfig
from training.loop import make_variant
from zoo.spec import DataInfo, ExportGraph, Variant

TOLERANCE = 1e-4
log = logging.getLogger(__name__)


class ExportError(Exception):
    """Export could not produce a faithful ONNX graph."""


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_run(run: str | Path, which: str = "best") -> tuple[Variant, dict[str, torch.nn.Module], dict[str, Any]]:
    """Rebuild a run's variant with EMA weights where it has them (``which``: best | latest)."""
    ckpts = Path(run) / "checkpoints"
    path = ckpts / f"{which}.pt"
    if which == "best" and not path.exists():
        path = ckpts / "latest.pt"
    if not path.exists():
        raise ExportError(f"no checkpoint in {ckpts} (looked for {which}.pt and latest.pt)")
    state = torch.load(path, map_location="cpu", weights_only=False)
    cfg = TrainConfig(**state["config"])
    cfg = cfg.model_copy(update={"model": state["variant_config"], "image_size": None})
    variant = make_variant(cfg, DataInfo(**state["data_info"]))
    nets = variant.build()
    for k, sd in state["nets"].items():
        nets[k].load_state_dict(sd)
    for k, sd in state["ema"].items():
        nets[k].load_state_dict(sd)
    for m in nets.values():
        m.eval()
    return variant, nets, {**state, "checkpoint": str(path)}


def weights_sha256(modules: list[torch.nn.Module]) -> str:
    h = hashlib.sha256()
    for m in modules:
        for k, v in sorted(m.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _resize_batch(example: torch.Tensor, batch: int) -> torch.Tensor:
    """A fresh random input like ``example`` with another batch size (scalars kept as they are)."""
    if example.dim() == 0:
        return example.clone()
    shape = (batch, *example.shape[1:])
    if example.dtype in (torch.int64, torch.int32):
        hi = int(example.max()) + 1 if example.numel() else 1
        return torch.randint(0, max(hi, 1), shape, dtype=example.dtype)
    return torch.randn(shape, dtype=example.dtype) if example.min() < 0 else torch.rand(shape, dtype=example.dtype)


def onnx_export(graph: ExportGraph, module: torch.nn.Module, path: Path) -> None:
    """``module`` (graph.module or a copy of it) traced on the graph's inputs: the one exporter
    call, shared by export and by ``--init-from``, which inverts what it writes (training/warmstart.py)."""
    module.eval()
    torch.onnx.export(
        module, tuple(graph.inputs.values()), str(path), input_names=list(graph.inputs),
        output_names=graph.output_names, dynamic_axes=graph.dynamic_axes, opset_version=17, dynamo=False,
    )


def export_graph(graph: ExportGraph, path: Path, metadata: dict[str, str], tolerance: float = TOLERANCE) -> float:
    """Write one graph and return the max abs difference ORT vs torch on a fresh batch."""
    import onnx
    import onnxruntime as ort

    onnx_export(graph, graph.module, path)
    model = onnx.load(str(path))
    for k, v in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"ganzoo.{k}", v
    onnx.save(model, str(path))

    batched = {k: _resize_batch(v, 3) for k, v in graph.inputs.items()}
    with torch.no_grad():
        expected = graph.module(*batched.values())
    expected_list = list(expected) if isinstance(expected, (tuple, list)) else [expected]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {k: v.numpy() for k, v in batched.items()})
    diff = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected_list, strict=True))
    if not diff <= tolerance:
        raise ExportError(f"{path.name}: ONNX Runtime differs from PyTorch by {diff:.3g} (> {tolerance:g})")
    return diff


def render_card(card: dict[str, Any]) -> str:
    lines = [f"# {card['name']}", "", card.get("description", ""), "",
             "| field | value |", "|---|---|"]
    for key in ("variant", "task", "dataset", "image_size", "channels", "latent_dim", "num_classes", "domains",
                "steps", "wall_time_s", "git_commit", "sha256", "created"):
        if key in card:
            lines.append(f"| {key} | {card[key]} |")
    lines += ["", "## Reproduce", "", "```", card.get("train_command", ""), "```"]
    init, avg = card.get("init_from"), card.get("average")
    if isinstance(init, dict):
        lines += ["", f"The first commands made `{init.get('name')}` (weights sha256 {str(init.get('sha256'))[:12]}); "
                  "the run after them started from its weights (`--init-from`) with a fresh discriminator."]
    if isinstance(avg, dict):
        lines += ["", f"Exported weights: {avg.get('run_share')} x the run's + {avg.get('artifact_share')} x "
                  f"`{avg.get('name')}`'s (sha256 {str(avg.get('sha256'))[:12]}), a weight-space average "
                  "(`python -m training export ... --average-with`)."]
        if avg.get("command"):
            lines += ["", "```", str(avg["command"]), "```"]
    lines += ["", "## Metrics", ""]
    metrics = card.get("metrics") or {}
    if metrics:
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in metrics.items()]
    else:
        lines.append("Not measured yet: `python -m training eval onnx <this folder> --data-root <its data folder>"
                     " --write` measures this artifact and writes the numbers here.")
    rule = card.get("rejection")
    if isinstance(rule, dict):
        lines += ["", "## Sampling through the critic", "",
                  f"`/generate` serves through `critic.onnx` by default (`filter=none`: the generator alone; "
                  f"docs/SAMPLING.md): threshold {rule.get('threshold', 0):.4g}, temperature "
                  f"{rule.get('temperature', 0):.4g}, {rule.get('acceptance', 0):.0%} of samples accepted; critic "
                  f"held-out AUC {rule.get('held_out_auc')}. The metrics above are of what is served. Fitted by:",
                  "", "```", str(rule.get("command", "")), "```"]
    curves = card.get("curves")
    if isinstance(curves, dict):
        every = curves.get("averaged_every") or 0
        how = f"scalars averaged per {every} steps, every eval row kept" if every else "every row the run logged"
        lines += ["", "## Training curves", "",
                  f"`{curves['file']}` (step,name,value; {how}; up to step {curves.get('last_step')}): "
                  + ", ".join(f"`{n}`" for n in curves.get("names", [])) + "."]
    return "\n".join(lines) + "\n"


def export_run(
    run: str | Path,
    name: str,
    out: str | Path | None = None,
    which: str = "best",
    store: bool = True,
    metrics: dict[str, Any] | None = None,
    tolerance: float = TOLERANCE,
    fp16: bool = True,
    progress: bool | None = None,
    average_with: str | Path | None = None,
    run_share: float = 0.5,
    card_fields: dict[str, Any] | None = None,
    command: str | None = None,
) -> Path:
    """Export ``run`` as artifact ``name`` into ``out`` (default ``<run>/export/<name>``), with
    an fp16 copy of each graph for GPUs unless ``fp16`` is false (training/fp16.py) and the
    run's ``metrics.csv`` (compacted to ``serving.curves.MAX_BYTES``) so its curves outlive the run.

    ``average_with``: an artifact the run was fine-tuned from; the exported weights are then
    ``run_share`` x the run's + the rest x the artifact's (training/warmstart.py). A run started
    with ``--init-from`` lists the commands behind its starting artifact first, so the card's
    ``train_command`` always reaches back to the data. ``card_fields``: optional card entries
    the export does not write itself (e.g. ``mix_crossover``), checked by the serving contract.
    ``command``: this export's command line, recorded with an average (it is part of the recipe)."""
    variant, nets, state = load_run(run, which)
    cfg = state["config"]
    dest = Path(out) if out is not None else Path(run) / "export" / name
    init = state.get("init") or {}
    # a resumed run lists the command of each leg, one per line, in the order they ran
    commands = [c for c in str(init.get("train_command") or "").splitlines() if c.strip()]
    commands += state.get("commands") or [state.get("command") or _train_command(cfg)]
    run_card: dict[str, Any] = {
        "dataset": cfg["data"],
        "steps": state["step"] + int(init.get("steps") or 0),  # a fine-tune's steps come after its start's
        "checkpoint": Path(state["checkpoint"]).name,
        "metrics": metrics or {},
        "train_command": "\n".join(commands),
        "wall_time_s": round(float(state.get("wall_time_s", 0.0)) + float(init.get("wall_time_s") or 0.0), 1),
    }
    if init:
        run_card["init_from"] = {k: init.get(k) for k in ("name", "sha256", "steps", "wall_time_s")}
    if average_with is not None:
        from training.warmstart import WarmStartError, average_with_artifact, provenance

        try:
            for line in average_with_artifact(variant, nets, average_with, run_share):
                log.info("--average-with %s: %s", average_with, line)
        except WarmStartError as e:
            raise ExportError(f"--average-with {average_with}: {e}") from None
        other = provenance(average_with)
        run_card["average"] = {"name": other["name"], "sha256": other["sha256"], "run_share": run_share,
                               "artifact_share": round(1.0 - run_share, 6)}
        if command:
            run_card["average"]["command"] = command
        if other["sha256"] != init.get("sha256"):  # not the run's own start: its provenance is another chain
            run_card["average"]["train_command"] = other["train_command"]
    metrics_csv = Path(run) / CURVES_FILE
    return export_variant(variant, nets, name, dest, run_card, store=store, tolerance=tolerance, fp16=fp16,
                          progress=progress, curves=metrics_csv if metrics_csv.is_file() else None,
                          card_fields=card_fields)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _shapes(inputs: dict[str, torch.Tensor]) -> str:
    return ", ".join(f"{k} {list(v.shape)}" for k, v in inputs.items())


def _progress(total: int, desc: str, enabled: bool | None) -> Any:
    """A tqdm bar on a terminal (export takes seconds per graph); a silent stand-in elsewhere."""
    import sys

    from tqdm import tqdm

    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(total=total, desc=desc, unit="step", disable=not show, leave=False)


def export_variant(
    variant: Variant,
    nets: dict[str, torch.nn.Module],
    name: str,
    dest: str | Path,
    run_card: dict[str, Any] | None = None,
    *,
    store: bool = True,
    tolerance: float = TOLERANCE,
    fp16: bool = True,
    progress: bool | None = None,
    curves: Path | None = None,
    card_fields: dict[str, Any] | None = None,
) -> Path:
    """Write ``variant``'s graphs as artifact ``name`` at ``dest`` and check them with the serving
    runtime's own contract (serving/contract.py) before anything is stored.

    ``curves``: a run's ``metrics.csv``, shipped compacted as the artifact's training curves.
    Everything is written to a temporary sibling folder that replaces ``dest`` only once every
    check has passed; on any error ``ExportError`` names the role and the mismatch and neither
    a half-made folder nor a stored model is left behind."""
    from serving.contract import LoadError, check_roles
    from serving.runtime import validate_artifact
    from zoo.registry import plugin_info

    dest = Path(dest)
    graphs = variant.export_graphs(nets)
    roles = [g.role for g in graphs]
    if len(set(roles)) != len(roles):
        raise ExportError(f"{variant.name}: export_graphs() declares a role twice: {roles}")
    try:
        check_roles(roles, variant.unserved_roles)
    except LoadError as e:
        raise ExportError(f"{variant.name}: {e}") from None
    meta_v = variant.metadata()
    card: dict[str, Any] = {
        "name": name,
        "variant": variant.name,
        "task": variant.task,
        "description": variant.description,
        "latent_dim": variant.latent_dim,
        "num_classes": variant.num_classes,
        "classes": list(getattr(variant, "classes", None) or []),
        "channels": variant.channels,
        "image_size": variant.image_size,
        "value_range": "-1,1",
        "domains": ",".join(variant.data.domains),
        "dataset": variant.data.name,
        "steps": 0,
        "metrics": {},
        "train_command": "",
        "wall_time_s": 0.0,
        **(run_card or {}),
        "git_commit": git_commit(),
        "plugin": plugin_info(type(variant)),
        "sha256": weights_sha256([g.module for g in graphs]),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **meta_v,
        "variant_metadata": meta_v,
        "unserved_roles": list(variant.unserved_roles),
        "graphs": {},
    }
    for key, value in (card_fields or {}).items():
        if key in card or key in ("curves", "rejection"):
            raise ExportError(f"card field {key!r} is written by export itself (or by `training critic`)")
        card[key] = value
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    steps = len(graphs) + 1 + int(fp16)  # each graph, the serving check, the fp16 copies
    bar = _progress(steps, f"export {name}", progress)
    try:
        if curves is not None:
            try:
                text, every = compact(curves.read_text())
            except CurvesError as e:
                raise ExportError(f"{curves}: {e}") from None
            (work / CURVES_FILE).write_text(text)
            card["curves"] = curves_record(work / CURVES_FILE, every)
        for g in graphs:
            bar.set_postfix_str(f"{g.role}: ONNX + parity")
            meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in card.items() if k != "graphs"}
            meta.update(g.metadata)
            meta["role"] = g.role
            path = work / f"{g.role}.onnx"
            g.module.eval()
            try:
                with torch.no_grad():
                    g.module(*g.inputs.values())
            except Exception as e:
                raise ExportError(f"graph {g.role!r}: the module fails on its example inputs ({_shapes(g.inputs)}): "
                                  f"{_first_line(e)}") from e
            try:
                diff = export_graph(g, path, meta, tolerance)
            except ExportError as e:
                raise ExportError(f"graph {g.role!r}: {e}") from e
            except Exception as e:
                shapes = _shapes(g.inputs)
                raise ExportError(f"graph {g.role!r}: ONNX export failed ({shapes}): {_first_line(e)}") from e
            card["graphs"][g.role] = {
                "file": path.name,
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "inputs": list(g.inputs),
                "outputs": g.output_names,
                "parity_max_abs_diff": diff,
                "bytes": path.stat().st_size,
            }
            bar.update(1)
        (work / "card.json").write_text(json.dumps(card, indent=2) + "\n")
        bar.set_postfix_str("serving contract")
        try:
            validate_artifact(work, card)
        except LoadError as e:
            raise ExportError(f"{variant.name}: the export would not be servable: {e}") from None
        bar.update(1)
        if fp16:
            from training.fp16 import add_fp16

            bar.set_postfix_str("fp16 copies")
            add_fp16(work)
            card = json.loads((work / "card.json").read_text())
            bar.update(1)
        (work / "card.md").write_text(render_card(card))
        if dest.exists():
            shutil.rmtree(dest)
        work.rename(dest)
    finally:
        bar.close()
        if work.exists():
            shutil.rmtree(work)
    if store:
        from serving.import_models import import_artifact

        import_artifact(dest)
    return dest


def _train_command(cfg: dict[str, Any]) -> str:
    parts = [sys.executable.rsplit("/", 1)[-1], "-m", "training", "train", cfg["variant"]]
    skip = {"variant", "model", "threads"}
    for k, v in cfg.items():
        if k in skip or v is None:
            continue
        parts += [f"--{k.replace('_', '-')}", str(v)]
    for k, v in (cfg.get("model") or {}).items():
        parts += ["--model", f"{k}={v}"]
    return " ".join(parts)
