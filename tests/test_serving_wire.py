"""serving.wire: arrays over a JSON hop come back exact, and only packed inputs get packed answers."""

import json

import numpy as np

from serving import wire


def test_arrays_round_trip_through_json_exactly():
    value = {"z": np.random.default_rng(0).standard_normal((2, 100, 1, 1)).astype(np.float32),
             "label": np.array([3, 4], dtype=np.int64), "psi": None, "tiles": [np.zeros((4, 4, 3), np.uint8)]}
    back = wire.unpack(json.loads(json.dumps(wire.pack(value))))
    for key in ("z", "label"):
        assert back[key].dtype == value[key].dtype and np.array_equal(back[key], value[key])
    assert back["psi"] is None and back["tiles"][0].shape == (4, 4, 3)
    assert wire.packed(wire.pack(value)) and not wire.packed(value) and not wire.packed({"npy": 3})
