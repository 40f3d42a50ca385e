"""Snapshot values bit for bit through JSON/RedisJSON: encoding, h5map, SPEC #U lines."""

from __future__ import annotations

import json

import numpy as np
import pytest
from blissdata.h5map import Group

from sardana_redis import exact_values
from sardana_redis.publishing.h5maps import build_h5maps
from sardana_redis.publishing.sardana_adapter import describe_snapshot
from sardana_redis.spec_writer.spec_format import _snapshot_1d

from tests.scan_descriptions import NEXUS_FILE, ascan_desc

#: What a 1D float64 snapshot value and a float32 scalar become (golden).
GOLDEN = {
    "oned": {"dtype": "<f8", "shape": [3], "base64": "mpmZmZmZuT8AAAAAAADwv0mdgJZjFTDB"},
    "f32": {"dtype": "<f4", "shape": [], "base64": "zczMPQ=="},
    "flag": {"dtype": "|i1", "shape": [], "base64": "AQ=="},
}


class Desc:
    """A Sardana snapshot ColumnDesc (label, dtype, shape, instrument, pre_scan_value)."""

    def __init__(self, label, value, instrument=None):
        self.name = self.label = label
        self.pre_scan_value = value
        self.dtype = getattr(value, "dtype", np.dtype(type(value))).name
        self.shape = np.shape(value)
        self.instrument = instrument


VALUES = {"oned": np.array([0.1, -1.0, -1054051.5879]), "f32": np.float32(0.1), "flag": True}


@pytest.mark.parametrize("name", VALUES)
def test_encoding_is_golden_and_exact(name):
    encoded = exact_values.encode(VALUES[name])
    assert encoded == GOLDEN[name]
    decoded = exact_values.decode(json.loads(json.dumps(encoded)))
    expected = np.asarray(VALUES[name])
    expected = expected.astype("int8") if name == "flag" else expected
    assert decoded.dtype == expected.dtype and decoded.tobytes() == expected.tobytes()


def test_every_float64_bit_pattern_survives():
    values = np.random.default_rng(0).standard_normal(8000) * 10.0 ** np.arange(-40, 40, 0.01)
    assert exact_values.decode(exact_values.encode(values)).tobytes() == values.tobytes()


@pytest.mark.parametrize("bad", [None, "x", {}, {"dtype": "<f8", "shape": [2], "base64": "AAAA"},
                                 {"dtype": "|O", "shape": [], "base64": ""},
                                 {"dtype": "<f8", "shape": [-1], "base64": ""},
                                 {"dtype": "<f8", "shape": [1], "base64": "!!"}])
def test_hostile_encodings_are_refused(bad):
    assert exact_values.decode(bad) is None


def test_strings_objects_and_huge_values_stay_json():
    assert exact_values.encode("Si(111)") is None
    assert exact_values.encode(np.zeros(exact_values.MAX_BYTES // 8 + 1)) is None


def test_snapshot_in_the_h5map_and_its_instrument():
    snapshot = describe_snapshot([Desc("oned", VALUES["oned"]), Desc("mot09", 1.25, "/mirror")])
    desc = ascan_desc()
    desc = type(desc)(**{**desc.__dict__, "snapshot": snapshot})
    root = Group.model_validate(json.loads(json.dumps(build_h5maps(desc)[NEXUS_FILE])))
    entry = root.children["entry12"]
    snap = entry.children["measurement"].children["pre_scan_snapshot"].children
    assert snap["oned"].value.decode().tobytes() == VALUES["oned"].tobytes()
    assert snap["mot09"].value.decode()[()] == 1.25 and snap["mot09"].value.decode().dtype == "<f8"
    assert entry.children["mirror"].children["mot09"].target_path == \
        "/entry12/measurement/pre_scan_snapshot/mot09"
    assert "oned" not in entry.children["measurement"].children  # no links, as Sardana


def test_spec_u_lines_print_values_as_sardana():
    values = np.array([0.1, 2.0, 1e-7], dtype="float32")
    info = {"sardana": {"snapshot_1d": [
        {"label": "oned 1", "dtype": "float32", "value": exact_values.encode(values)},
        {"label": "skipped", "dtype": "bool", "value": exact_values.encode(np.ones(2, bool))},
        {"label": "hostile", "dtype": "float64", "value": {"base64": 3}}]}}
    sardana = "".join(" " + str(v) for v in values)  # SPEC_FileRecorder's own expression
    assert _snapshot_1d(info) == (("oned 1", sardana),)


@pytest.mark.parametrize("rank", [None, -1, 2])
def test_the_producer_carries_what_the_nexus_and_spec_writers_need(rank):
    import datetime

    from sardana_redis.publishing.sardana_adapter import describe_scan

    start = datetime.datetime(2026, 11, 27, 10, 0, 0)
    env = {"serialno": 3, "title": "ascan mot01 0 1 2 0.1", "starttime": start,
           "scanstarttime": start + datetime.timedelta(seconds=1.5),
           "DataCompressionRank": -1,  # Sardana always puts it there (-1 when unset)
           "preScanSnapShot": [Desc("oned", VALUES["oned"]), Desc("mot09", 1.25, "/mirror")]}
    variables = {} if rank is None else {"DataCompressionRank": rank}
    desc = describe_scan(env, None, lambda name, default: variables.get(name, default))
    assert desc.extra["data_compression_rank"] == rank
    assert desc.extra["scan_start_time"].startswith("2026-11-27T10:00:01.500000")
    assert desc.start_time.startswith("2026-11-27T10:00:00")
    assert desc.extra["snapshot_1d"] == [{"label": "oned", "dtype": "float64",
                                          "value": GOLDEN["oned"]}]
    assert [(s.shape, s.instrument) for s in desc.snapshot] == [((3,), None), ((), "/mirror")]
