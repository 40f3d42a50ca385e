"""The SPEC format, pure: whole blocks against golden files (no servers).

Set ``UPDATE_GOLDEN=1`` to write the golden files again after a deliberate change, and
review the diff: they are what SPEC_FileRecorder writes for the same scan.
"""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from sardana_redis.custom_data import Phase, describe_custom_data
from sardana_redis.scan_model import ScanRejected, StreamShape
from sardana_redis.spec_writer.spec_format import (
    data_lines, layout_from_scan, point_ends, scan_footer, scan_header, written_by_us)
from tests.golden_files import assert_golden

START = "2026-03-04T05:06:07+00:00"
STREAMS = {"#Pt No": StreamShape("int64", ()), "mot01": StreamShape("float64", ()),
           "ct01": StreamShape("float32", ()), "oned01": StreamShape("float64", (4,)),
           "twod01": StreamShape("uint16", (2, 3)), "dt": StreamShape("float64", ())}
INFO = {
    "title": "ascan mot01 0.0 1.0 2 0.1", "user_name": "blissadm", "start_time": START,
    "positioners": {"positioners_start": {"mot02": 1.5, "mot 03": -0.0, "text": "x"}},
    "sardana": {
        "columns": [{"stream": s, "label": s} for s in ("#Pt No", "mot01", "ct01", "oned01", "twod01", "dt")],
        "custom_data": [describe_custom_data("Hello", "greeting", Phase.BEFORE).to_json()],
    },
}


def _block() -> str:
    layout = layout_from_scan(7, INFO, STREAMS)
    batch = {"#Pt No": np.arange(3), "mot01": np.array([0.0, 0.5, 1.0]),
             "ct01": np.array([0.1, 2.5, np.nan], dtype=np.float32),
             "oned01": np.array([[1.0, 2.0, 3.0, 4.0], [0.1, 0.2, 0.30000000000000004, 1e-7],
                                 [np.inf, -np.inf, 0.0, -0.0]]),
             "dt": np.array([0.0021, 1.1, 2.2])}
    end = datetime.datetime.fromisoformat("2026-03-04T05:06:09+00:00")
    later = describe_custom_data(0.1 + 0.2, "fit", Phase.AFTER).spec_line
    return scan_header(layout) + data_lines(layout, batch) + scan_footer(end, "SUCCESS", later)


def test_a_whole_block_as_spec_file_recorder_writes_it():
    assert_golden("spec_block.txt", _block())


def test_point_ends_and_ownership_of_a_half_written_block():
    layout = layout_from_scan(7, INFO, STREAMS)
    block = _block().encode()
    cut = block[:block.index(b"#C Acquisition ended")]
    ends = point_ends(cut, layout)
    assert len(ends) == 4  # the header, then 3 points (each its @A line and its data line)
    assert written_by_us(cut + b"0 0.0", ends, layout)  # a line cut by a crash
    assert not written_by_us(cut + b"#C written by someone else\n", ends, layout)
    assert point_ends(cut[:10], layout) is None


@pytest.mark.parametrize("info, streams", [
    ({"title": 3}, STREAMS), ("not a mapping", STREAMS), (INFO, {"img": StreamShape("uint8", (2, 2))}),
    ({**INFO, "sardana": {"columns": ["x"]}}, STREAMS),
])
def test_unusable_descriptions_are_rejected(info, streams):
    with pytest.raises(ScanRejected):
        layout_from_scan(7, info, streams)
