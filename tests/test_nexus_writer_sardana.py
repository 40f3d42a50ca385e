"""The NeXus writer service with a real Sardana: same datasets as NXscanH5_FileRecorder."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import tango
from blissdata.streams.default import Stream

from sardana_redis.datastore import open_data_store
from sardana_redis.local_stack.process import terminate_process_group
from tests.nexus_files import assert_same_entry, file_differences
from tests.recorder_helpers import configure, last_scan_id, run_ok
from tests.services import scan_key, wait_done, writer_process

WRITER = "nexus-writer"
SCANS = {
    "ascan": ("ascan", "mot01", 0, 1, 5, 0.01),
    "mesh": ("mesh", "mot01", 0, 1, 2, "mot02", 0, 1, 2, 0.01, False),
    "ascanct": ("ascanct", "mot01", 0, 1, 10, 0.1),
}


def configure_nexus(door, redis_url, scan_dir):
    """Sardana writes oracle.h5 itself; scans.h5 is requested from the NeXus writer."""
    configure(door, redis_url, scan_dir, ScanFile=["oracle.h5", "scans.h5"],
              ScanRecorder=["NXscanH5_FileRecorder", "RedisBlissRecorder"])


@pytest.fixture
def nexus_writer(redis_url, scan_dir, tmp_path):
    """The writer service under test, stopped at the end of the test (conftest)."""
    return writer_process(WRITER, redis_url, scan_dir, tmp_path / "writer.log").start()


def check_written(redis_url, scan_dir, number):
    record = wait_done(redis_url, scan_key(redis_url, number), WRITER)
    assert record.status == "written", record
    assert_same_entry(scan_dir / "scans.h5", scan_dir / "oracle.h5", number)


@pytest.mark.parametrize("name", SCANS)
def test_datasets_equal_sardanas(name, door, nexus_writer, redis_url, scan_dir):
    configure_nexus(door, redis_url, scan_dir)
    run_ok(door, "plotselect", ["ct01", "ct02"])
    macro, *params = SCANS[name]

    run_ok(door, macro, *params)

    check_written(redis_url, scan_dir, last_scan_id(door))


@pytest.fixture(scope="module")
def mg_1d_2d(door):
    run_ok(door, "defmeas", "mg_nx_1d2d", ["ct01", "oned01", "twod01"])
    run_ok(door, "set_meas_conf", "plottype", "spectrum", ["oned01"], "mg_nx_1d2d")
    return "mg_nx_1d2d"


def test_1d_2d_and_stopped_scans(door, mg_1d_2d, nexus_writer, redis_url, scan_dir):
    configure_nexus(door, redis_url, scan_dir)
    door.set_env(ActiveMntGrp=mg_1d_2d)
    run_ok(door, "ascan", "mot01", 0, 1, 3, 0.01)
    number = last_scan_id(door)
    check_written(redis_url, scan_dir, number)
    with h5py.File(scan_dir / "scans.h5", "r", locking=False) as f:
        twod = f[f"entry{number}/measurement/twod01"]
        assert twod.ndim == 3 and twod.compression == "gzip"

    run = door.start("ascan", "mot01", 0, 1, 200, 0.02).wait_status("step")
    time.sleep(0.5)
    assert run.stop().stopped
    number = last_scan_id(door)
    check_written(redis_url, scan_dir, number)
    with h5py.File(scan_dir / "scans.h5", "r", locking=False) as f:
        assert f[f"entry{number}/end_reason"][()].decode() == "USER_ABORT"


READER = """
import sys, time, h5py
path, dataset, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline = time.monotonic() + timeout
while True:
    try:
        f = h5py.File(path, "r", swmr=True)
        break
    except (OSError, KeyError):
        assert time.monotonic() < deadline
        time.sleep(0.05)
seen = []
while time.monotonic() < deadline:
    try:
        d = f[dataset]
    except KeyError:  # opened before the entry existed: SWMR readers see no new objects
        f.close()
        time.sleep(0.05)
        try:
            f = h5py.File(path, "r", swmr=True)
        except OSError:
            pass
        continue
    d.refresh()
    if not seen or d.shape[0] != seen[-1]:
        seen.append(d.shape[0])
    if d.shape[0] >= 5:
        print(" ".join(map(str, seen)), d[:5].tolist())
        break
    time.sleep(0.05)
