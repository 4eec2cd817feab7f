"""serving.sampling: per-tile seeding from the contract, latent paths."""

from __future__ import annotations

import numpy as np
import pytest

from serving import sampling

SPECS = [("z", (8,)), ("z2", (8,)), ("noise", (6,))]


def test_a_tile_is_a_function_of_seed_and_index_only():
    a = sampling.draw_tile(7, 3, SPECS)
    b = sampling.draw_tile(7, 3, SPECS)
    for name in ("z", "z2", "noise"):
        assert a[name].dtype == np.float32
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["z"], sampling.draw_tile(7, 4, SPECS)["z"])
    assert not np.array_equal(a["z"], sampling.draw_tile(8, 3, SPECS)["z"])


def test_batches_do_not_change_tiles():
    batch = sampling.draw_tiles(11, range(5), SPECS)
    assert batch["z"].shape == (5, 8) and batch["noise"].shape == (5, 6)
    for k in range(5):
        np.testing.assert_array_equal(batch["noise"][k], sampling.draw_tile(11, k, SPECS)["noise"])
    np.testing.assert_array_equal(sampling.draw_tiles(11, [3, 4], SPECS)["z2"], batch["z2"][3:])


def test_draws_follow_the_contract_order_z_z2_noise():
    rng = np.random.default_rng([5, 2])
    z, z2, noise = rng.standard_normal(8), rng.standard_normal(8), rng.standard_normal(6)
    got = sampling.draw_tile(5, 2, SPECS)
    np.testing.assert_array_equal(got["z"], z.astype(np.float32))
    np.testing.assert_array_equal(got["z2"], z2.astype(np.float32))
    np.testing.assert_array_equal(got["noise"], noise.astype(np.float32))
    # without z2 the noise comes straight after z
    only = sampling.draw_tile(5, 2, [("z", (8,)), ("noise", (6,))])
    np.testing.assert_array_equal(only["noise"], z2[:6].astype(np.float32))


def test_draw_order_and_random_inputs_by_name():
    assert sampling.draw_order(["noise", "psi", "z2", "label", "z", "crossover"]) == ["z", "z2", "noise"]
    assert sampling.draw_order(["noise_b", "z3", "noise_a", "z"]) == ["z", "z3", "noise_b", "noise_a"]
    assert [n for n in ("z", "z2", "noise", "noise1", "psi", "zeta", "label") if sampling.is_random_input(n)] == [
        "z",
        "z2",
        "noise",
        "noise1",
    ]


def test_slerp_ends_on_the_endpoints_and_keeps_the_norm():
    rng = np.random.default_rng(0)
    a = rng.standard_normal(64).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    np.testing.assert_allclose(sampling.slerp(a, b, 0.0), a, atol=1e-6)
    np.testing.assert_allclose(sampling.slerp(a, b, 1.0), b, atol=1e-6)
    mid = sampling.slerp(a, b, 0.5)
    assert mid.dtype == np.float32
    assert np.linalg.norm(mid) == pytest.approx(np.linalg.norm(a), rel=1e-5)
    assert np.linalg.norm(sampling.lerp(a, b, 0.5)) < 0.9 * np.linalg.norm(a)  # lerp cuts through the ball


def test_slerp_falls_back_to_lerp_for_parallel_or_zero_vectors():
    a = np.ones(4, dtype=np.float32)
    np.testing.assert_allclose(sampling.slerp(a, 3 * a, 0.5), 2 * a)
    np.testing.assert_allclose(sampling.slerp(np.zeros(4, np.float32), a, 0.25), 0.25 * a)


def test_lerp_and_row_labels():
    np.testing.assert_allclose(sampling.lerp(np.zeros((2, 3)), np.ones((2, 3)), 0.25), np.full((2, 3), 0.25))
    assert sampling.row_labels(7, 3).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert sampling.row_labels(3, 0).tolist() == [0, 0, 0]
