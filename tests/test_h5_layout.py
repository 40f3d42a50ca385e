"""An h5map made into HDF5 items with h5py, then filled with rows (pure: a temporary file, no
servers; tests/test_nexus_chunks.py covers the compressed chunks themselves)."""

from __future__ import annotations

import h5py
import numpy as np
from blissdata.h5map import Dataset, Group

from sardana_redis.nexus_writer.h5_layout import (
    Compression,
    StreamTargets,
    append,
    close_packed,
    collect_targets,
    create_items,
    rows_on_disk,
)
from sardana_redis.publishing.column_batches import stream_dtype
from sardana_redis.publishing.h5maps import build_h5map
from sardana_redis.scan_model import EndReason, ScanDescription, ScanEnd, StreamShape
from tests.scan_descriptions import ascan_desc, detectors_desc

END = ScanEnd("2024-05-02T10:01:00+02:00", EndReason.SUCCESS, "Normal")


def shapes(desc: ScanDescription) -> dict[str, StreamShape]:
    """The streams the publisher makes of ``desc``'s columns."""
    return {c.stream: StreamShape(stream_dtype(c), c.shape) for c in desc.columns}


def rows(desc: ScanDescription, first: int, count: int) -> dict[str, np.ndarray]:
    """``count`` rows of every numeric stream, each value its row number."""
    out = {}
    for name, shape in shapes(desc).items():
        if shape.dtype != "json":
            index = np.arange(first, first + count).reshape((count,) + (1,) * len(shape.shape))
            out[name] = np.broadcast_to(index, (count, *shape.shape)).astype(shape.dtype)
    return out


def test_streams_become_growing_datasets_and_json_streams_wait_for_the_end(tmp_path):
    desc = detectors_desc()
    targets = StreamTargets()
    with h5py.File(tmp_path / "scans.h5", "w") as f:
        create_items(f, build_h5map(desc), shapes(desc), targets)
        meas = f["entry12/measurement"]
        assert meas.attrs["NX_class"] == "NXcollection" and f.attrs["default"] == "entry12"
        assert {name: (meas[name].shape, meas[name].maxshape, meas[name].dtype.name)
                for name in ("Pt_No", "ct01", "oned01", "twod01")} == {
            "Pt_No": ((0,), (None,), "int64"), "ct01": ((0,), (None,), "float64"),
            "oned01": ((0, 1024), (None, 1024), "float64"),
            "twod01": ((0, 256, 200), (None, 256, 200), "uint16")}
        assert meas["ct01"].compression == "gzip" and meas["twod01"].chunks == (1, 256, 200)
        assert "twod02" not in meas  # references: written at the end
        (parent, name, attributes), = targets.json["twod02"]
        assert (list(targets.json), parent, name) == (["twod02"], "/entry12/measurement", "twod02")
        assert attributes["sardana_value_ref"].model_dump().tolist() == "true"
        assert set(targets.numeric) == {c.stream for c in desc.columns} - {"twod02"}
        assert f["entry12/title"][()].decode() == desc.title
        assert f.get("entry12/plot_2/oned01", getlink=True).path == "/entry12/measurement/oned01"
        assert list(f["entry12/plot_2/oned01"].shape) == [0, 1024]  # the link resolves


def test_rows_appended_then_resumed_then_ended(tmp_path):
    desc = ascan_desc()
    path = tmp_path / "scans.h5"
    targets = StreamTargets()
    with h5py.File(path, "w") as f:
        create_items(f, build_h5map(desc), shapes(desc), targets)
        append(targets, rows(desc, 0, 3))
        append(targets, rows(desc, 3, 2), show=False)
        close_packed(targets)
        assert rows_on_disk(targets) == 5
        made = {stream: [d.name for d in dsets] for stream, dsets in targets.numeric.items()}
    resumed = StreamTargets()
    with h5py.File(path, "a") as f:
        create_items(f, build_h5map(desc), shapes(desc), StreamTargets())  # nothing made again
        collect_targets(f, build_h5map(desc), shapes(desc), resumed)
        assert {stream: [d.name for d in dsets] for stream, dsets in resumed.numeric.items()} == made
        append(resumed, rows(desc, 5, 6))
        close_packed(resumed)
        assert rows_on_disk(resumed) == 11
        create_items(f, build_h5map(desc, END), {}, StreamTargets())
    with h5py.File(path, "r") as f:
        entry = f["entry12"]
        assert entry["measurement/Pt_No"][()].tolist() == list(range(11))
        assert entry["measurement/mot01"][()].tolist() == [float(i) for i in range(11)]
        assert entry["instrument/counters/ct04"][()].tolist() == [float(i) for i in range(11)]
        assert entry["end_time"][()].decode() == END.end_time
        assert entry["measurement/pre_scan_snapshot/shutter"][()] == 1
        assert entry["measurement/mot01"].attrs["units"] == "mm"


def test_no_compression_below_the_rank_and_strings_without_nul(tmp_path):
    desc = detectors_desc()
    tree = Group(children={"text": Dataset(value="a\x00b"), "entry": build_h5map(desc).children["entry12"]})
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        create_items(f, tree, shapes(desc), StreamTargets(), Compression(min_rank=-1))
        assert f["text"][()].decode() == "a\ufffdb"
        assert all(f[f"entry/measurement/{name}"].compression is None
                   for name in ("ct01", "oned01", "twod01"))
    with h5py.File(tmp_path / "images.h5", "w") as f:
        create_items(f, build_h5map(desc), shapes(desc), StreamTargets(), Compression(min_rank=3))
        meas = f["entry12/measurement"]
        assert meas["ct01"].compression is None and meas["oned01"].compression is None
        assert meas["twod01"].compression == "gzip"


def test_streams_missing_or_of_impossible_shape_are_left_out(tmp_path, caplog):
    desc = detectors_desc()
    streams = shapes(desc)
    del streams["ct01"]
    streams["oned01"] = StreamShape("float64", (-1,))
    targets = StreamTargets()
    with h5py.File(tmp_path / "scans.h5", "w") as f:
        create_items(f, build_h5map(desc), streams, targets)
        assert "ct01" not in f["entry12/measurement"] and "oned01" not in f["entry12/measurement"]
    assert "ct01" not in targets.numeric and "oned01" not in targets.numeric
    assert "stream 'ct01' is not in the scan" in caplog.text
    assert "stream 'oned01' of shape (-1,) is not written" in caplog.text
