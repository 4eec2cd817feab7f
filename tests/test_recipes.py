"""The recipes behind the shipped weights parse into valid runs, and their legs continue one another."""

from __future__ import annotations

import json
import shlex

import pytest

from training.__main__ import _resolve, build_parser
from training.loop import make_variant
from training.recipes import CRITIC_ARGS, EXPORT_ARGS, PRETRAINED, RECIPES, legs
from zoo.spec import DataInfo


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_leg_is_a_valid_training_command_for_one_variant(name):
    cfgs = [_resolve(build_parser().parse_args(["train", *shlex.split(a)])) for a in legs(name)]
    assert len({c.variant for c in cfgs}) == 1
    steps = [c.steps for c in cfgs]
    assert steps == sorted(set(steps)), f"{name}: each leg must run past the one before it"
    for c in cfgs:  # the variant accepts the hyperparameters (validated by its own Config)
        make_variant(c, DataInfo(channels=3, num_classes=10, domains=("A", "B")))


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_the_shipped_card_was_trained_by_its_recipe(name):
    card = json.loads((PRETRAINED / name / "card.json").read_text())
    recorded = [shlex.split(c) for c in card["train_command"].splitlines()]
    assert len(recorded) == len(legs(name)), "one recorded command per leg"
    for cmd, leg in zip(recorded, legs(name), strict=True):
        ours = shlex.split(leg)
        # the recorded command holds the recipe's arguments (plus data root, out dir and threads)
        assert cmd[:4] == ["python", "-m", "training", "train"] and cmd[4] == ours[0]
        pairs = {(a, b) for a, b in zip(cmd[5:], cmd[6:], strict=False)}
        assert all((a, b) in pairs for a, b in zip(ours[1::2], ours[2::2], strict=False)), (name, leg)
    # and the export took the checkpoint the recipe names (keep-best unless it says otherwise)
    args = EXPORT_ARGS.get(name, ())
    which = args[args.index("--checkpoint") + 1] if "--checkpoint" in args else "best"
    if card["task"] == "translate":
        which = "latest"  # no keep-best score for translation: export falls back to the latest checkpoint
    assert card["checkpoint"] == f"{which}.pt", name


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_a_shipped_critic_was_fitted_by_its_recipe(name):
    """A card with a critic records the `python -m training critic` command its recipe runs."""
    card = json.loads((PRETRAINED / name / "card.json").read_text())
    assert ("rejection" in card) == (name in CRITIC_ARGS), name
    if name in CRITIC_ARGS:
        cmd = shlex.split(card["rejection"]["command"])
        assert cmd[:4] == ["python", "-m", "training", "critic"]
        ours = shlex.split(CRITIC_ARGS[name])
        pairs = {(a, b) for a, b in zip(cmd, cmd[1:], strict=False)}
        assert all((a, b) in pairs for a, b in zip(ours[::2], ours[1::2], strict=True)), (name, cmd)
