"""What Sardana gives a recorder, made into a scan description (pure): a fixed record list
environment of Sardana's own ``ColumnDesc``/``MoveableDesc`` objects, as Sardana's GScan
fills it for ``ascan mot01 0 10 4 0.1`` with a counter, a 0D, a spectrum, an image by
reference and a pre-scan snapshot; its scan_info and h5map are golden files."""

from __future__ import annotations

import datetime
import time
from typing import Any

import numpy as np
import pytest
from sardana.macroserver.scan.scandata import ColumnDesc, MoveableDesc

from sardana_redis.publishing.h5maps import build_h5maps
from sardana_redis.publishing.sardana_adapter import (
    default_session,
    describe_columns,
    describe_end,
    describe_scan,
    macro_running,
    parse_shape,
    requested_files,
    top_macro,
)
from sardana_redis.publishing.scan_info import build_scan_info
from sardana_redis.scan_model import ColumnKind, EndReason, RequestedFile
from tests.golden_files import assert_golden_json

START = datetime.datetime(2026, 3, 4, 5, 6, 7)  # naive, local time: as Sardana gives it
CT01 = "tango://host:10000/expchan/ctctrl01/1"


class Instrument:
    """A Sardana instrument: a NeXus path and class."""

    def __init__(self, full_name: str, klass: str) -> None:
        self.full_name, self.klass = full_name, klass

    def getFullName(self) -> str:
        return self.full_name


class Motor:
    """What ``MoveableDesc`` reads of a motor."""

    instrument = Instrument("/instrument/mot01", "NXpositioner")

    def getName(self) -> str:
        return "mot01"


class Macro:
    """What the recorder reads of a scan macro, and of the macro above it."""

    def __init__(self, parent: Any = None, state: str = "running") -> None:
        self.nb_points, self.integ_time, self.nr_intervs = 5, 0.1, [4]
        self.parent, self.state = parent, state

    def getName(self) -> str:
        return "ascan"

    def getDoorName(self) -> str:
        return "tango://host:10000/door/lab/01"

    def getParentMacro(self) -> Any:
        return self.parent

    def getMacroStatus(self) -> dict:
        return {"state": self.state}


def datadesc() -> list[ColumnDesc]:
    return [
        ColumnDesc(name="point_nb", label="#Pt No", dtype="int64", min_value=0, max_value=4),
        MoveableDesc(moveable=Motor(), min_value=0.0, max_value=10.0, is_reference=True),
        ColumnDesc(name=CT01, label="ct01", dtype="float64", shape=[], instrument="",
                   source=f"{CT01}/value", output=True, plot_type=1, plot_axes=["mot01"],
                   data_units="counts", value_ref_enabled=False),
        ColumnDesc(name="expchan/zerod/1", label="zerod01", dtype="float32", shape=["1"]),
        ColumnDesc(name="expchan/oned/1", label="oned01", dtype="float64", shape=[1024],
                   plot_type=1, plot_axes=["<idx>"]),
        ColumnDesc(name="expchan/twod/1", label="twod01", dtype="ushort", shape=[512, 256],
                   plot_type=2, value_ref_enabled=True),
        ColumnDesc(name="timestamp", label="dt", dtype="float64"),
    ]


def snapshot_item(name: str, value: Any, **kwargs: Any) -> ColumnDesc:
    return ColumnDesc(name=name, label=name, pre_scan_value=value, **kwargs)


def environment() -> dict[str, Any]:
    """The record list environment at the scan's start."""
    return {
        "serialno": 7, "title": "ascan mot01 0 10 4 0.1", "user": "alice",
        "starttime": START, "scanstarttime": START + datetime.timedelta(seconds=0.5),
        "datadesc": datadesc(), "ref_moveables": ["mot01"], "counters": [CT01],
        "ScanDir": "/data/alice", "ScanFile": ["scans.h5", "scans.dat", "other.h5"],
        "preScanSnapShot": [snapshot_item("mot02", 1.5, dtype="float64"),
                            snapshot_item("energy", np.arange(3.0), dtype="float64", shape=[3]),
                            snapshot_item("mot02", 9.0)],  # a second one: left out
        "instrumentlist": [Instrument("/instrument", "NXinstrument"), Motor.instrument, "odd"],
        "estimatedtime": 0.6, "total_scan_intervals": 4, "macro_id": "m-1",
        "SampleInfo": {"name": "Si"}, "SourceInfo": {},
    }


