"""``make demo`` / ``make demo-keep`` (``python -m sardana_redis.demo``), run for real:
the whole chain, then its failure paths. Each run gets a private TMPDIR (for omniORB's
socket folders) and a marker in its environment, to check that nothing it started is left
running and no socket folder is left behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from sardana_redis.local_stack.process import free_port
from tests.doc_commands import ROOT
from tests.web_helpers import sse_events

pytestmark = pytest.mark.stack  # starts servers or runs the commands in processes


def processes_with(marker: str) -> list[str]:
    """Command lines of the running processes whose environment holds ``marker``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "environ").read_bytes():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:  # gone meanwhile, or not ours
            pass
    return found


class DemoRun:
    """One ``python -m sardana_redis.demo`` process with its own TMPDIR and marker."""

    def __init__(self, workdir: Path, tmpdir: Path, *args: str) -> None:
        self.workdir, self.tmpdir = workdir, tmpdir
        self.marker = f"demo-test-{uuid.uuid4().hex}"
        env = {**os.environ, "TMPDIR": str(tmpdir), "SARDANA_REDIS_DEMO_TEST": self.marker}
        env.pop("TANGO_HOST", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sardana_redis.demo", "--workdir", str(workdir), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.lines: list[str] = []

    def read_until(self, text: str) -> None:
        """Read its output until a line holds ``text`` (fails if it ends first)."""
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if text in line:
                return
        pytest.fail(f"no {text!r} in:\n" + "\n".join(self.lines) + self.proc.stderr.read())

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        """Wait for its end: (exit status, stderr); then nothing of it may be left."""
        out, err = self.proc.communicate(timeout=timeout)
        self.lines += out.splitlines()
        assert processes_with(self.marker) == []
        assert list(self.tmpdir.iterdir()) == [], "omniORB socket folders left behind"
        return self.proc.returncode, err

    def reported(self, label: str) -> Path:
        """The path the demo reported after ``label:``."""
        line = next(line for line in self.lines if line.strip().startswith(label))
        return Path(line.split(": ", 1)[1].strip())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def short_tmpdir() -> Iterator[Path]:
    """A private TMPDIR short enough for omniORB's unix sockets."""
    path = Path(tempfile.mkdtemp(prefix="demo-", dir="/tmp"))
    yield path
    shutil.rmtree(path)


def spec_points(text: str, number: int) -> int:
    """Data lines of scan ``number`` in a SPEC file."""
    block = text.split(f"\n#S {number} ", 1)[1].split("\n#S ", 1)[0]
    return sum(1 for line in block.splitlines() if line and line[0].isdigit())


def pasted_commands(lines: list[str]) -> list[str]:
    """The shell lines ``--keep`` tells to paste in another shell."""
    start = lines.index("==> The stack keeps running. In another shell, paste:") + 1
    end = next(i for i, line in enumerate(lines) if "Ctrl-C here stops everything" in line)
    return [line.strip() for line in lines[start:end]]


def in_a_fresh_shell(commands: list[str], tmpdir: Path, stdin: str = "") -> str:
    """Run ``commands`` in a new bash with an almost empty environment; its output."""
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/bin:/bin", "TMPDIR": str(tmpdir)}
    out = subprocess.run(["bash", "-c", "set -e\n" + "\n".join(commands)], input=stdin,
                         capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, (commands, out.stdout[-3000:], out.stderr[-3000:])
    return out.stdout


def assert_gaussian_peak(nexus: h5py.File, number: int, exact: bool) -> None:
    """The demo's Gaussian counters peak where their controller puts it (mot01 = 2.5): in a
    step scan (``exact``) each value is the Gaussian of the position the scan recorded; in a
    continuous scan, of the position at the end of each acquisition (not recorded)."""
    measurement = nexus[f"entry{number}/measurement"]
    position, peak = measurement["mot01"][()], measurement["gauss01"][()]
    timer = measurement["gct01"][()]
    assert timer[~np.isnan(timer)] == pytest.approx(0.01 if exact else 0.02)
    if not exact:  # a software trigger the acquisition missed is a NaN, in both files alike
        measured = peak[~np.isnan(peak)]
        assert len(measured) > 0 and np.all((measured >= 10) & (measured <= 1010)), peak
        return
    assert peak.max() > 10 * peak.min()
    expected = 10 + 1000 * np.exp(-((position - 2.5) ** 2) / 2)
    np.testing.assert_allclose(peak, expected)
    np.testing.assert_allclose(measurement["gauss02"][()], (expected - 10) / 2 + 10)


def test_demo_keep_runs_the_whole_chain_then_ctrl_c_stops_it(tmp_path, short_tmpdir):
    demo = DemoRun(tmp_path / "demo-output", short_tmpdir, "--keep")
    try:
        demo.read_until("Ctrl-C here stops everything")  # the last line before it waits
        spec_file = demo.reported("SPEC file (SPEC writer)")
        spec = spec_file.read_text()
        with h5py.File(demo.reported("NeXus file"), "r", locking=False) as nexus:
            for number, points, channel in ((1, 21, "gauss01"), (2, None, "gauss01"),
                                            (3, 6, "ct01")):
                measured = len(nexus[f"entry{number}/measurement/{channel}"])
                assert spec_points(spec, number) == measured == (points or measured) > 0
            assert nexus["entry3/measurement/oned01"].shape == (6, 1024)
            assert_gaussian_peak(nexus, 1, exact=True)
            assert_gaussian_peak(nexus, 2, exact=False)
        assert demo.reported("Plot").read_bytes().startswith(b"\x89PNG")
        viewer = next(line for line in demo.lines if "Live viewer" in line).split(": ", 1)[1]
        event, scans = next(e for e in sse_events(f"{viewer.rstrip('/')}/events/scans?session=demo")
                            if e[0] == "scans")
        assert [s["number"] for s in scans] == [1, 2, 3]
        # What it prints works pasted in a fresh shell: spock scans into Redis and files,
        # every sardana-redis command finds the demo's Redis through $REDIS_URL.
        commands = pasted_commands(demo.lines)
        assert re.fullmatch(r"export TANGO_HOST=127\.0\.0\.1:\d+ REDIS_URL=\S+ IPYTHONDIR=\S+",
                            commands[0])
        spock = next(c for c in commands if " --profile=demo" in c)
        assert spock.split()[0] == str(Path(sys.executable).parent / "spock")
        out = in_a_fresh_shell([commands[0], spock], short_tmpdir,
                               stdin="ascan mot01 0 5 20 0.01\nexit\n")
        assert "Scan #4 ended" in out, out[-3000:]
        cli = [c for c in commands if "sardana-redis " in c]
        out = in_a_fresh_shell([commands[0], *cli], short_tmpdir)
        assert re.search(r"^4\s+ascan\s+demo\s+CLOSED\s+21\s", out, re.MULTILINE), out
        assert "#1 ascan  session 'demo'  state CLOSED" in out
        deadline = time.monotonic() + 60
        while "\n#S 4 " not in spec_file.read_text():  # the SPEC writer wrote spock's scan
            assert time.monotonic() < deadline, "scan 4 not in the SPEC file"
            time.sleep(0.2)
        demo.proc.send_signal(signal.SIGINT)  # Ctrl-C
        status, err = demo.finish()
    finally:
        demo.kill()
    assert status == 0, (status, err[-3000:])
    assert demo.lines[-1] == "==> Demo finished: everything it started is stopped."
    assert all("failed" not in line for line in demo.lines)


def test_redis_port_taken_names_redis_and_its_log(tmp_path, short_tmpdir):
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        demo = DemoRun(tmp_path / "demo-output", short_tmpdir, "--redis-port", str(port))
        try:
            status, err = demo.finish()
        finally:
            demo.kill()
    log = tmp_path / "demo-output" / "redis" / "redis.log"
    assert status == 1
    assert err.startswith("DEMO FAILED: Redis Stack failed: redis-server exited with 1")
    assert f"Redis Stack log: {log}\n" in err
    assert "Address already in use" in log.read_text()


def test_tango_failure_stops_redis_and_the_services(tmp_path):
    long_tmpdir = Path(tempfile.mkdtemp(prefix="demo-a-temporary-folder-too-long-", dir="/tmp"))
    try:
        demo = DemoRun(tmp_path / "demo-output", long_tmpdir)
        try:
            status, err = demo.finish()
        finally:
            demo.kill()
    finally:
        long_tmpdir.rmdir()
    workdir = tmp_path / "demo-output"
    assert status == 1
    assert err.startswith("DEMO FAILED: Tango database failed: ")
    assert "set TMPDIR to a shorter directory" in err
    assert (f"Tango database log: {workdir}/tango/databaseds.log (not written: it failed "
            "before starting)") in err
    assert "Everything the demo started is stopped." in err
    for service in ("spec-writer", "nexus-writer", "memory-tracker"):  # started, then stopped
        assert (workdir / f"{service}.log").stat().st_size > 0


def test_make_runs_this_module():
    """What the tests above run is what ``make demo`` and ``make demo-keep`` run."""
    makefile = (ROOT / "Makefile").read_text()
    assert "\ndemo: demo-venv\n\t$(DEMO_BIN)/python -m sardana_redis.demo\n" in makefile
    assert "\ndemo-keep: demo-venv\n\t$(DEMO_BIN)/python -m sardana_redis.demo --keep\n" in makefile
    # the demo's own environment: the demo extra, not the test tools
    assert "$(DEMO_BIN)/python -m pip install --quiet -e '.[demo]'\n" in makefile
