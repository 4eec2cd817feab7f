"""Start training from an exported artifact: ``--init-from ARTIFACT`` (fine-tuning, a fresh D).

An artifact holds ONNX graphs, not PyTorch checkpoints: run folders (with D and the optimiser
states) are not shipped, so a shipped model could not be trained further once its run was
gone. The exporter folds constants, so a graph's weights are the module's parameters and
buffers with their runtime scales applied (equalised learning rate, a mapping network's
lr multiplier) under names like ``onnx::Conv_773``, in the order the exporter met them.

Recovery needs nothing from the variant: the same module, its every float tensor set to
distinct random values, is exported once more by the same exporter; each of that graph's
weights is then one of the random tensors times a constant, which identifies the tensor and
its scale, and the artifact's weight divided by that scale is the tensor's value. Whatever
does not fit that pattern (BatchNorm folded into a convolution, a weight built from two
parameters) is refused with the weight's name: such a graph cannot be inverted, and a
half-loaded generator would be worse than a clear error.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.spec import ExportGraph, Variant


class WarmStartError(ValueError):
    """An artifact whose weights cannot initialise this variant's networks."""


def _paired_weights(probe: Path, artifact: Path, role: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, probe weight, artifact weight) for every weight the probe graph's nodes read.

    Paired by use (node i's input j in both graphs), not by order: the exporter merges
    initializers of equal value (two layers' untrained zero biases), so the artifact may hold
    fewer weights than a probe whose every value is distinct."""
    import onnx
    from onnx import numpy_helper

    def read(path: Path) -> tuple[dict[str, np.ndarray], list[tuple[str, list[str], str]]]:
        """Weights, and nodes as (op, inputs, name) with the exporter's Identity aliases of
        merged weights resolved to the weight itself (their number depends on the values)."""
        graph = onnx.load(str(path)).graph
        init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        alias: dict[str, str] = {}
        nodes = []
        for n in graph.node:
            inputs = [alias.get(i, i) for i in n.input]
            if n.op_type == "Identity" and len(inputs) == 1 and inputs[0] in init:
                alias[n.output[0]] = inputs[0]
                continue
            nodes.append((n.op_type, inputs, n.name))
        return init, nodes

    (p_init, p_nodes), (a_init, a_nodes) = read(probe), read(artifact)
    p_ops, a_ops = [n[0] for n in p_nodes], [n[0] for n in a_nodes]
    if p_ops != a_ops:
        same = min(len(p_ops), len(a_ops))
        at = next((i for i, (x, y) in enumerate(zip(p_ops, a_ops, strict=False)) if x != y), same)
        raise WarmStartError(
            f"{artifact.name} is not the graph this configuration's {role} exports ({len(a_ops)} nodes vs "
            f"{len(p_ops)}; first difference at node {at}): pass the --model values it was trained with")
    pairs: dict[str, str] = {}
    for (_, p_in, _), (a_op, a_in, a_name) in zip(p_nodes, a_nodes, strict=True):
        for pi, ai in zip(p_in, a_in, strict=False):
            if pi not in p_init:
                continue
            if ai not in a_init or pairs.setdefault(pi, ai) != ai:
                raise WarmStartError(f"{artifact.name}: node {a_name or a_op} reads {ai!r} where this "
                                     f"configuration's {role} reads a weight: the graphs differ")
    out = []
    for pi, ai in pairs.items():
        if p_init[pi].shape != a_init[ai].shape:
            raise WarmStartError(
                f"{artifact.name}: weight {ai} is {list(a_init[ai].shape)}, this configuration's {role} has "
                f"{list(p_init[pi].shape)} there: pass the --model values it was trained with")
        out.append((ai, p_init[pi], a_init[ai]))
    return out


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every float parameter and buffer, by its state-dict name."""
    return {k: v for k, v in module.state_dict(keep_vars=True).items() if v.dtype.is_floating_point}


def recover_state(graph: ExportGraph, artifact_graph: Path) -> dict[str, torch.Tensor]:
    """The state-dict entries of ``graph.module`` that the exported graph at ``artifact_graph`` holds."""
    probe = copy.deepcopy(graph.module).eval()
    gen = torch.Generator().manual_seed(1234)
    tensors = _tensors(probe)
    with torch.no_grad():
        for t in tensors.values():  # distinct, non-zero values: every ratio is defined and telling
            t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
    from training.export import onnx_export  # here: training.export imports training.loop, which imports this

    with tempfile.TemporaryDirectory() as tmp:
        onnx_export(graph, probe, Path(tmp) / "probe.onnx")
        weights = _paired_weights(Path(tmp) / "probe.onnx", artifact_graph, graph.role)
    flat = {k: t.detach().double().flatten().numpy() for k, t in tensors.items()}
    recovered: dict[str, torch.Tensor] = {}
    for name, probe_w, shipped_w in weights:
        c = probe_w.astype(np.float64).ravel()
        for key, values in flat.items():
            if key in recovered or values.size != c.size:
                continue
            ratio = c / values
            if np.all(np.isfinite(ratio)) and ratio[0] != 0 and np.allclose(ratio, ratio[0], rtol=1e-4, atol=0):
                value = shipped_w.astype(np.float64).ravel() / ratio[0]
                recovered[key] = torch.from_numpy(value.reshape(tensors[key].shape)).to(tensors[key].dtype)
                break
        else:
            if not np.allclose(probe_w, shipped_w):  # a constant of the graph itself is the same in both
                raise WarmStartError(
                    f"{artifact_graph.name}: weight {name} {list(probe_w.shape)} is not a scaled copy of any "
                    f"parameter of {graph.role} (e.g. BatchNorm folded into a convolution): it cannot be "
                    "turned back into PyTorch weights")
    return recovered


def _artifact_card(variant: Variant, artifact: Path) -> dict[str, Any]:
    card_path = artifact / "card.json"
    if not card_path.is_file():
        raise WarmStartError(f"{artifact} is not an artifact directory (no card.json)")
    card = json.loads(card_path.read_text())
    if card.get("variant") != variant.name:
        raise WarmStartError(f"{artifact} holds a {card.get('variant')!r} model; this run trains {variant.name!r}")
    return card


def _recover(variant: Variant, nets: dict[str, torch.nn.Module], artifact: Path,
             card: dict[str, Any]) -> list[tuple[ExportGraph, dict[str, torch.Tensor]]]:
    """Every graph of ``nets`` the artifact holds, with its recovered state; nothing is loaded."""
    graphs = card.get("graphs") or {}
    recovered: list[tuple[ExportGraph, dict[str, torch.Tensor]]] = []
    for graph in variant.export_graphs(nets):  # every graph first: nothing is loaded unless all can be
        if any(graph.module is g.module or any(graph.module is s for s in g.module.modules()) for g, _ in recovered):
            continue  # a part of a module already recovered (e.g. stylegan's mapping inside its generator)
        entry = graphs.get(graph.role)
        if entry is not None:
            recovered.append((graph, recover_state(graph, artifact / entry["file"])))
    if not recovered:
        raise WarmStartError(f"{artifact} holds none of {variant.name}'s graphs "
                             f"({', '.join(g.role for g in variant.export_graphs(nets))})")
    return recovered


def provenance(artifact: str | Path) -> dict[str, Any]:
    """What made an artifact's weights: kept by a run started from it, so that the card of
    whatever that run exports lists every command back to the data (training/export.py)."""
    card = json.loads((Path(artifact) / "card.json").read_text())
    return {"artifact": str(artifact), "name": card.get("name"), "sha256": card.get("sha256"),
            "train_command": card.get("train_command", ""), "wall_time_s": float(card.get("wall_time_s") or 0.0),
            "steps": int(card.get("steps") or 0)}


def init_from_artifact(variant: Variant, nets: dict[str, torch.nn.Module], artifact: str | Path) -> list[str]:
    """Load ``artifact``'s exported weights into ``nets`` (in place); returns what was loaded, one
    line per graph. Networks the artifact does not hold (discriminators) keep their fresh init."""
    artifact = Path(artifact)
    card = _artifact_card(variant, artifact)
    report: list[str] = []
    for graph, state in _recover(variant, nets, artifact, card):
        missing = sorted(set(_tensors(graph.module)) - set(state))
        graph.module.load_state_dict(state, strict=False)
        report.append(f"{graph.role}: {len(state)} tensors from {card['graphs'][graph.role]['file']}"
                      + (f" ({len(missing)} not in the graph kept their init: {', '.join(missing[:4])})"
                         if missing else ""))
    return report


def average_with_artifact(variant: Variant, nets: dict[str, torch.nn.Module], artifact: str | Path,
                          run_share: float) -> list[str]:
    """Set every exported network of ``nets`` to ``run_share`` x its own weights + the rest x
    ``artifact``'s (in place): a weight-space average of two points of one fine-tuning path
    (a "model soup", WiSE-FT). Both ends must share one start, so that the straight line between
    them stays in one basin; then the average can beat both ends where a mixture of their
    samples only lands between them (docs/RESULTS.md, stylegan). Every float tensor of an
    averaged network must be in the artifact's graphs: one left at a fresh init would be noise."""
    if not 0.0 < run_share < 1.0:
        raise WarmStartError(f"the run's share of the average must lie strictly between 0 and 1, not {run_share}")
    artifact = Path(artifact)
    card = _artifact_card(variant, artifact)
    report: list[str] = []
    for graph, theirs in _recover(variant, nets, artifact, card):
        own = graph.module.state_dict()
        floats = [k for k, t in own.items() if t.is_floating_point()]
        missing = [k for k in floats if k not in theirs]
        if missing:
            raise WarmStartError(f"{card['graphs'][graph.role]['file']} lacks {len(missing)} of {graph.role}'s "
                                 f"weights ({', '.join(missing[:4])}): they cannot be averaged")
        mixed = {k: torch.lerp(theirs[k].to(own[k].dtype), own[k], run_share) if k in floats else own[k]
                 for k in own}
        graph.module.load_state_dict(mixed)
        report.append(f"{graph.role}: {len(floats)} tensors, {run_share:g} x the run's + "
                      f"{1 - run_share:g} x {card['graphs'][graph.role]['file']}")
    return report