"""


def test_file_readable_by_another_process_during_the_scan(door, nexus_writer, redis_url, scan_dir):
    configure_nexus(door, redis_url, scan_dir)
    number = last_scan_id(door) + 1
    path = scan_dir / "scans.h5"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path),
                               f"entry{number}/measurement/mot01", "60"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = door.start("ascan", "mot01", 0, 1, 40, 0.1)
    out, err = reader.communicate(timeout=90)
    assert run.wait(120).ok
    assert reader.returncode == 0, err
    lengths, values = out.split(" [")
    assert len(lengths.split()) >= 2, f"the reader saw the dataset grow: {lengths}"
    check_written(redis_url, scan_dir, number)


def test_blisswriter_and_this_writer_agree(door, nexus_writer, redis_url, scan_dir, tmp_path):
    """This writer writes the Sardana scan; the ESRF writer writes an exact copy of it
    (same streams, scan_info and h5map, only the file path changed): both files must agree."""
    configure_nexus(door, redis_url, scan_dir)
    run_ok(door, "plotselect", ["ct01", "ct02"])
    run_ok(door, "ascan", "mot01", 0, 1, 5, 0.01)
    number = last_scan_id(door)
    key = scan_key(redis_url, number)
    assert wait_done(redis_url, key, WRITER).status == "written"

    bliss_file = tmp_path / "bliss" / "scans.h5"
    bliss_file.parent.mkdir()
    with open(tmp_path / "blisswriter.log", "wb") as log:
        bliss = subprocess.Popen([str(Path(sys.executable).parent / "blisswriter"), "run",
                                  f"{redis_url}?protocol=2"], stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    try:
        time.sleep(3)  # blisswriter follows the scans created after it started
        copy_scan(redis_url, key, str(scan_dir / "scans.h5"), str(bliss_file), session="copies")
        deadline = time.monotonic() + 60
        while "Saving complete" not in (tmp_path / "blisswriter.log").read_text():
            assert bliss.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "blisswriter.log").read_text()[-3000:]
            time.sleep(0.2)
    finally:
        terminate_process_group(bliss, "blisswriter")
    ours = scan_dir / "scans.h5"
    assert_same_entry(ours, bliss_file, number)
    assert_same_entry(bliss_file, ours, number)


def copy_scan(url: str, key: str, old_path: str, new_path: str, session: str) -> None:
    """Publish a copy of a closed scan whose h5map points at ``new_path``."""
    store = open_data_store(url, init=False)
    scan = store.load_scan(key)
    info = dict(scan.info)
    info["h5maps"] = {new_path: info["h5maps"][old_path]}
    copy = store.create_scan({"name": scan.name, "number": scan.number, "data_policy": "no_policy",
                              "session": session, "path": new_path},
                             info={k: v for k, v in info.items() if k not in ("end_time", "end_reason")})
    streams = {}
    for name, stream in scan.streams.items():
        definition = Stream.make_definition(name, "json") if stream.kind == "json" else \
            Stream.make_definition(name, stream.dtype, stream.shape)
        streams[name] = copy.create_stream(definition)
    copy.prepare()
    copy.start()
    for name, stream in scan.streams.items():
        data = stream[:]
        if stream.kind == "json":
            for value in data:
                streams[name].send(value)
        elif len(data):
            streams[name].send(data)
    copy.stop()
    copy.info.update({k: info[k] for k in ("end_time", "end_reason") if k in info})
    copy.info["h5maps"] = info["h5maps"]
    copy.close()



#: Differences with NXscanH5_FileRecorder's files kept on purpose (docs/writers.md,
#: "Differences kept on purpose", NeXus), as patterns of where they are (see
#: tests.nexus_files.file_differences): whatever is not listed must be equal.
KEPT_DIFFERENCES = [
    r"/@creator#value",                            # the program that wrote the file
    r"/@file_name#value",                          # two files (ours: checked apart)
    r"/@file_time#value",                          # instants of two programs
    r"/@default",                                  # silx/h5web default plot...
    r"/entry\d+@default",
    r"/entry\d+/plot_\d+@(signal|axes|auxiliary_signals)",  # ...NeXus 3 NXdata...
    r"/entry\d+/plot_\d+(/[^/]+)?",                # ...also for 2D and a fallback curve
    r"/entry\d+/program_name#value",               # "sardana (sardana_redis)"
    r"/entry\d+/(start_time|macro_start_time|end_time)#value",  # instants, with time zone
    r"/entry\d+@epoch#value",                      # a true epoch (Sardana's: local time as UTC)
    r"/entry\d+/end_reason",                       # blissdata's end reason
    r".*#link",                                    # soft links where Sardana makes hard ones
    r"/entry\d+/measurement/[^/]+@sardana_value_ref",  # marks value-reference columns
]


def kept_on_purpose(*extra: str):
    patterns = KEPT_DIFFERENCES + list(extra)
    return lambda where: any(re.fullmatch(p, where) for p in patterns)


#: Sardana 3.7 fails to make the virtual dataset of its references ("No conversion path for
#: dtype: dtype('<U')") and keeps them as strings under "_<name>"; this writer makes it.
VALUE_REFERENCES = [r"/entry\d+/measurement/_?twod01"]


@pytest.fixture
def snapshot(door):
    """A pre-scan snapshot of motors in instruments (/slit, /mirror), a pseudo motor and a
    1D channel."""
    run_ok(door, "defsnap", ["mot01", "mot03", "gap01", "oned01"])
    yield
    run_ok(door, "udefsnap")


def test_whole_files_equal_sardanas(door, mg_1d_2d, snapshot, nexus_writer, redis_url, scan_dir,
                                    tmp_path):
    """Sardana's NXscanH5_FileRecorder and this writer on the same scans: whole files equal
    but for the differences kept on purpose (checked item by item, value by value)."""
    pattern = f"h5file://{scan_dir}/twod01_{{index:03d}}.h5"
    configure_nexus(door, redis_url, scan_dir)
    numbers = {}
    run_ok(door, "plotselect", ["ct01", "ct02"])
    run_ok(door, "ascan", "mot01", 0, 1, 3, 0.01)
    numbers["ascan"] = last_scan_id(door)
    run_ok(door, "mesh", "mot01", 0, 1, 2, "mot02", 0, 1, 1, 0.01, False)
    numbers["mesh"] = last_scan_id(door)
    door.set_env(ActiveMntGrp=mg_1d_2d, DataCompressionRank=1)
    try:
        run_ok(door, "ascan", "mot01", 0, 1, 2, 0.01)
        numbers["1d_2d"] = last_scan_id(door)
        run_ok(door, "set_meas_conf", "valuerefpattern", pattern, ["twod01"], mg_1d_2d)
        run_ok(door, "set_meas_conf", "valuerefenabled", "True", ["twod01"], mg_1d_2d)
        run_ok(door, "set_meas_conf", "plottype", "image", ["twod01"], mg_1d_2d)
        twod01 = tango.DeviceProxy(door.macro_server.getElementInfo("twod01").full_name)
        twod01.write_attribute("SavingEnabled", True)  # the dummy writes the files it names
        try:
            run_ok(door, "ascan", "mot01", 0, 1, 2, 0.01)
            numbers["value_refs"] = last_scan_id(door)
        finally:
            run_ok(door, "set_meas_conf", "valuerefenabled", "False", ["twod01"], mg_1d_2d)
            run_ok(door, "set_meas_conf", "plottype", "no", ["twod01"], mg_1d_2d)
            twod01.write_attribute("SavingEnabled", False)
    finally:
        door.remove_env("DataCompressionRank")
    differences = {}
    for name, number in numbers.items():
        assert wait_done(redis_url, scan_key(redis_url, number), WRITER).status == "written"
        # without DataCompressionRank, Sardana compresses nothing, this writer every column
        allowed = kept_on_purpose(*[r".*#compression"] * (name in ("ascan", "mesh")),
                                  *VALUE_REFERENCES * (name == "value_refs"))
        differences[name] = file_differences(scan_dir / "scans.h5", scan_dir / "oracle.h5",
                                             number, allowed)
    assert not any(differences.values()), "\n".join(
        f"{name}: {d}" for name, found in differences.items() for d in found)
    with h5py.File(scan_dir / "scans.h5", "r", locking=False) as f:
        assert f.attrs["file_name"] == str(scan_dir / "scans.h5")
    assert_value_references(scan_dir / "scans.h5", scan_dir / "oracle.h5", numbers["value_refs"])
    assert "WARNING" not in (tmp_path / "writer.log").read_text()  # e.g. "stream ... not in the scan"
    assert_silx_default_plots(scan_dir / "scans.h5")


def assert_value_references(ours: Path, oracle: Path, number: int) -> None:
    """The virtual dataset is made of the images Sardana's references name, and plotted."""
    with h5py.File(ours, "r", locking=False) as f, h5py.File(oracle, "r", locking=False) as o:
        refs = [r.decode() for r in o[f"entry{number}/measurement/_twod01"]]
        vds = f[f"entry{number}/measurement/twod01"]
        assert vds.is_virtual and vds.ndim == 3 and vds.shape[0] == len(refs) == 3
        assert vds.attrs["units"] == o[f"entry{number}/measurement/_twod01"].attrs["units"]
        for i, ref in enumerate(refs):
            path, _, dataset = ref.removeprefix("h5file://").partition("::")
            with h5py.File(path, "r", locking=False) as src:
                np.testing.assert_array_equal(vds[i], src[dataset or "dataset"][()])
        plots = [g for name, g in f[f"entry{number}"].items() if name.startswith("plot_")]
        assert any(g.attrs["signal"] == "twod01" and g["twod01"].ndim == 3 for g in plots)


def assert_silx_default_plots(path: Path) -> None:
    """silx's default-plot lookup (silx view, h5web alike) finds a valid plot in every entry."""
    from silx.io import nxdata

    with h5py.File(path, "r", locking=False) as f:
        assert nxdata.get_default(f) is not None
        for name, entry in f.items():
            default = nxdata.get_default(entry)
            assert default is not None and default.is_valid, name
