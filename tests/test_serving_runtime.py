"""serving.runtime.GanModel on fake ONNX Runtime sessions: how inputs are filled and checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image

from serving import images, sampling
from serving.errors import ServingError
from serving.runtime import GanModel, Graph, LoadError

Feeds = dict[str, np.ndarray]


class Arg:  # what onnxruntime's NodeArg offers
    def __init__(self, name: str, shape: list[Any], type: str = "tensor(float)") -> None:
        self.name, self.shape, self.type = name, shape, type


class FakeSession:
    def __init__(self, inputs: list[Arg], outputs: list[Arg], fn: Callable[[Feeds], np.ndarray]) -> None:
        self.inputs, self.outputs, self.fn = inputs, outputs, fn
        self.calls: list[Feeds] = []

    def get_inputs(self) -> list[Arg]:
        return self.inputs

    def get_outputs(self) -> list[Arg]:
        return self.outputs

    def get_providers(self) -> list[str]:
        return ["CPUExecutionProvider"]

    def run(self, names: list[str], feeds: Feeds) -> list[np.ndarray]:
        assert set(feeds) == {a.name for a in self.inputs}, "every declared input is fed, nothing else"
        self.calls.append(feeds)
        return [self.fn(feeds)]


def _image_of(values: np.ndarray) -> np.ndarray:
    """[B, 4] -> [B, 1, 2, 2] in [-1, 1]."""
    return np.tanh(values.reshape(-1, 1, 2, 2)).astype(np.float32)


def gen_session(extra: list[Arg] | None = None, fn: Callable[[Feeds], np.ndarray] | None = None) -> FakeSession:
    inputs = [Arg("z", ["batch", 4]), *(extra or [])]
    return FakeSession(inputs, [Arg("image", ["batch", 1, 2, 2])], fn or (lambda f: _image_of(f["z"])))


def model(graphs: dict[str, FakeSession], **card: Any) -> GanModel:
    base = {"name": "m", "variant": "v", "task": "generate", "image_size": 2, "channels": 1, "latent_dim": 4}
    return GanModel("m", "v1", {**base, **card}, {r: Graph(r, s) for r, s in graphs.items()})  # type: ignore[arg-type]


def test_generate_does_not_depend_on_chunking():
    sess = gen_session()
    m = model({"generator": sess})
    whole = m.generate(10, seed=3)
    m.chunk = 3
    chunked = m.generate(10, seed=3)
    assert whole.shape == (10, 2, 2, 1) and whole.dtype == np.uint8
    np.testing.assert_array_equal(whole, chunked)
    assert [len(c["z"]) for c in sess.calls] == [10, 3, 3, 3, 1]
    z3 = sampling.draw_tile(3, 7, [("z", (4,))])["z"]
    np.testing.assert_array_equal(whole[7], images.to_uint8(_image_of(z3[None]))[0])


def test_labels_default_to_rows_and_are_checked():
    sess = gen_session([Arg("label", ["batch"], "tensor(int64)")])
    m = model({"generator": sess}, num_classes=3, classes=["a", "b", "c"])
    m.generate(5, seed=0)
    assert sess.calls[-1]["label"].dtype == np.int64 and sess.calls[-1]["label"].tolist() == [0, 1, 2, 0, 1]
    m.generate(4, seed=0, label=2)
    assert sess.calls[-1]["label"].tolist() == [2, 2, 2, 2]
    with pytest.raises(ServingError) as e:
        m.generate(1, seed=0, label=3)
    assert e.value.status == 422 and "0..2" in e.value.message
    with pytest.raises(ServingError) as e:
        model({"generator": gen_session()}).generate(1, seed=0, label=0)
    assert e.value.status == 400 and "not conditional" in e.value.message


@pytest.mark.parametrize("shape, fed", [([], ()), ([1], (1,))])
def test_psi_is_fed_as_a_scalar_of_the_declared_rank(shape, fed):
    sess = gen_session([Arg("psi", shape)])
    m = model({"generator": sess})
    m.generate(2, seed=0)
    assert sess.calls[-1]["psi"].shape == fed and float(sess.calls[-1]["psi"].ravel()[0]) == 1.0
    m.generate(2, seed=0, psi=0.25)
    assert float(sess.calls[-1]["psi"].ravel()[0]) == 0.25
    for bad in (-0.1, 2.5, float("nan")):
        with pytest.raises(ServingError) as e:
            m.generate(1, seed=0, psi=bad)
        assert e.value.status == 422
    with pytest.raises(ServingError) as e:
        model({"generator": gen_session()}).generate(1, seed=0, psi=1.0)
    assert e.value.status == 400 and "psi" in e.value.message


@pytest.mark.parametrize(
    "graphs, card, words",
    [
        ({"generator": gen_session([Arg("temperature", [])])}, {}, "not in the artifact contract"),
        ({"generator": gen_session([Arg("label", ["batch"], "tensor(int64)")])}, {}, "num_classes"),
        ({"generator": gen_session([Arg("noise", ["batch", "k"])])}, {}, "non-static"),
        ({"a2b": FakeSession([Arg("image", []), Arg("mask", [])], [Arg("out", [])], lambda f: f["image"])}, {}, "one"),
        ({"synthesis": FakeSession([Arg("w", ["b", 2, 2])], [Arg("image", [])], lambda f: f["w"])}, {}, "no usable"),
    ],
)
def test_graphs_off_contract_do_not_load(graphs, card, words):
    with pytest.raises(LoadError, match=words):
        model(graphs, **card)


def _style_model() -> tuple[GanModel, FakeSession]:
    """Generator whose image shows which latents built it: [z[0], z2[0], crossover, noise[0]]."""

    def fn(f: Feeds) -> np.ndarray:
        b = len(f["z"])
        vals = np.stack([f["z"][:, 0], f["z2"][:, 0], np.full(b, float(f["crossover"])), f["noise"][:, 0]], 1)
        return (vals.reshape(-1, 1, 2, 2) / 10).astype(np.float32)

    extra = [Arg("psi", []), Arg("noise", ["batch", 3]), Arg("z2", ["batch", 4]), Arg("crossover", [], "tensor(int64)")]
    sess = gen_session(extra, fn)
    mapping = FakeSession(
        [Arg("z", ["batch", 4]), Arg("psi", [])], [Arg("w", ["batch", 6, 5])], lambda f: np.zeros((len(f["z"]), 6, 5))
    )
    return model({"generator": sess, "mapping": mapping}), sess


def test_mix_grid_takes_coarse_from_seeds_and_fine_from_styles():
    m, sess = _style_model()
    assert m.style_layers == 6 and "mix" in m.capabilities
    tiles, cols = m.mix([1, 2], [3, 4, 5])
    assert cols == 4 and tiles.shape == (12, 2, 2, 1)
    assert not tiles[0].any()  # blank corner
    heads, cells = sess.calls[-2], sess.calls[-1]
    specs = m.random_specs
    assert [s[0] for s in specs] == ["z", "z2", "noise"]
    draw = {s: sampling.draw_tile(s, 0, specs) for s in (1, 2, 3, 4, 5)}
    assert float(heads["crossover"]) == -1 and float(cells["crossover"]) == 3  # default: L // 2
    np.testing.assert_array_equal(heads["z"][:, 0], [draw[s]["z"][0] for s in (3, 4, 5, 1, 2)])
    pairs = [(r, c) for r in (1, 2) for c in (3, 4, 5)]
    np.testing.assert_array_equal(cells["z"][:, 0], [draw[r]["z"][0] for r, _ in pairs])
    np.testing.assert_array_equal(cells["z2"][:, 0], [draw[c]["z"][0] for _, c in pairs])
    np.testing.assert_array_equal(cells["noise"][:, 0], [draw[r]["noise"][0] for r, _ in pairs])
    # the header of style seed 3 is exactly generate(n=1, seed=3)
    np.testing.assert_array_equal(tiles[1], m.generate(1, seed=3)[0])
    np.testing.assert_array_equal(tiles[4], m.generate(1, seed=1)[0])
    m.chunk = 4  # 5 headers and 6 cells: two ONNX Runtime calls each, same grid
    np.testing.assert_array_equal(m.mix([1, 2], [3, 4, 5])[0], tiles)
    assert [len(c["z"]) for c in sess.calls[-4:]] == [4, 1, 4, 2]


@pytest.mark.parametrize(
    "kwargs, status", [({"crossover": 7}, 422), ({"crossover": -1}, 422), ({"psi": 5.0}, 422), ({"seeds": []}, 422)]
)
def test_mix_arguments_are_checked(kwargs, status):
    m, _ = _style_model()
    args = {"seeds": [1], "styles": [2], **kwargs}
    with pytest.raises(ServingError) as e:
        m.mix(**args)
    assert e.value.status == status
    with pytest.raises(ServingError) as e:
        model({"generator": gen_session()}).mix([1], [2])
    assert e.value.status == 400 and "z2/crossover" in e.value.message


def test_interpolation_starts_and_ends_on_the_seeds_tiles():
    m = model({"generator": gen_session()})
    frames = m.interpolate(4, 9, steps=6)
    assert frames.shape == (6, 2, 2, 1)
    np.testing.assert_array_equal(frames[0], m.generate(1, seed=4)[0])
    np.testing.assert_array_equal(frames[-1], m.generate(1, seed=9)[0])
    with pytest.raises(ServingError):
        m.interpolate(4, 9, steps=1)


def test_interpolation_goes_through_w_when_mapping_and_synthesis_exist():
    mapping = FakeSession(
        [Arg("z", ["batch", 4]), Arg("psi", [])],
        [Arg("w", ["batch", 2, 2])],
        lambda f: f["z"].reshape(-1, 2, 2) * f["psi"],
    )
    synthesis = FakeSession(
        [Arg("w", ["batch", 2, 2])], [Arg("image", ["batch", 1, 2, 2])], lambda f: _image_of(f["w"])
    )
    m = model({"mapping": mapping, "synthesis": synthesis})
    frames = m.interpolate(1, 2, steps=3, psi=0.5)
    w = synthesis.calls[-1]["w"]
    np.testing.assert_allclose(w[1], (w[0] + w[2]) / 2, rtol=1e-6)  # lerp in w, not slerp in z
    np.testing.assert_array_equal(frames[0], m.generate(1, seed=1, psi=0.5)[0])


def _translator() -> tuple[GanModel, FakeSession]:
    def neg(f: Feeds) -> np.ndarray:
        x = f["image.1"]
        assert x.shape[2] % 4 == 0 and x.shape[3] % 4 == 0, "padded to a multiple of 4"
        return -x

    a2b = FakeSession([Arg("image.1", ["b", 3, "h", "w"])], [Arg("image", ["b", 3, "h", "w"])], neg)
    b2a = FakeSession([Arg("x", ["b", 3, "h", "w"])], [Arg("y", ["b", 3, "h", "w"])], lambda f: f["x"])
    return model({"a2b": a2b, "b2a": b2a}, task="translate", domains="apple,orange", image_size=6, channels=3), a2b


def test_translate_pads_crops_and_keeps_the_size():
    m, a2b = _translator()
    assert m.directions == {"apple2orange": "a2b", "orange2apple": "b2a"}
    arr = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    out = m.translate_array(Image.fromarray(arr, "RGB"), "apple2orange")  # size 6 = shorter side: no resize
    assert a2b.calls[-1]["image.1"].shape == (1, 3, 8, 12)
    assert out.shape == (6, 10, 3)
    assert np.abs(out.astype(int) - (255 - arr.astype(int))).max() <= 1
    big = m.translate_array(Image.fromarray(np.zeros((30, 50, 3), np.uint8), "RGB"), "a2b", size=8)
    assert a2b.calls[-1]["image.1"].shape == (1, 3, 8, 16) and big.shape == (30, 50, 3)  # 13x8 padded


def test_translate_directions_are_checked():
    m, _ = _translator()
    with pytest.raises(ServingError) as e:
        m.resolve_direction("pear2apple")
    assert e.value.status == 422 and e.value.detail == {"known": ["apple2orange", "orange2apple"]}
    assert m.resolve_direction("b2a") == "b2a"
    with pytest.raises(ServingError) as e:
        m.translate(Image.new("RGB", (8, 8)), "apple2orange", size=2)
    assert e.value.status == 422 and "size" in e.value.message
    with pytest.raises(ServingError) as e:
        m.translate(Image.new("RGB", (4000, 1)), "apple2orange")
    assert e.value.status == 422 and "aspect ratio" in e.value.message


def test_encode_and_reconstruct_need_an_encoder():
    enc = FakeSession([Arg("image", ["b", 1, 2, 2])], [Arg("code", ["b", 4])], lambda f: f["image"].reshape(-1, 4))
    m = model({"encoder": enc, "generator": gen_session()}, task="reconstruct")
    img = Image.fromarray(np.array([[0, 255], [255, 0]], dtype=np.uint8), "L")
    np.testing.assert_allclose(m.encode(img), [-1, 1, 1, -1])
    assert m.reconstruct(img).shape == (2, 2, 1)
    np.testing.assert_array_equal(
        m.reconstruct(img)[:, :, 0], images.to_uint8(_image_of(np.array([[-1, 1, 1, -1.0]])))[0, :, :, 0]
    )
    with pytest.raises(ServingError) as e:
        model({"generator": gen_session()}).encode(img)
    assert e.value.status == 400 and "encoder" in e.value.message


def test_info_reports_what_serving_needs():
    m, _ = _style_model()
    m.card.update(metrics={"fid": float("nan"), "is": [1.5, float("inf")]}, steps="12", dataset=None)
    info = m.info()
    assert info["metrics"] == {"fid": None, "is": [1.5, None]} and info["steps"] == 12 and info["dataset"] is None
    assert info["capabilities"] == ["generate", "interpolate", "mix"]
    assert info["roles"] == ["generator", "mapping"] and info["psi"] is True and info["style_layers"] == 6
    assert info["provider"] == "CPUExecutionProvider" and info["inputs"]["generator"][0] == "z"
    t, _ = _translator()
    assert t.info()["directions"] == ["apple2orange", "orange2apple"] and t.info()["domains"] == ["apple", "orange"]
