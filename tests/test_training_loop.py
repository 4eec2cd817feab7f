"""The shared loop: a few real steps, exact resume, config resolution, multi-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from training.__main__ import main as cli
from training.config import TrainConfig
from training.loop import train

ROOT = Path(__file__).resolve().parents[1]
TINY = {"width": 8, "latent_dim": 16, "image_size": 16}


def tiny_cfg(out: Path, steps: int, **kw) -> TrainConfig:
    base = dict(variant="dcgan", data="digits", out=str(out), steps=steps, batch_size=16, model=TINY,
                ckpt_every=100, sample_every=2, log_every=1, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def final_state(out: Path) -> dict:
    return torch.load(out / "checkpoints" / "latest.pt", map_location="cpu", weights_only=False)


def test_a_few_steps_write_checkpoint_samples_and_scalars(tmp_path):
    summary = train(tiny_cfg(tmp_path, 4), progress=False)
    assert summary["steps"] == 4
    state = final_state(tmp_path)
    assert state["step"] == 4 and state["batches_used"] == 4
    assert sorted(p.name for p in (tmp_path / "samples").glob("*.png")) == ["step_000002.png", "step_000004.png"]
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,name,value" and any(",loss_d," in r for r in rows) and any(",loss_g," in r for r in rows)
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["steps"] == 4
    assert list((tmp_path / "tb").iterdir()), "tensorboard event file written"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert "samples" in events.Tags()["images"]  # the preview grid, as samples/ holds it
    assert [e.step for e in events.Images("samples")] == [2, 4]
    # the EMA copy moved away from the initial generator, towards the trained one
    g, ema = state["nets"]["G"], state["ema"]["G"]
    assert any(not torch.equal(g[k], ema[k]) for k in g if g[k].is_floating_point())


def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path):
    kw = dict(d_steps=2, pool_size=8)
    train(tiny_cfg(tmp_path / "full", 6, **kw), progress=False)
    train(tiny_cfg(tmp_path / "cut", 3, **kw), progress=False)
    assert final_state(tmp_path / "cut")["step"] == 3
    with pytest.raises(ValueError, match="--resume"):
        train(tiny_cfg(tmp_path / "cut", 6, **kw), progress=False)
    train(tiny_cfg(tmp_path / "cut", 6, resume=True, **kw), progress=False)
    a, b = final_state(tmp_path / "full"), final_state(tmp_path / "cut")
    assert a["step"] == b["step"] == 6 and a["batches_used"] == b["batches_used"] == 12
    for group in ("nets", "ema"):
        for name in a[group]:
            for k, v in a[group][name].items():
                assert torch.equal(v, b[group][name][k]), f"{group}.{name}.{k} differs after resume"
    # and a different seed really gives different weights, so the equality above means something
    train(tiny_cfg(tmp_path / "other", 6, seed=1, **kw), progress=False)
    c = final_state(tmp_path / "other")
    assert not torch.equal(a["nets"]["G"]["net.0.weight"], c["nets"]["G"]["net.0.weight"])


def test_resume_follows_the_configured_lr_schedule_not_the_restored_rate(tmp_path):
    # the first leg ends mid-decay, so its checkpoint stores a reduced rate; the resumed leg must
    # scale the configured rate, not the stored one (which would decay twice)
    train(tiny_cfg(tmp_path, 3, lr_decay_start=1), progress=False)
    assert final_state(tmp_path)["opts"]["G"]["param_groups"][0]["lr"] == pytest.approx(2e-4 * 0.5)
    train(tiny_cfg(tmp_path, 6, lr_decay_start=1, resume=True), progress=False)
    # the last step (index 5) of a 6-step run decaying from step 1 runs at 1 - 4/5 of the rate
    assert [g["lr"] for g in final_state(tmp_path)["opts"]["G"]["param_groups"]] == pytest.approx([2e-4 * 0.2])


def test_a_resumed_run_records_the_command_of_each_leg_for_its_card(tmp_path):
    from training.export import export_run

    out, tiny = tmp_path / "run", [f"{k}={v}" for k, v in TINY.items()]
    base = ["train", "dcgan", "--data", "digits", "--batch-size", "8", "--out", str(out), "--threads", "1",
            "--no-progress", "--sample-every", "100", *[a for m in tiny for a in ("--model", m)]]
    assert cli([*base, "--steps", "2"]) == 0
    assert cli([*base, "--steps", "3", "--resume"]) == 0
    assert cli([*base, "--steps", "3", "--resume"]) == 0  # nothing left to run: no new leg
    card = json.loads((export_run(out, "legs", tmp_path / "art", store=False, fp16=False) / "card.json").read_text())
    legs = card["train_command"].splitlines()
    assert len(legs) == 2 and all(c.startswith("python -m training train dcgan") for c in legs)
    assert "--steps 2" in legs[0] and "--steps 3 --resume" in legs[1]


def test_config_file_is_loaded_and_flags_override_it(tmp_path, capsys):
    conf = tmp_path / "c.yaml"
    conf.write_text(yaml.safe_dump({"data": "digits", "steps": 50, "batch_size": 8, "model": TINY, "threads": 1,
                                    "sample_every": 100}))
    out = tmp_path / "run"
    assert cli(["train", "dcgan", "--config", str(conf), "--steps", "2", "--out", str(out), "--no-progress",
                "--model", "width=4"]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["steps"] == 2 and saved["batch_size"] == 8 and saved["model"]["width"] == 4
    assert saved["model"]["latent_dim"] == 16


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--data", "mnist", "--data-root", "/nonexistent/mnist"], "does not exist"),
        (["--data", "imagenet", "--data-root", "."], "unknown dataset"),
        (["--steps", "0"], "steps"),
        (["--model", "nonsense=1"], "nonsense"),
    ],
)
def test_bad_training_input_is_one_clear_error_line(tmp_path, capsys, argv, needle):
    base = ["train", "dcgan", "--data", "digits", "--out", str(tmp_path / "r"), "--no-progress"]
    assert cli(base + argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and "Traceback" not in err


def test_unknown_variant_lists_the_known_ones(tmp_path, capsys):
    assert cli(["train", "nope", "--data", "digits", "--out", str(tmp_path)]) == 2
    assert "unknown variant 'nope'" in capsys.readouterr().err


def test_torchrun_two_processes_train_in_lockstep(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "training", "train", "dcgan", "--data", "digits", "--steps", "3", "--batch-size", "8",
           "--out", str(out), "--no-progress", "--sample-every", "3", "--model", "width=8",
           "--model", "latent_dim=16", "--model", "image_size=16", "--threads", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = final_state(out)
    assert state["step"] == 3
    assert len(state["rng"]) == 2, "both ranks' RNG states are checkpointed"
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"]), "ranks draw different noise"
    assert len(list((out / "samples").glob("*.png"))) == 1, "rank 0 alone writes"


def test_keep_best_writes_best_checkpoint_and_export_takes_it(tmp_path):
    from training.export import load_run

    summary = train(tiny_cfg(tmp_path, 4, eval_every=2, eval_samples=64), progress=False)
    best = summary["best"]
    assert best["step"] in (2, 4) and 0.5 <= best["score"] <= 1.0
    assert (tmp_path / "checkpoints" / "best.pt").exists()
    assert any(",eval_score," in r for r in (tmp_path / "metrics.csv").read_text().splitlines())
    _, _, state = load_run(tmp_path)
    assert state["checkpoint"].endswith("best.pt") and state["step"] == best["step"]


def test_a_resumed_best_from_the_old_scale_is_re_scored_and_resume_stays_exact(tmp_path):
    from training.evaluation.suite import quick_score_id

    kw = dict(eval_every=2, eval_samples=64, ckpt_every=2)
    whole = train(tiny_cfg(tmp_path / "whole", 6, **kw), progress=False)
    train(tiny_cfg(tmp_path / "cut", 4, **kw), progress=False)
    latest = tmp_path / "cut" / "checkpoints" / "latest.pt"
    state = torch.load(latest, map_location="cpu", weights_only=False)
    assert state["best"]["scale"] == quick_score_id(64, 16) == "one_nn:64x16"
    old_step = state["best"]["step"]
    torch.save({**state, "best": {"score": 0.01, "step": old_step}}, latest)  # as checkpoints before pooled draws
    resumed = train(tiny_cfg(tmp_path / "cut", 6, resume=True, **kw), progress=False)
    # 0.01 (unreachable on the new scale) would have kept best.pt at old_step forever
    assert resumed["best"] == whole["best"] and resumed["best"]["scale"] == "one_nn:64x16"
    a, b = final_state(tmp_path / "whole"), final_state(tmp_path / "cut")
    for name, sd in a["nets"].items():  # re-scoring drew no random numbers of the run's
        for k, v in sd.items():
            assert torch.equal(v, b["nets"][name][k]), f"{name}.{k} differs after a re-scored resume"


SHARED = ROOT.parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "mnist").exists(), reason="../shared/data is not beside this checkout")
def test_a_collapsed_generator_triggers_the_coverage_warning(tmp_path, caplog):
    # one step of a fresh generator draws near-identical blobs: the classifier sees one or two classes
    cfg = tiny_cfg(tmp_path, 1, data="mnist", data_root=str(SHARED / "mnist"), eval_every=1, eval_samples=64,
                   model={"width": 8, "latent_dim": 16, "image_size": 32})
    with caplog.at_level("WARNING", logger="ganzoo.train"):
        train(cfg, progress=False)
    assert any("possible mode collapse" in r.getMessage() and "classes" in r.getMessage() for r in caplog.records)


def test_top_k_ramps_from_the_whole_batch_to_its_floor_and_is_logged(tmp_path):
    train(tiny_cfg(tmp_path, 6, top_k=0.5, top_k_ramp=4), progress=False)
    rows = (r.split(",") for r in (tmp_path / "metrics.csv").read_text().splitlines()[1:])
    kept = {int(s): float(v) for s, n, v in rows if n == "top_k"}
    # logged after the step: step 1 ran with the whole batch, step 3 halfway, steps 5 and 6 at the floor
    assert kept == {1: 1.0, 2: 0.875, 3: 0.75, 4: 0.625, 5: 0.5, 6: 0.5}
