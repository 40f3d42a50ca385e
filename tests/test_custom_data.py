"""Custom data and exact values: pure logic (no servers)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from sardana_redis.custom_data import (
    Phase, decode_value, describe_custom_data, encode_value, read_custom_data)
from sardana_redis.nexus_writer.custom_data import write_custom_data

VALUES = [0.1 + 0.2, np.float32(0.1), 7, np.arange(5, dtype=np.uint16),
          np.random.default_rng(0).random((3, 4)), "text", -0.0, np.nan]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_custom_values_round_trip_through_json_bit_for_bit(value):
    back = decode_value(json.loads(json.dumps(encode_value(value))))
    if isinstance(value, str):
        assert back == value
    else:
        expected = np.asarray(value)
        assert back.dtype == expected.dtype and np.shape(back) == expected.shape
        assert np.asarray(back).tobytes() == expected.tobytes()  # bit for bit


def test_what_nxscanh5_cannot_store_is_not_carried():
    assert decode_value(encode_value(True)) == 1  # stored as the integer, as Sardana does
    for value in (["a", "b"], np.ones(2, bool), [True, False], object(), 1j):
        assert encode_value(value) is None


@pytest.mark.parametrize("obj", [
    None, [], {"dtype": "<f8", "shape": [2], "base64": "AAAA"},  # 3 bytes for 2 floats
    {"dtype": "|O", "shape": [], "base64": ""}, {"dtype": "<U4", "shape": [1], "base64": "AAAAAA=="},
    {"dtype": "<c16", "shape": [], "base64": "A" * 24}, {"dtype": "V8", "shape": [], "base64": "A" * 12},
    {"dtype": "<f8", "shape": [10**9, 10**9], "base64": ""}, {"dtype": "<f8", "shape": [-1], "base64": ""},
    {"dtype": "<f8", "shape": "8", "base64": ""}, {"dtype": "<f8", "shape": [1], "base64": "not base64!"},
    {"dtype": "str", "data": 3}, {"dtype": "str", "data": "x" * 5000}, {"dtype": 8},
])
def test_hostile_encoded_values_refused(obj):
    with pytest.raises(ValueError):
        decode_value(obj)


def test_spec_lines_as_spec_file_recorder_writes_them():
    assert describe_custom_data(np.float32(0.1), "x", Phase.AFTER).spec_line == "#UVAR x 0.1\n"
    assert describe_custom_data([1, 2], "x", Phase.AFTER).spec_line is None  # not a scalar
    assert describe_custom_data("a\nb", "x", Phase.AFTER).spec_line is None  # two lines
    custom = describe_custom_data(3, "n", Phase.AFTER, spec_custom_fmt="#C {name} = {value}")
    assert custom.spec_line == "#C n = 3\n"


def test_hostile_items_left_out_with_a_reason():
    good = describe_custom_data(1.5, "ok", Phase.DURING).to_json()
    info = {"sardana": {"custom_data": [
        good, "junk", {**good, "phase": "whenever"}, {**good, "name": ""},
        {**good, "spec_line": "1 2 3\n"},  # not a comment: it would be a data line
        {**good, "spec_line": "#UVAR a 1\n#S 99 fake\n"}, {**good, "nxpath": 5},
        {**good, "value": {"dtype": "<f8", "shape": [3], "base64": ""}},
    ]}}
    kept, refused = read_custom_data(info)
    assert [c.name for c in kept] == ["ok"]
    assert len(refused) == 7


def test_nexus_custom_data_as_nxscanh5_writes_it(tmp_path):
    items = [describe_custom_data(v, n, Phase.AFTER, **kw).to_json() for v, n, kw in [
        (0.25, "f", {}), (True, "b", {}), ("hello", "s", {}), (np.arange(3.0), "a", {}),
        ("x", "in_sample", {"nxpath": "sample:NXsample"}), (["a", "b"], "strings", {}),
        (np.float16(1), "half", {}), (1, "bad_path", {"nxpath": "../x"}),
    ]]
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_group("entry3/custom_data").create_dataset("f", data=1.0)  # never overwritten
        assert write_custom_data(f, "entry3", {"sardana": {"custom_data": items}}) == 4
        group = f["entry3/custom_data"]
        assert group.attrs["NX_class"] == "NXcollection"
        assert group["f"][()] == 1.0 and group["b"].dtype == np.int64 and group["b"][()] == 1
        assert group["s"][()] == b"hello" and group["a"][()].tolist() == [0.0, 1.0, 2.0]
        assert f["entry3/sample"].attrs["NX_class"] == "NXsample"
        assert f["entry3/sample/in_sample"][()] == b"x"
        assert "strings" not in group and "half" not in group and "bad_path" not in group
