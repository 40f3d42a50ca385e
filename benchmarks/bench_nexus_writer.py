"""The NeXus writer: Redis -> HDF5 throughput beside the ESRF's blisswriter, and beside
Sardana's NXscanH5_FileRecorder.

1. Scalars: 500,000 points of #Pt No, mot01, ct01-ct08, dt published straight into Redis
   with blissdata (big chunks), with the ``scan_info`` and ``h5maps`` the RedisBlissRecorder
   would publish (``describe_scan`` + ``build_scan_info`` + ``build_h5maps``). This writer
   (in-process ``ScanFollower`` + ``NexusScanWriter``) is started once the scan is closed and
   timed until its done record (best of 2). The same data is published again as a copy whose
   h5map names another file, for blisswriter: (i) ``blisswriter run``, started before the copy
   is published (it only follows new scans), until "Saving complete" in its log; (ii)
   blisswriter's own ``ScanWriter`` run in process on the closed copy, the same conditions as
   this writer. The two writers never share a file.
2. 2D frames: 200 frames of 512x512 uint16 (a smooth pattern that moves from frame to frame,
   plus 5 bits of noise), with #Pt No, mot01 and dt; the same three measurements, in MB/s of
   uncompressed frames; compressed size and ratio of each file.
3. Beside Sardana: ``ascan mot01 0 10 200 0.001`` in a local Sardana, measurement group
   ct01-ct04 + oned01, its ``ScanFile=['sardana.h5']`` written (a) by Sardana's
   NXscanH5_FileRecorder inside the MacroServer, (b) by the ``sardana-redis nexus-writer``
   process (the entry routed to RedisBlissRecorder with ``ScanRecorder``); a and b alternate
   (3 rounds). Macro wall time, MacroServer CPU, the writer's CPU and the time from the end
   of the macro until the file is complete (the writer's done record); both files must have
   the same measurement datasets, all with every point.

Every file is opened and checked (dataset shapes, values), so a writer that silently did
nothing fails the benchmark.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream
from sardana.macroserver.scan.scandata import ColumnDesc

from benchmarks.common import (COUNTERS, MOTOR, SESSION, FakeMacro, FakeRecordList, bench_main,
                               datadesc, print_table, redis_server, verdict)
from benchmarks.writer_side_by_side import (LoggedProcess, SideBySide, follow_in_process,
                                            ledger_from_now, report_side_by_side,
                                            run_side_by_side, stopping)
from sardana_redis.local_stack.process import log_tail
from sardana_redis.publishing.h5maps import build_h5maps
from sardana_redis.nexus_writer.writer import NexusScanWriter
from sardana_redis.redis_url import normalize_redis_url
from sardana_redis.publishing.sardana_adapter import describe_scan
from sardana_redis.publishing.scan_info import build_scan_info, end_scan_info
from sardana_redis.scan_model import EndReason, RequestedFile, ScanDescription, ScanEnd

TARGET_POINTS_S = 500_000
TARGET_MB_S = 100.0
FRAME = (512, 512)
SARDANA_MG = ("mg_bench_nx", ["ct01", "ct02", "ct03", "ct04", "oned01"])
BLISSWRITER = str(Path(sys.executable).parent / "blisswriter")


# --- scans: description, data, publication ------------------------------------------------

def describe(number: int, npoints: int, path: Path, frames: bool) -> ScanDescription:
    """What the RedisBlissRecorder would describe for this scan, requesting NeXus file
    ``path``: #Pt No, mot01, ct01-ct08, dt; or, with ``frames``, #Pt No, mot01, a 512x512
    uint16 channel ``twod01`` and dt. The identity has no ``path``: blisswriter skips it."""
    cols = datadesc(npoints)
    if frames:
        twod = ColumnDesc(name="tango://127.0.0.1:10000/expchan/twodctrl01/1", label="twod01",
                          dtype="uint16", shape=list(FRAME), instrument="", output=True,
                          source="tango://127.0.0.1:10000/expchan/twodctrl01/1/value",
                          conditioning="", normalization=0, plot_type=2, plot_axes=["<idx>"],
                          data_units="No unit", value_ref_enabled=False)
        cols = [cols[0], cols[1], twod, cols[-1]]
    rl = FakeRecordList(number, npoints)
    rl.env.update(datadesc=cols, ScanDir=str(path.parent), ScanFile=[path.name])
    if frames:
        rl.env["counters"] = [twod.name]
    macro = FakeMacro("", npoints)
    env = {"RedisSession": SESSION, "ScanRecorder": ["RedisBlissRecorder"]}
    desc = describe_scan(rl.env, macro, lambda name, default: env.get(name, default))
    assert [f.path for f in desc.files] == [str(path)], desc.files
    return dataclasses.replace(desc, identity=dataclasses.replace(desc.identity, path=None))


def for_blisswriter(desc: ScanDescription, path: Path) -> ScanDescription:
    """The same scan, requesting ``path`` instead, with an identity path (blisswriter writes
    only scans that have one, and then every file of their h5maps)."""
    return dataclasses.replace(desc, files=(RequestedFile(str(path), "nexus"),),
                               identity=dataclasses.replace(desc.identity, path=str(path)))


@functools.lru_cache(maxsize=2)
def scalar_data(npoints: int) -> dict[str, np.ndarray]:
    """Every point of the scalar streams, by stream name: #Pt No, mot01 from 0 to 10, counts
    (Poisson noise around a slowly varying rate, as float64, as Sardana's counters give them)
    and dt (10 ms steps with some jitter). Deterministic."""
    rng = np.random.default_rng(npoints)
    i = np.arange(npoints)
    data = {"#Pt No": i, MOTOR: np.linspace(0.0, 10.0, npoints),
            "dt": np.cumsum(0.01 + rng.random(npoints) * 1e-3)}
    rate = 1e4 * (1.5 + np.sin(i / 5000.0))
    for k, (_, label) in enumerate(COUNTERS):
        data[label] = rng.poisson(rate / (k + 1)).astype("float64")
    return data


def frames_chunk(start: int, stop: int) -> np.ndarray:
    """Frames start..stop-1: a smooth 2D pattern (a Gaussian peak on a slope, moving with the
    frame number) plus 0-31 counts of noise, uint16; frame ``n`` is always the same."""
    y, x = np.mgrid[0:FRAME[0], 0:FRAME[1]].astype("float32")
    out = np.empty((stop - start, *FRAME), dtype="uint16")
    for k, n in enumerate(range(start, stop)):
        noise = np.random.default_rng(n).integers(0, 32, FRAME, dtype="uint16")
        cx, cy = 128 + n, 256 + 50 * np.sin(n / 20)
        peak = 20000 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 40.0 ** 2))
        out[k] = (500 + x + 0.5 * y + peak).astype("uint16") + noise
    return out


@functools.lru_cache(maxsize=1)
def all_frames(nframes: int) -> np.ndarray:
    return frames_chunk(0, nframes)


def publish(url: str, desc: ScanDescription, npoints: int, chunk: int, frames: bool) -> str:
    """Publish a complete scan, ``chunk`` points per ``send``, as the recorder would (scan_info
    and h5maps at creation, end info and final h5maps at close); returns its key. The data is
    made before the scan is created."""
    data = dict(scalar_data(npoints))
    if frames:
        data["twod01"] = all_frames(npoints)
    store = DataStore(normalize_redis_url(url))
    info = build_scan_info(desc)
    info["h5maps"] = build_h5maps(desc)
    scan = store.create_scan(desc.identity.as_blissdata(), info=info)
    streams = {c.stream: scan.create_stream(Stream.make_definition(c.stream, c.dtype, c.shape))
               for c in desc.columns}
    scan.prepare()
    scan.start()
    for start in range(0, npoints, chunk):
        stop = min(start + chunk, npoints)
        for name, stream in streams.items():
            stream.send(data[name][start:stop].astype(stream.dtype, copy=False))
    scan.stop()
    end = ScanEnd(desc.start_time, EndReason.SUCCESS)
    scan.info.update({**end_scan_info(end), "h5maps": build_h5maps(desc, end)})
    scan.close()
    return scan.key


def check_file(path: Path, number: int, npoints: int, frames: bool) -> dict[str, float]:
    """Every measurement dataset has ``npoints`` points, with the published values; returns
    the file size and, for frames, the stored (compressed) size of the frames."""
    with h5py.File(path, "r", locking=False) as f:
        meas = f[f"entry{number}/measurement"]
        names = ["Pt_No", MOTOR, "dt"] + (["twod01"] if frames else [c for _, c in COUNTERS])
        for name in names:
            assert meas[name].shape[0] == npoints, f"{path}: {name} {meas[name].shape}"
        data = scalar_data(npoints)
        for name in names:
            if name != "twod01":
                values = data["#Pt No" if name == "Pt_No" else name]
                assert np.array_equal(meas[name][:], values), f"{path}: {name} values differ"
        out = {"size": path.stat().st_size}
        if frames:
            dset = meas["twod01"]
            assert dset.shape == (npoints, *FRAME) and dset.dtype == np.uint16, dset
            for n in (0, npoints // 2, npoints - 1):
                assert np.array_equal(dset[n], frames_chunk(n, n + 1)[0]), f"{path}: frame {n}"
            out["stored"] = dset.id.get_storage_size()
            out["compression"] = f"{dset.compression} {dset.compression_opts}" + \
                                 (" + shuffle" if dset.shuffle else "") + f", chunks {dset.chunks}"
        assert f[f"entry{number}/end_reason"][()] in (b"SUCCESS", "SUCCESS"), path
    return out


# --- the writers ---------------------------------------------------------------------------

def blisswriter_in_process(url: str, key: str) -> dict[str, float]:
    """blisswriter's ScanWriter on the closed scan ``key``, in this process."""
    from blisswriter.scan_writer import ScanWriter, ScanWritingState, ScanWritingStatus

    scan = DataStore(normalize_redis_url(url)).load_scan(key)
    status = ScanWritingStatus()
    c0, t0 = time.process_time(), time.perf_counter()
    ScanWriter(scan, status).run()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert status.state is ScanWritingState.COMPLETE, (status.state, status.state_msg)
    return {"seconds": elapsed, "cpu": cpu}


class BlissWriterProcess(LoggedProcess):
    """``blisswriter run`` (the ESRF's standalone writer) in its own process group."""

    poll = 0.01

    def __init__(self, url: str, log_file: Path) -> None:
        super().__init__([BLISSWRITER, "run", normalize_redis_url(url)],  # with ?protocol=2
                         log_file, "Listening to", "blisswriter")

    def start(self) -> float:
        ready = super().start()
        time.sleep(1.0)  # its first get_next_scan(since="$") must be in Redis before a scan
        return ready

    def wait_saved(self, key: str, timeout: float, poll: float = 0.002) -> float:
        """time.time() when the log said the scan's "Saving complete" (polled)."""
        deadline = time.monotonic() + timeout
        pattern = f"{key} - Saving complete"
        while pattern not in (text := self.log_file.read_text()):
            assert self.proc.poll() is None, log_tail(self.log_file)
            assert time.monotonic() < deadline, log_tail(self.log_file)
            failed = re.search(rf"{re.escape(key)} - (ERROR|CRITICAL)", text)
            assert not failed, log_tail(self.log_file)
            time.sleep(poll)
        return time.time()


def blisswriter_run(proc: BlissWriterProcess, url: str, desc: ScanDescription, npoints: int,
                    chunk: int, frames: bool) -> tuple[str, dict[str, float]]:
    """Publish the copy for the running ``blisswriter run``; times from the copy's creation
    and from its close until "Saving complete", and the process's CPU meanwhile."""
    cpu0, t0 = proc.cpu(), time.time()
    key = publish(url, desc, npoints, chunk, frames)
    closed = time.time()
    saved = proc.wait_saved(key, timeout=300)
    return key, {"from_create": saved - t0, "from_close": saved - closed, "publish": closed - t0,
                 "cpu": proc.cpu() - cpu0}


# --- 1. and 2. throughput --------------------------------------------------------------------

def bench_throughput(url: str, root: Path, bliss: BlissWriterProcess, kind: str, number: int,
                     npoints: int, chunk: int, repeats: int) -> dict[str, Any]:
    frames = kind == "frames"
    ours_dir, bliss_dir = root / "ours", root / "bliss"
    ours_path, bliss_path = ours_dir / f"{kind}.h5", bliss_dir / f"{kind}.h5"
    desc = describe(number, npoints, ours_path, frames)
    names = [f"bench-{kind}-{k}" for k in range(repeats)]
    for name in names:  # cursors set before the scan exists: every writer will see it
        ledger_from_now(url, name)
    t0 = time.perf_counter()
    key = publish(url, desc, npoints, chunk, frames)
    res: dict[str, Any] = {"npoints": npoints, "publish": time.perf_counter() - t0, "runs": []}
    for name in names:
        ours_path.unlink(missing_ok=True)
        # ScanFollower + NexusScanWriter started once the scan is closed, until its done record
        run = follow_in_process(url, name, NexusScanWriter([ours_dir]), key, timeout=300)
        run.update(check_file(ours_path, number, npoints, frames))
        assert run["points"] == npoints, run
        res["runs"].append(run)
    res["ours"] = min(res["runs"], key=lambda r: r["seconds"])
    bkey, res["bliss_run"] = blisswriter_run(bliss, url, for_blisswriter(desc, bliss_path),
                                             npoints, chunk, frames)
    res["bliss_run"].update(check_file(bliss_path, number, npoints, frames))
    res["bliss_runs"] = []
    for _ in range(repeats):
        bliss_path.unlink()
        run = blisswriter_in_process(url, bkey)
        run.update(check_file(bliss_path, number, npoints, frames))
        res["bliss_runs"].append(run)
    res["bliss_inproc"] = min(res["bliss_runs"], key=lambda r: r["seconds"])
    return res


# --- 3. beside Sardana's NXscanH5_FileRecorder ---------------------------------------------

def check_sardana_file(path: Path, number: int, npoints: int) -> dict[str, tuple]:
    """Every measurement dataset of entry ``number`` has ``npoints`` points; their shapes."""
    with h5py.File(path, "r", locking=False) as f:
        meas = f[f"entry{number}/measurement"]
        shapes = {name: meas[name].shape for name in meas
                  if isinstance(meas.get(name, getlink=True), h5py.HardLink)
                  and isinstance(meas[name], h5py.Dataset)}
        expected = {"Pt_No", "mot01", "dt", *SARDANA_MG[1]}
        assert expected <= set(shapes), f"{path} entry{number}: {sorted(shapes)}"
        assert {s[0] for s in shapes.values()} == {npoints}, f"{path} entry{number}: {shapes}"
        assert len(shapes["oned01"]) == 2, shapes
        assert np.all(np.diff(meas["mot01"][:]) > 0), f"{path} entry{number}: mot01"
    return shapes


SIDE_BY_SIDE = SideBySide(
    recorder="NXscanH5_FileRecorder", writer="NeXus writer", command="nexus-writer",
    scan_file="sardana.h5", check=check_sardana_file,
    session="bench-nexus-sardana",  # numbers restart at 1
    scan=("ascan", "mot01", 0, 10, 200, 0.001), mg=SARDANA_MG, cpu_label="MacroServer CPU",
    small_intervals=2)


# --- tables ------------------------------------------------------------------------------------

def report(scalars: dict[str, Any], frames: dict[str, Any], sar: dict[str, list] | None,
           intervals: int) -> None:
    n, nf = scalars["npoints"], frames["npoints"]
    mb = nf * int(np.prod(FRAME)) * 2 / 1e6
    runs = lambda rs: " ".join(f"{x['seconds']:.2f}" for x in rs)  # noqa: E731
    rows = []
    for label, res, unit, amount in (("scalars", scalars, "points/s", n),
                                     ("2D frames", frames, "MB/s", mb)):
        ours, bi, br = res["ours"], res["bliss_inproc"], res["bliss_run"]
        rows += [
            [f"{label}: this writer, in process (best of {len(res['runs'])})",
             f"{ours['seconds']:.2f}", runs(res["runs"]), f"{amount / ours['seconds']:,.0f} {unit}",
             f"{ours['cpu']:.2f}", f"{ours['size'] / 1e6:.1f}"],
            [f"{label}: blisswriter's ScanWriter, in process (best of {len(res['bliss_runs'])})",
             f"{bi['seconds']:.2f}", runs(res["bliss_runs"]),
             f"{amount / bi['seconds']:,.0f} {unit}",
             f"{bi['cpu']:.2f}", f"{bi['size'] / 1e6:.1f}"],
            [f"{label}: blisswriter run, from the copy's close",
             f"{br['from_close']:.2f}", f"{br['from_create']:.2f} from its creation",
             f"{amount / br['from_close']:,.0f} {unit}", f"{br['cpu']:.2f}",
             f"{br['size'] / 1e6:.1f}"],
        ]
    print_table(f"Redis -> NeXus file: {n:,} points x 11 scalars; {nf} frames 512x512 uint16 "
                f"({mb:.0f} MB) + 3 scalars. Scan closed in Redis before the writer starts (in "
                f"process); blisswriter run follows the copy as it is published "
                f"(targets: >= {TARGET_POINTS_S:,} points/s, >= {TARGET_MB_S:g} MB/s, "
                f">= blisswriter)",
                ["writer", "seconds", "runs (s)", "throughput", "CPU (s)", "file (MB)"], rows)
    for label, res in (("scalars", scalars), ("frames", frames)):
        print(f"{label}: published in {res['publish']:.2f} s (blisswriter's copy: "
              f"{res['bliss_run']['publish']:.2f} s)")
    for who, r in (("this writer", frames["ours"]), ("blisswriter", frames["bliss_inproc"])):
        print(f"frames, {who}: {r['compression']}, {r['stored'] / 1e6:.1f} MB stored, "
              f"ratio {mb * 1e6 / r['stored']:.2f}")

    def best_bliss(r: dict[str, Any]) -> float:  # blisswriter run: its shortest time, from close
        return min(r["bliss_inproc"]["seconds"], r["bliss_run"]["from_close"])

    pts, mbs = n / scalars["ours"]["seconds"], mb / frames["ours"]["seconds"]
    print(f"target >= {TARGET_POINTS_S:,} points/s: {verdict(pts >= TARGET_POINTS_S)} "
          f"({pts:,.0f}); >= blisswriter: "
          f"{verdict(scalars['ours']['seconds'] <= best_bliss(scalars))}")
    print(f"target >= {TARGET_MB_S:g} MB/s: {verdict(mbs >= TARGET_MB_S)} ({mbs:.0f}); "
          f">= blisswriter: {verdict(frames['ours']['seconds'] <= best_bliss(frames))}\n")
    if sar is None:
        return
    report_side_by_side(SIDE_BY_SIDE, sar, intervals)


def run(quick: bool = False, rounds: int | None = None) -> dict:
    npoints, nframes = (50_000, 40) if quick else (500_000, 200)
    rounds = rounds or (1 if quick else 3)
    intervals = 100 if quick else SIDE_BY_SIDE.scan[4]
    repeats = 1 if quick else 2
    with redis_server() as redis_srv, tempfile.TemporaryDirectory(prefix="bench-nexus-") as tmp:
        root = Path(tmp)
        bliss = BlissWriterProcess(redis_srv.url, root / "blisswriter.log")
        with stopping(bliss):
            bliss.start()
            scalars = bench_throughput(redis_srv.url, root, bliss, "scalars", 1, npoints,
                                       50_000, repeats)
            frames = bench_throughput(redis_srv.url, root, bliss, "frames", 2, nframes, 10,
                                      repeats)
        workdir = root / "sardana"
        workdir.mkdir()
        sar = run_side_by_side(SIDE_BY_SIDE, redis_srv.url, redis_srv.process.pid, workdir,
                               rounds, intervals)
    report(scalars, frames, sar, intervals)
    return {"scalars": scalars, "frames": frames, "sardana": sar}


if __name__ == "__main__":
    bench_main(run, __doc__, rounds=True)
