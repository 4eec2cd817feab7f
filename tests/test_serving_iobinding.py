"""serving/iobinding.py on the CPU provider: the bound run returns exactly what ``session.run`` does."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from serving.iobinding import run_with_iobinding, wants_iobinding


def _session(tmp_path) -> ort.InferenceSession:
    """A two-input, two-output graph: image = tanh(z @ W + label), aux = relu(z)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 6)).astype(np.float32), "W")
    nodes = [
        helper.make_node("MatMul", ["z", "W"], ["zw"]),
        helper.make_node("Cast", ["label"], ["label_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["label_f", "axes"], ["label_col"]),
        helper.make_node("Add", ["zw", "label_col"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["image"]),
        helper.make_node("Relu", ["z"], ["aux"]),
    ]
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    graph = helper.make_graph(
        nodes, "bind",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 6]),
         helper.make_tensor_value_info("aux", TensorProto.FLOAT, ["batch", 4])],
        initializer=[w, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "bind.onnx"
    onnx.save(model, path)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("output", ["image", "aux"])
def test_bound_run_equals_session_run(tmp_path, batch, output):
    sess = _session(tmp_path)
    rng = np.random.default_rng(batch)
    feeds = {"z": rng.standard_normal((batch, 4)).astype(np.float32),
             "label": rng.integers(0, 3, batch).astype(np.int64)}
    want = sess.run([output], feeds)[0]
    got = run_with_iobinding(sess, feeds, output)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_non_contiguous_inputs_are_bound_by_value_not_by_raw_buffer(tmp_path):
    sess = _session(tmp_path)
    z = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32).T[::2]  # a strided view
    assert not z.flags["C_CONTIGUOUS"]
    feeds = {"z": z, "label": np.arange(4, dtype=np.int64)}
    np.testing.assert_array_equal(run_with_iobinding(sess, feeds, "image"), sess.run(["image"], feeds)[0])


def test_only_cuda_sessions_want_iobinding(tmp_path):
    assert not wants_iobinding(_session(tmp_path))