VARIABLES = {"ScanRecorder": ["RedisBlissRecorder", "RedisBlissRecorder", "NXscanH5_FileRecorder"],
             "RedisProposal": "ihma1", "RedisBeamline": "", "DataCompressionRank": 1}


def get_env(name: str, default: Any) -> Any:
    return VARIABLES.get(name, default)


@pytest.fixture
def utc(monkeypatch):
    """Sardana's naive local times read in UTC, whatever this machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_columns():
    second = ColumnDesc(name="expchan/ct/2", label="ct01")  # a label met twice: a unique stream
    columns = describe_columns([*datadesc(), second], ["mot01"])
    assert [(c.key, c.stream, c.dataset, c.kind, c.dtype, c.shape) for c in columns] == [
        ("point_nb", "#Pt No", "Pt_No", ColumnKind.POINT_NB, "int64", ()),
        ("mot01", "mot01", "mot01", ColumnKind.MOVEABLE, "float64", ()),
        (CT01, "ct01", "ct01", ColumnKind.CHANNEL, "float64", ()),
        ("expchan/zerod/1", "zerod01", "zerod01", ColumnKind.CHANNEL, "float32", ()),
        ("expchan/oned/1", "oned01", "oned01", ColumnKind.CHANNEL, "float64", (1024,)),
        ("expchan/twod/1", "twod01", "twod01", ColumnKind.CHANNEL, "uint16", (512, 256)),
        ("timestamp", "dt", "dt", ColumnKind.TIMESTAMP, "float64", ()),
        ("expchan/ct/2", "ct01 (expchan/ct/2)", "ct01_2", ColumnKind.CHANNEL, "float64", ()),
    ]
    mot01, ct01, twod01 = columns[1], columns[2], columns[5]
    assert (mot01.instrument, mot01.min_value, mot01.max_value) == ("/instrument/mot01", 0.0, 10.0)
    assert "moveable" not in mot01.metadata and mot01.metadata["is_reference"] is True
    assert (ct01.units, ct01.plot_type, ct01.plot_axes, ct01.source) == \
        ("counts", 1, ("mot01",), f"{CT01}/value")
    assert ct01.instrument is None and not ct01.value_ref and twod01.value_ref


def test_labels_that_clean_up_to_one_dataset_name_keep_both_columns(utc):
    """Two channels labelled alike (or "ct 01" and "ct_01") get datasets of their own: the
    scan is published and its NeXus layout holds both (it was refused: no scan at all)."""
    twins = [ColumnDesc(name="expchan/ct/2", label="ct01"), ColumnDesc(name="expchan/ct/3",
                                                                          label="ct 01"),
             ColumnDesc(name="expchan/ct/4", label="ct_01")]
    env = environment() | {"datadesc": [*datadesc()[:3], *twins]}
    desc = describe_scan(env, Macro(), get_env)
    assert [c.dataset for c in desc.columns] == ["Pt_No", "mot01", "ct01", "ct01_2", "ct_01",
                                                    "ct_01_2"]
    measurement = build_h5maps(desc, None)
    assert measurement  # built, no ValueError


def test_scan_description(utc):
    desc = describe_scan(environment(), Macro(), get_env)
    assert (desc.title, desc.scan_type, desc.user, desc.npoints, desc.count_time) == \
        ("ascan mot01 0 10 4 0.1", "ascan", "alice", 5, 0.1)
    assert desc.start_time == "2026-03-04T05:06:07+00:00" and desc.mesh_shape is None
    identity = desc.identity
    assert (identity.name, identity.number, identity.session, identity.proposal,
            identity.beamline, identity.path) == ("ascan", 7, "door_lab_01", "ihma1", None,
                                                   "/data/alice/scans.h5")
    assert desc.files == (RequestedFile("/data/alice/scans.h5", "nexus"),
                          RequestedFile("/data/alice/scans.dat", "spec"))
    assert desc.instruments == {"/instrument": "NXinstrument", "/instrument/mot01": "NXpositioner"}
    assert [(s.label, s.value, s.shape) for s in desc.snapshot] == \
        [("mot02", 1.5, ()), ("energy", [0.0, 1.0, 2.0], (3,))]
    extra = desc.extra
    assert extra["scan_start_time"] == "2026-03-04T05:06:07.500000+00:00"
    assert (extra["door"], extra["data_compression_rank"], extra["macro_id"]) == \
        ("tango://host:10000/door/lab/01", 1, "m-1")
    assert [s["label"] for s in extra["snapshot_0d"]] == ["mot02"]
    assert [s["label"] for s in extra["snapshot_1d"]] == ["energy"]


def test_scan_info_and_h5map_of_a_sardana_scan_as_golden_json(utc):
    desc = describe_scan(environment(), Macro(), get_env)
    assert_golden_json("scan_info_sardana_ascan.json", build_scan_info(desc))
    assert_golden_json("h5map_sardana_ascan.json", build_h5maps(desc, None))


def test_a_mesh_without_a_macro_or_files(utc):
    env = environment() | {"datadesc": datadesc()[:3], "ScanFile": None}
    macro = Macro()
    macro.nr_intervs = [2, 1]
    assert describe_scan(env, macro, get_env).mesh_shape == (3, 2)
    desc = describe_scan(env | {"title": "", "serialno": "12"}, None,
                         lambda name, default: {"RedisWriteFiles": False}.get(name, default))
    assert (desc.scan_type, desc.identity.number, desc.identity.session) == ("scan", 12, "sardana")
    assert desc.npoints == 5 and desc.files == () and desc.identity.path is None  # from #Pt No


@pytest.mark.parametrize(("status", "reason"), [
    ("Normal", EndReason.SUCCESS), ("Stop", EndReason.USER_ABORT), ("Abort", EndReason.USER_ABORT),
    ("ScanEndStatus.Exception", EndReason.FAILURE), (None, EndReason.FAILURE), (0, EndReason.SUCCESS),
])
def test_end(utc, status, reason):
    end = describe_end({"endtime": START, "endstatus": status, "deadtime": np.float64(0.25),
                        "acqtime": float("nan")})
    assert end.reason is reason and end.end_time == "2026-03-04T05:06:07+00:00"
    assert end.extra == {"deadtime": 0.25, "acqtime": None}


@pytest.mark.parametrize(("shape", "parsed"), [
    (None, ()), ([], ()), (["1"], ()), (0, ()), ([1024], (1024,)), (np.int64(8), (8,)),
    (["512", 256], (512, 256)), (["x"], ()), (object(), ()),
])
def test_parse_shape(shape, parsed):
    assert parse_shape(shape) == parsed


def test_requested_files_are_those_routed_to_this_recorder():
    recorders = ["RedisBlissRecorder", "SPEC_FileRecorder", "RedisBlissRecorder", "RedisBlissRecorder"]
    assert requested_files("/d", ["a.h5", "b.dat", "c.spec", "d.txt"], recorders) == (
        RequestedFile("/d/a.h5", "nexus"), RequestedFile("/d/c.spec", "spec"))
    assert requested_files("/d", "one.nxs", "RedisBlissRecorder") == (RequestedFile("/d/one.nxs", "nexus"),)
    assert requested_files("/d", ["a.h5"], None) == ()
    assert requested_files(None, ["a.h5"], recorders) == ()


def test_default_session():
    assert default_session("door/sr/1") == default_session("tango://host:10000/door/sr/1") == "door_sr_1"
    assert default_session(None) == "sardana"


def test_top_macro_and_running():
    top = Macro()
    scan = Macro(parent=Macro(parent=top))
    assert top_macro(scan) is top and top_macro(top) is top and top_macro(None) is None
    looping = Macro()
    looping.parent = looping
    assert top_macro(looping) is looping
    assert macro_running(scan) and not macro_running(Macro(state="finish"))
