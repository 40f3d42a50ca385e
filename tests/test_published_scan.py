"""The reader's model of a published scan (pure)."""

from __future__ import annotations

import pytest

from sardana_redis.published_scan import PublishedScan
from sardana_redis.scan_model import ScanRejected


def test_a_sardana_scan_and_a_foreign_one():
    scan = PublishedScan.parse({"sardana": {
        "beamline": "bl13", "columns": [{"stream": "mot01", "label": "mot01"}, {"label": "x"}],
        "requested_files": [{"path": "/d/a.h5"}, {"path": "/d/b.dat", "format": "spec"},
                            {"path": "/d/c.txt", "format": "nexus"}]}})
    assert scan.beamline == "bl13" and [c.stream for c in scan.columns] == ["mot01"]
    assert scan.files_of("nexus") == ["/d/a.h5", "/d/c.txt"] and scan.files_of("spec") == ["/d/b.dat"]
    foreign = PublishedScan.parse({"title": "from bliss"})
    assert foreign.columns == () and foreign.files_of("nexus") == [] and foreign.beamline is None


@pytest.mark.parametrize("info", [
    [], {"sardana": []}, {"sardana": {"columns": {}}}, {"sardana": {"columns": [3]}},
    {"sardana": {"requested_files": "x"}}, {"sardana": {"requested_files": [{"path": 3}]}},
])
def test_malformed_parts_are_rejected_with_what_is_wrong(info):
    with pytest.raises(ScanRejected):
        PublishedScan.parse(info)

