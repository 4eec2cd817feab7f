"""The recipes behind the shipped weights parse into valid runs, and their legs continue one another."""

from __future__ import annotations

import json
import shlex

import pytest

from training.__main__ import _resolve, build_parser
from training.loop import make_variant
from training.recipes import CRITIC_ARGS, EXPORT_ARGS, FINE_TUNES, PRETRAINED, RECIPES, legs, runs
from zoo.spec import DataInfo


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_leg_is_a_valid_training_command_for_one_variant(name):
    cfgs = [_resolve(build_parser().parse_args(["train", *shlex.split(a)])) for a in legs(name)]
    assert len({c.variant for c in cfgs}) == 1
    for run in runs(name):  # a fine-tune is a run of its own, counting its steps from 0
        steps = [_resolve(build_parser().parse_args(["train", *shlex.split(a)])).steps for a in run]
        assert steps == sorted(set(steps)), f"{name}: each leg must run past the one before it"
    assert all(c.init_from is None for c in cfgs), "the recipe runner adds --init-from, to its own export"
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
    fields = [a for a, flag in zip(args[1:], args, strict=False) if flag == "--card"]
    for key, value in (f.split("=", 1) for f in fields):  # and the card fields the recipe sets
        assert json.dumps(card.get(key)) == value, (name, key)


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


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_a_fine_tuned_card_names_its_start_and_its_average(name):
    """A recipe with a fine-tune ships the weight-space average it names, of a run started from
    the recipe's own first export; the card says both, and its wall time counts both runs."""
    card = json.loads((PRETRAINED / name / "card.json").read_text())
    assert ("average" in card) == (name in FINE_TUNES), name
    if name in FINE_TUNES:
        avg, init = card["average"], card["init_from"]
        assert avg["run_share"] == FINE_TUNES[name].run_share and avg["artifact_share"] == 1 - avg["run_share"]
        export = shlex.split(avg["command"])  # the export that averaged, as the recipe runs it
        assert export[:4] == ["python", "-m", "training", "export"] and "--average-with" in export
        assert float(export[export.index("--run-share") + 1]) == avg["run_share"]
        assert avg["sha256"] == init["sha256"] != card["sha256"]  # averaged with its own start, and moved from it
        assert card["wall_time_s"] > init["wall_time_s"] > 0 and card["steps"] > init["steps"] > 0
        first_run = len(runs(name)[0])
        assert "--init-from" not in card["train_command"].splitlines()[first_run - 1]
        assert "--init-from" in card["train_command"].splitlines()[first_run]


def test_a_fine_tune_recipe_starts_from_its_own_export_and_ships_the_average(monkeypatch):
    """The runner's commands for a recipe with a fine-tune, in order (not run: hours of training)."""
    import training.recipes as recipes

    calls: list[list[str]] = []
    monkeypatch.setattr(recipes, "_call", calls.append)
    recipes.run("stylegan", recipes.Path("data"), threads=2)
    verbs = [c[3] for c in calls]
    own, tuned = runs("stylegan")
    assert verbs == ["train"] * len(own) + ["export"] + ["train"] * len(tuned) + ["export"]
    base_export, final_export = calls[len(own)], calls[-1]
    base = base_export[base_export.index("--out") + 1]
    assert base_export[base_export.index("--out") - 1] == "runs/pretrained-stylegan"
    first_ft, later_ft = calls[len(own) + 1], calls[len(own) + 2:-1]
    assert first_ft[first_ft.index("--init-from") + 1] == base
    assert all("--init-from" not in c for c in [*calls[: len(own)], *later_ft])
    assert {c[c.index("--out") + 1] for c in [first_ft, *later_ft]} == {"runs/pretrained-stylegan-ft"}
    assert final_export[final_export.index("--average-with") + 1] == base
    assert float(final_export[final_export.index("--run-share") + 1]) == FINE_TUNES["stylegan"].run_share
    assert final_export[final_export.index("--out") + 1] == "serving/pretrained/stylegan"
    assert all(c[c.index("--data-root") + 1] == "data/mnist" and "--resume" in c for c in calls if c[3] == "train")
