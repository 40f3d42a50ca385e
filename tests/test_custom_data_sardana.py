"""Custom data (Sardana's ``addCustomData``) with a real Sardana: the SPEC and NeXus
writers put them where SPEC_FileRecorder and NXscanH5_FileRecorder do, in the same scan."""

from __future__ import annotations


import h5py
import numpy as np
import pytest

from tests.recorder_helpers import configure, last_scan_id, run_ok
from tests.services import scan_key, wait_done, writer_process
from tests.spec_files import assert_same_scan, scan_block

MACRO = ("ascan_custom_data", "mot01", 0, 1, 4, 0.01)


@pytest.fixture
def writers(redis_url, scan_dir, tmp_path):
    return [writer_process(name, redis_url, scan_dir, tmp_path / f"{name}.log").start()
            for name in ("spec-writer", "nexus-writer")]


def _uvar_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#UVAR")]


def test_custom_data_where_sardana_puts_it(door, writers, redis_url, scan_dir):
    configure(door, redis_url, scan_dir, ScanFile=["oracle.dat", "oracle.h5", "scans.dat", "scans.h5"],
              ScanRecorder=["SPEC_FileRecorder", "NXscanH5_FileRecorder",
                            "RedisBlissRecorder", "RedisBlissRecorder"])
    run_ok(door, *MACRO)
    number = last_scan_id(door)
    key = scan_key(redis_url, number)
    for writer in ("spec-writer", "nexus-writer"):
        assert wait_done(redis_url, key, writer).status == "written"

    ours, oracle = (scan_dir / "scans.dat").read_text(), (scan_dir / "oracle.dat").read_text()
    assert_same_scan(scan_block(scan_dir / "scans.dat", number), scan_block(scan_dir / "oracle.dat", number))
    # the same #UVAR lines, text for text (float32 as Sardana prints it, 0.1 + 0.2 exactly)
    assert _uvar_lines(ours) == _uvar_lines(oracle)
    assert "#UVAR after_float32 0.1" in _uvar_lines(ours)
    assert "#UVAR before_float 0.30000000000000004" in _uvar_lines(ours)
    # before the scan: above its #S line; after it: after its closing line
    assert ours.index("#UVAR greeting") < ours.index(f"#S {number} ")
    assert ours.index("#C Acquisition ended") < ours.index("#UVAR after_bool")

    with h5py.File(scan_dir / "scans.h5") as f, h5py.File(scan_dir / "oracle.h5") as o:
        entry = f"entry{number}"
        for group in ("custom_data", "sample"):
            assert f[f"{entry}/{group}"].attrs["NX_class"] == o[f"{entry}/{group}"].attrs["NX_class"]
            expected = {name: o[f"{entry}/{group}/{name}"] for name in o[f"{entry}/{group}"]}
            if group == "custom_data":  # kept on purpose: Sardana puts what came before the
                # scan started in /entry (its entry name is not known yet), we in the scan's entry
                expected |= {name: o[f"entry/{group}/{name}"] for name in o[f"entry/{group}"]}
            assert sorted(f[f"{entry}/{group}"]) == sorted(expected), group
            for name, dset in expected.items():
                assert f[f"{entry}/{group}/{name}"].dtype == dset.dtype, name
                np.testing.assert_array_equal(f[f"{entry}/{group}/{name}"][()], dset[()], err_msg=name)
        fitted = f"{entry}/measurement/fitted"
        assert f[fitted].dtype == o[fitted].dtype
        assert f[fitted][()].tobytes() == o[fitted][()].tobytes()  # bit for bit
