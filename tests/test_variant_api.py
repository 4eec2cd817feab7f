"""Small gaps in the plugin API: hyperparameters in --help, typos named, resume from the checkpoint's config."""

from __future__ import annotations

import hashlib

import pytest
import torch
import yaml

from training.__main__ import main as cli
from training.config import TrainConfig
from training.data import load_dataset
from training.loop import data_info, train
from zoo.cgan import CGAN

TINY = {"width": 8, "latent_dim": 16, "image_size": 16}


def test_train_help_lists_the_variants_hyperparameters(capsys):
    with pytest.raises(SystemExit) as e:
        cli(["train", "stylegan", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "hyperparameters of stylegan (--model KEY=VALUE)" in text
    line = next(line for line in text.splitlines() if line.strip().startswith("mapping_lr_mul"))
    assert "learning-rate multiplier of the mapping network (default 0.01)" in line


def test_a_hyperparameter_typo_names_the_valid_keys(tmp_path, capsys):
    code = cli(["train", "dcgan", "--data", "digits", "--out", str(tmp_path / "r"), "--model", "widht=8",
                "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "dcgan has no hyperparameter 'widht'" in err and "valid --model keys: image_size" in err
    assert "width" in err.split("valid --model keys:")[1]


def test_data_info_carries_the_class_names():
    info = data_info(load_dataset("digits", None, "train", image_size=8))
    assert info.classes == tuple(str(i) for i in range(10))
    assert CGAN(CGAN.Config(**TINY), info).classes == [str(i) for i in range(10)]


def _files(out) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*") if p.is_file()}


def test_resume_takes_the_variant_config_from_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    base = dict(variant="dcgan", data="digits", out=str(out), batch_size=8, threads=1, sample_every=100)
    train(TrainConfig(**base, steps=2, model=TINY), progress=False)
    before = _files(out)
    # a conflicting --model is refused, and nothing in the run folder changes
    with pytest.raises(ValueError, match=r"--resume takes the variant config from the checkpoint.*width=16 "
                                         r"\(checkpoint: 8\)"):
        train(TrainConfig(**base, steps=3, resume=True, model={"width": 16}), progress=False)
    with pytest.raises(ValueError, match="holds a 'dcgan' run; it cannot be resumed as 'cgan'"):
        train(TrainConfig(**{**base, "variant": "cgan"}, steps=3, resume=True), progress=False)
    assert _files(out) == before
    # without --model the checkpoint's config is used (not the variant's defaults: width 64)
    train(TrainConfig(**base, steps=3, resume=True), progress=False)
    state = torch.load(out / "checkpoints" / "latest.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 3 and state["variant_config"]["width"] == 8
    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["width"] == 8
