"""serving.rejection: the acceptance rule, per-tile determinism and the cost cap."""

from __future__ import annotations

import numpy as np
import pytest

from serving import rejection, sampling

SPECS = [("z", (4,))]


def images_of(draws: dict[str, np.ndarray]) -> np.ndarray:
    """A stand-in generator: the image is the latent itself, so tiles can be traced to draws."""
    return draws["z"].reshape(-1, 1, 2, 2).copy()


def score_by_first_value(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1)[:, 0]


def test_accept_prob_keeps_everything_above_the_threshold_and_decays_below():
    rule = rejection.Rule(threshold=1.0, temperature=0.5)
    p = rule.accept_prob(np.array([3.0, 1.0, 0.5, -1.0]))
    np.testing.assert_allclose(p, [1.0, 1.0, np.exp(-1.0), np.exp(-4.0)])


@pytest.mark.parametrize("entry, message", [
    ({"threshold": 0.0, "temperature": 0.0}, "temperature must be > 0"),
    ({"threshold": float("nan"), "temperature": 1.0}, "threshold must be finite"),
    ({"threshold": 0.0}, "needs numeric threshold and temperature"),
    ({"threshold": 0.0, "temperature": 1.0, "max_candidates": 0}, "max_candidates must be in 1..64"),
    ([1, 2], "must be an object"),
])
def test_a_bad_card_entry_is_refused_by_name(entry, message):
    with pytest.raises(rejection.RuleError, match=message):
        rejection.Rule.from_card(entry)


def test_a_tile_depends_on_seed_and_index_only_however_it_is_batched():
    rule = rejection.Rule(threshold=0.5, temperature=0.3)
    whole = rejection.rejection_sample([9] * 12, range(12), SPECS, rule, images_of, score_by_first_value)
    part = rejection.rejection_sample([9] * 4, range(8, 12), SPECS, rule, images_of, score_by_first_value)
    mixed = rejection.rejection_sample([9, 3, 9], [10, 0, 11], SPECS, rule, images_of, score_by_first_value)
    np.testing.assert_array_equal(part.images, whole.images[8:])
    np.testing.assert_array_equal(mixed.images[[0, 2]], whole.images[[10, 11]])
    assert whole.candidates > 12  # some tiles were rejected at least once


def test_candidate_zero_is_the_unfiltered_tile_and_is_kept_when_it_scores_high():
    rule = rejection.Rule(threshold=-100.0, temperature=1.0)
    res = rejection.rejection_sample([4] * 6, range(6), SPECS, rule, images_of, score_by_first_value)
    unfiltered = images_of(sampling.draw_tiles(4, range(6), SPECS))
    np.testing.assert_array_equal(res.images, unfiltered)
    assert res.candidates == 6 and res.fallbacks == 0


def test_an_accepted_candidate_follows_the_documented_draws():
    """Candidate j >= 1 of tile i draws from default_rng([seed, i, j]); its uniform from
    default_rng([seed, i, j, 1]): a client can reproduce which candidate was served."""
    rule = rejection.Rule(threshold=0.0, temperature=0.2)
    res = rejection.rejection_sample([5], [2], SPECS, rule, images_of, score_by_first_value, lookahead=False)
    for j in range(rule.max_candidates):
        z = rejection.candidate(5, 2, j, SPECS)["z"]
        if rejection.uniform(5, 2, j) < rule.accept_prob(np.array([z[0]]))[0]:
            np.testing.assert_array_equal(res.images[0].ravel(), z)
            assert res.candidates == j + 1
            break
    else:
        pytest.fail("no candidate accepted within the cap: pick another seed")
    np.testing.assert_array_equal(rejection.candidate(5, 2, 3, SPECS)["z"],
                                  np.random.default_rng([5, 2, 3]).standard_normal(4).astype(np.float32))


def test_the_cost_of_a_tile_is_capped_and_the_best_candidate_is_served():
    rule = rejection.Rule(threshold=1e9, temperature=1e-3, max_candidates=5)  # nothing is ever accepted
    res = rejection.rejection_sample([1] * 3, range(3), SPECS, rule, images_of, score_by_first_value)
    assert res.candidates == 15 and res.fallbacks == 3
    for t in range(3):
        firsts = [rejection.candidate(1, t, j, SPECS)["z"][0] for j in range(5)]
        assert res.images[t].ravel()[0] == max(firsts)


def test_rounds_of_growing_size_cover_each_candidate_once():
    want = [[0], [1], [2, 3], [4, 5, 6, 7], list(range(8, 16))]
    assert [list(r) for r in rejection.rounds(16, lookahead=True)] == want
    assert [list(r) for r in rejection.rounds(5, lookahead=True)] == [[0], [1], [2, 3], [4]]
    assert [len(r) for r in rejection.rounds(4, lookahead=False)] == [1, 1, 1, 1]


@pytest.mark.parametrize("threshold, temperature", [(0.5, 0.3), (1.5, 0.1), (1e9, 1e-3)])
def test_looking_ahead_changes_the_cost_never_the_tile(threshold, temperature):
    rule = rejection.Rule(threshold=threshold, temperature=temperature)
    calls: list[int] = []

    def sample(draws):
        calls.append(len(draws["z"]))
        return images_of(draws)

    ahead = rejection.rejection_sample([7] * 40, range(40), SPECS, rule, sample, score_by_first_value, lookahead=True)
    rounds_ahead, calls[:] = len(calls), []
    one = rejection.rejection_sample([7] * 40, range(40), SPECS, rule, sample, score_by_first_value, lookahead=False)
    np.testing.assert_array_equal(ahead.images, one.images)
    assert ahead.fallbacks == one.fallbacks
    assert ahead.candidates >= one.candidates and rounds_ahead <= min(len(calls), 5)
