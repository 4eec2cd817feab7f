"""--init-from: an exported artifact's ONNX weights start a new run (fine-tuning with a fresh D).

Real runs on scikit-learn's digits, exported by the real exporter, read back through the
ratio trick of training/warmstart.py; nothing is mocked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.config import TrainConfig
from training.export import export_run, load_run
from training.loop import make_variant, train
from training.warmstart import WarmStartError, init_from_artifact
from zoo.spec import DataInfo

REPO = Path(__file__).resolve().parents[1]
STYLE = {"image_size": 8, "latent_dim": 8, "w_dim": 8, "mapping_layers": 2, "fmap_base": 32, "fmap_max": 8,
         "style_mixing": 0}
DCGAN = {"width": 8, "latent_dim": 16, "image_size": 16}


def _artifact(tmp_path_factory, variant: str, model: dict) -> Path:
    out = tmp_path_factory.mktemp(f"run-{variant}")
    train(TrainConfig(variant=variant, data="digits", out=str(out), steps=3, batch_size=8, threads=1, model=model),
          progress=False)
    return export_run(out, f"tiny-{variant}", out / "art", store=False, fp16=False)


@pytest.fixture(scope="module")
def stylegan_art(tmp_path_factory) -> Path:
    return _artifact(tmp_path_factory, "stylegan", STYLE)


@pytest.fixture(scope="module")
def dcgan_art(tmp_path_factory) -> Path:
    return _artifact(tmp_path_factory, "dcgan", DCGAN)


def _fresh(variant: str, model: dict):
    v = make_variant(TrainConfig(variant=variant, data="digits", model=model), DataInfo(channels=1, num_classes=0))
    return v, v.build()


def _onnx_out(path: Path, feeds: dict[str, torch.Tensor]) -> np.ndarray:
    return ort.InferenceSession(str(path)).run(None, {k: v.numpy() for k, v in feeds.items()})[0]


@pytest.mark.parametrize("variant, model, art", [("stylegan", STYLE, "stylegan_art"), ("dcgan", DCGAN, "dcgan_art")])
def test_the_loaded_networks_compute_what_the_artifact_serves(variant, model, art, request):
    """Every graph of the artifact (stylegan: generator, mapping, synthesis) is reproduced by the
    freshly built networks once loaded, and was not before."""
    art = request.getfixturevalue(art)
    v, nets = _fresh(variant, model)
    graphs = v.export_graphs(nets)
    torch.manual_seed(3)
    feeds = {g.role: {k: (torch.randn(5, *x.shape[1:]) if x.dim() and x.dtype.is_floating_point else x)
                      for k, x in g.inputs.items()} for g in graphs}
    for m in nets.values():
        m.eval()
    with torch.no_grad():
        before = {g.role: g.module(*feeds[g.role].values()).numpy() for g in graphs}
    report = init_from_artifact(v, nets, art)
    assert report and report[0].startswith("generator: ")
    card = json.loads((art / "card.json").read_text())
    for g in graphs:
        want = _onnx_out(art / card["graphs"][g.role]["file"], feeds[g.role])
        with torch.no_grad():
            got = g.module(*feeds[g.role].values()).numpy()
        assert np.abs(got - want).max() <= 1e-4, g.role
        assert np.abs(before[g.role] - want).max() > 1e-2, f"{g.role}: the fresh init already matched"


def test_the_weights_are_the_runs_own_weights_not_just_its_outputs(dcgan_art):
    """Not a network that happens to agree on a few inputs: the recovered state is the EMA
    generator the run exported, tensor by tensor (running BatchNorm statistics included)."""
    _, run_nets, _ = load_run(dcgan_art.parent)
    v, nets = _fresh("dcgan", DCGAN)
    init_from_artifact(v, nets, dcgan_art)
    want = run_nets["G"].state_dict()
    got = nets["G"].state_dict()
    floats = [k for k, t in want.items() if t.dtype.is_floating_point]
    assert floats and all(torch.allclose(got[k], want[k], rtol=1e-4, atol=1e-6) for k in floats)


def test_a_different_configuration_or_variant_is_refused_by_name(stylegan_art, dcgan_art):
    v, nets = _fresh("stylegan", {**STYLE, "w_dim": 16})
    with pytest.raises(WarmStartError, match=r"generator\.onnx.*pass the --model values it was trained with"):
        init_from_artifact(v, nets, stylegan_art)
    v, nets = _fresh("stylegan", STYLE)
    with pytest.raises(WarmStartError, match="holds a 'dcgan' model; this run trains 'stylegan'"):
        init_from_artifact(v, nets, dcgan_art)
    with pytest.raises(WarmStartError, match="no card.json"):
        init_from_artifact(v, nets, dcgan_art.parent)


def test_batchnorm_folded_into_a_convolution_is_refused_by_its_weight(tmp_path_factory):
    """aae's encoder (conv -> BatchNorm) is exported with the two folded into one weight, which has
    no single parameter behind it: refused, naming the graph and the weight, nothing half-loaded."""
    model = {"image_size": 16, "latent_dim": 4, "width": 8}
    art = _artifact(tmp_path_factory, "aae", model)
    v, nets = _fresh("aae", model)
    before = {k: t.clone() for k, t in nets["Dec"].state_dict().items()}
    with pytest.raises(WarmStartError, match=r"encoder\.onnx: weight \S+ \[16, 8, 4, 4\] is not a scaled copy"):
        init_from_artifact(v, nets, art)
    assert all(torch.equal(before[k], t) for k, t in nets["Dec"].state_dict().items())


def test_cli_fine_tunes_from_an_artifact_with_d_warmup(dcgan_art, tmp_path):
    """``train --init-from ART --d-warmup 2``: for two steps only D learns (G is still the
    artifact's), then G learns too; a resumed run keeps its own weights, not the artifact's."""
    out = tmp_path / "ft"
    base = [sys.executable, "-m", "training", "train", "dcgan", "--data", "digits", "--batch-size", "8",
            "--threads", "1", "--no-progress", "--out", str(out), "--init-from", str(dcgan_art),
            "--d-warmup", "2", "--ema-decay", "0", "--ckpt-every", "1"]
    for m in ("width=8", "latent_dim=16", "image_size=16"):
        base += ["--model", m]
    done = subprocess.run([*base, "--steps", "2"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--init-from" in done.stderr and "generator: " in done.stderr
    _, art_nets, _ = load_run(dcgan_art.parent)
    state = torch.load(out / "checkpoints" / "latest.pt", map_location="cpu", weights_only=False)
    g_params = [k for k, _ in art_nets["G"].named_parameters()]
    assert all(torch.allclose(state["nets"]["G"][k], art_nets["G"].state_dict()[k], atol=1e-6) for k in g_params)
    fresh_d = _fresh("dcgan", DCGAN)[1]["D"].state_dict()
    assert any(not torch.equal(state["nets"]["D"][k], fresh_d[k]) for k in fresh_d if fresh_d[k].is_floating_point())

    done = subprocess.run([*base, "--steps", "4", "--resume"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "generator: " not in done.stderr  # resumed from its checkpoint, not re-initialised
    state = torch.load(out / "checkpoints" / "latest.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 4
    assert any(not torch.allclose(state["nets"]["G"][k], art_nets["G"].state_dict()[k], atol=1e-6) for k in g_params)


def test_a_fine_tune_exports_a_weight_average_with_its_start_and_its_full_provenance(stylegan_art, tmp_path):
    """``export --average-with ART --run-share S``: every exported weight is S x the run's + (1 - S)
    x the artifact's, and the ONNX graph computes that network; the card lists the artifact's
    commands before the run's, adds both wall times, and names the artifact it averaged with."""
    out = tmp_path / "ft"
    train(TrainConfig(variant="stylegan", data="digits", out=str(out), steps=4, batch_size=8, threads=1,
                      model=STYLE, init_from=str(stylegan_art), lr_g=0.05), progress=False)
    art_card = json.loads((stylegan_art / "card.json").read_text())
    _, run_nets, state = load_run(out, "latest")
    base_v, base_nets = _fresh("stylegan", STYLE)
    init_from_artifact(base_v, base_nets, stylegan_art)
    dest = export_run(out, "soup", tmp_path / "soup", which="latest", store=False, fp16=False,
                      average_with=stylegan_art, run_share=0.25)
    card = json.loads((dest / "card.json").read_text())

    v, soup = _fresh("stylegan", STYLE)
    init_from_artifact(v, soup, dest)
    theirs, own = base_nets["G"].state_dict(), run_nets["G"].state_dict()
    moved = [k for k in own if own[k].is_floating_point() and not torch.allclose(own[k], theirs[k], atol=1e-4)]
    assert moved, "the fine-tune changed the generator"
    for k in moved:
        assert torch.allclose(soup["G"].state_dict()[k], 0.25 * own[k] + 0.75 * theirs[k], atol=1e-5), k
    v, mixed = _fresh("stylegan", STYLE)  # the average made here, by hand, computes what the graph serves
    mixed["G"].load_state_dict({k: torch.lerp(theirs[k], t, 0.25) if t.is_floating_point() else t
                                for k, t in own.items()})
    graph = next(g for g in v.export_graphs(mixed) if g.role == "generator")
    torch.manual_seed(5)
    feeds = {k: torch.randn(3, *x.shape[1:]) if x.dim() and x.dtype.is_floating_point else x
             for k, x in graph.inputs.items()}
    mixed["G"].eval()
    with torch.no_grad():
        expect = graph.module(*feeds.values()).numpy()
    assert np.abs(_onnx_out(dest / "generator.onnx", feeds) - expect).max() <= 1e-4

    lines = card["train_command"].splitlines()
    assert lines[: len(art_card["train_command"].splitlines())] == art_card["train_command"].splitlines()
    assert len(lines) == len(art_card["train_command"].splitlines()) + 1
    assert card["init_from"]["sha256"] == art_card["sha256"] == card["average"]["sha256"]
    assert card["average"] == {"name": art_card["name"], "sha256": art_card["sha256"], "run_share": 0.25,
                               "artifact_share": 0.75}
    assert card["wall_time_s"] == pytest.approx(art_card["wall_time_s"] + state["wall_time_s"], abs=0.2)
    assert card["steps"] == art_card["steps"] + 4 and card["init_from"]["steps"] == art_card["steps"] == 3
    assert "weight-space average" in (dest / "card.md").read_text()


def test_an_average_outside_the_open_interval_or_with_another_variant_is_refused(stylegan_art, dcgan_art):
    from training.export import ExportError

    with pytest.raises(ExportError, match="strictly between 0 and 1, not 1.0"):
        export_run(stylegan_art.parent, "x", stylegan_art.parent / "x", store=False, fp16=False,
                   average_with=stylegan_art, run_share=1.0)
    with pytest.raises(ExportError, match="holds a 'dcgan' model; this run trains 'stylegan'"):
        export_run(stylegan_art.parent, "x", stylegan_art.parent / "x", store=False, fp16=False,
                   average_with=dcgan_art, run_share=0.5)
    assert not (stylegan_art.parent / "x").exists()


def test_export_card_fields_reach_the_card_and_are_checked_by_the_serving_contract(stylegan_art, tmp_path):
    """``export --card KEY=VALUE`` adds an optional card field (JSON-parsed), refuses one that
    export writes itself, and a value serving would refuse fails the export, leaving nothing."""
    from training.__main__ import _card_fields
    from training.export import ExportError

    run = stylegan_art.parent
    assert _card_fields(["mix_crossover=1", "note=a b"]) == {"mix_crossover": 1, "note": "a b"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        _card_fields(["mix_crossover"])
    dest = export_run(run, "x", tmp_path / "ok", store=False, fp16=False, card_fields={"mix_crossover": 1})
    assert json.loads((dest / "card.json").read_text())["mix_crossover"] == 1
    with pytest.raises(ExportError, match="'sha256' is written by export itself"):
        export_run(run, "x", tmp_path / "a", store=False, fp16=False, card_fields={"sha256": "0"})
    with pytest.raises(ExportError, match="'mix_crossover' must be an integer in 0..4, got 9"):
        export_run(run, "x", tmp_path / "b", store=False, fp16=False, card_fields={"mix_crossover": 9})
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
