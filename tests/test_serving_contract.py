"""serving/contract.py through the runtime on fake sessions: latent layouts, and what a probe catches."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from serving import images, sampling
from serving.runtime import LoadError
from tests.test_serving_runtime import Arg, FakeSession, model


def _gen4(z_shape: list, out_shape: list | None = None, fn=None) -> FakeSession:  # noqa: ANN001
    def image(f):  # noqa: ANN001, ANN202
        return np.tanh(f["z"].reshape(-1, 1, 2, 2)).astype(np.float32)

    return FakeSession([Arg("z", z_shape)], [Arg("image", out_shape or ["batch", 1, 2, 2])], fn or image)


def test_a_four_d_latent_gets_the_same_draws_reshaped():
    sess = _gen4(["batch", 4, 1, 1])
    m = model({"generator": sess})
    assert m.random_specs == [("z", (4, 1, 1))]
    tiles = m.generate(3, seed=9)
    assert sess.calls[-1]["z"].shape == (3, 4, 1, 1)
    flat = np.stack([sampling.draw_tile(9, i, [("z", (4,))])["z"] for i in range(3)])
    np.testing.assert_array_equal(sess.calls[-1]["z"].reshape(3, 4), flat)
    np.testing.assert_array_equal(tiles, images.to_uint8(np.tanh(flat.reshape(-1, 1, 2, 2)).astype(np.float32)))
    frames = m.interpolate(1, 2, 3)
    assert frames.shape == (3, 2, 2, 1)


def test_reconstruct_feeds_the_code_in_the_generators_latent_layout():
    gen = _gen4(["batch", 4, 1, 1])
    enc = FakeSession([Arg("image", ["b", 1, 2, 2])], [Arg("code", ["b", 4])], lambda f: f["image"].reshape(-1, 4))
    m = model({"generator": gen, "encoder": enc}, task="reconstruct")
    out = m.reconstruct(Image.fromarray(np.full((2, 2), 200, np.uint8)))
    assert out.shape == (2, 2, 1) and gen.calls[-1]["z"].shape == (1, 4, 1, 1)


@pytest.mark.parametrize(
    "graphs, card, words",
    [
        ({"generator": _gen4(["batch", 2, 2, 1])}, {}, r"a latent must be \[B, D\] or \[B, D, 1, 1\]"),
        ({"generator": _gen4(["batch", 4], ["batch", 4])}, {}, "rank 4, got rank 2"),
        ({"generator": _gen4(["batch", 4], ["batch", 3, 2, 2])}, {}, "3 channels but card.json says channels 1"),
        ({"generator": _gen4(["batch", 4])}, {"latent_dim": 5}, "4 values per item but card.json says latent_dim 5"),
        ({"generator": _gen4(["batch", 4]),
          "encoder": FakeSession([Arg("image", ["b", 1, 2, 2])], [Arg("code", ["b", 3])], lambda f: f)},
         {}, "encoder output 'code' has 3 values per image but the generator's z takes 4"),
        ({"encoder": FakeSession([Arg("image", ["b", 1, "h", "w"])], [Arg("code", ["b", 4])], lambda f: f)},
         {"task": "reconstruct", "image_size": 0}, "encoder input size is symbolic and card.json has no image_size"),
        ({"a2b": FakeSession([Arg("x", ["b", 3, "h", "w"])], [Arg("y", ["b", 1, "h", "w"])], lambda f: f)},
         {"task": "translate", "channels": 3}, "a2b output 'y' has 1 channels"),
    ],
)
def test_graphs_off_the_contract_do_not_load(graphs, card, words):
    with pytest.raises(LoadError, match=words):
        model(graphs, **card)


def test_the_probe_catches_what_symbolic_shapes_hide():
    # the graph declares nothing static about its output, and returns a flat [B, 4]
    sess = _gen4(["batch", 4], ["batch", "c", "h", "w"], fn=lambda f: np.tanh(f["z"]))
    m = model({"generator": sess})  # loads: nothing declared contradicts the contract
    assert m.needs_probe, "load_model probes such a model before serving it"
    assert not model({"generator": _gen4(["batch", 4])}).needs_probe
    with pytest.raises(LoadError, match=r"generator output has shape \[2, 4\]: an image must be \[B, C, H, W\]"):
        m.probe()
    loud = _gen4(["batch", 4], ["batch", "c", "h", "w"], fn=lambda f: 5 * f["z"].reshape(-1, 1, 2, 2))
    wide = model({"generator": loud})
    wide.probe()  # the range is only required of graphs our training did not make
    with pytest.raises(LoadError, match=r"images must be in \[-1, 1\]"):
        wide.probe(value_range=True)

