"""The systemd units in deploy/systemd: each unit's ExecStart, with its EnvironmentFile
substituted, runs for real against a test Redis until it logs ready, and stops with
exit status 0 on the unit's KillSignal; ``systemd-analyze verify`` accepts the units;
the docs show them as they are shipped."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from sardana_redis.local_stack.process import free_port
from sardana_redis.local_stack.process import log_tail, terminate_process_group
from tests.doc_commands import ROOT, substitute

UNITS = ROOT / "deploy" / "systemd"
#: Where the units expect the project's virtualenv on a beamline host.
SITE_BIN = "/opt/sardana/venv/bin/"
#: unit file, instance, what its log says once it is ready
SERVICES = [
    ("blredis.service", "", "Ready to accept connections"),
    ("blredis-sentinel.service", "", "+monitor master"),
    ("sardana-redis@.service", "spec-writer", "Waiting for scan"),
    ("sardana-redis@.service", "nexus-writer", "Waiting for scan"),
    ("sardana-redis@.service", "memory-tracker", "INIT |"),
]


@dataclass
class Unit:
    """The [Service] settings of one unit file, for one instance (``%i``)."""

    path: Path
    instance: str

    def settings(self) -> dict[str, str]:
        """``Key=value`` lines of the file, ``%i`` replaced by the instance (last one wins)."""
        found = {}
        for line in self.path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
                key, value = line.split("=", 1)
                found[key.strip()] = value.strip().replace("%i", self.instance)
        return found

    def environment(self) -> dict[str, str]:
        """The variables of its EnvironmentFile, read from the shipped copy in deploy/systemd."""
        name = Path(self.settings()["EnvironmentFile"].lstrip("-")).name
        variables = {}
        for line in (UNITS / name).read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                variables[key.strip()] = value.strip()
        return variables

    def command(self) -> list[str]:
        """ExecStart as systemd runs it: ``$VAR`` split on blanks, ``${VAR}`` kept whole."""
        env = self.environment()
        words = []
        for word in shlex.split(self.settings()["ExecStart"]):
            if re.fullmatch(r"\$\w+", word):
                words += env.get(word[1:], "").split()
            else:
                words.append(re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), word))
        return words

    def stop_signal(self) -> signal.Signals:
        return signal.Signals[self.settings().get("KillSignal", "SIGTERM")]


def on_this_host(command: list[str], required: dict[str, str],
                 optional: dict[str, str]) -> list[str]:
    """The unit's command with this environment's program and the test's values in place
    of the site's (see :func:`tests.doc_commands.substitute`)."""
    assert command[0].startswith(SITE_BIN), command
    line = shlex.join([str(Path(sys.executable).parent / command[0][len(SITE_BIN):]),
                       *command[1:]])
    return shlex.split(substitute(line, required, optional))


def wait_ready(proc: subprocess.Popen, log_file: Path, ready: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while ready not in log_tail(log_file, 20000):
        assert proc.poll() is None, f"exited with {proc.returncode}:\n{log_tail(log_file)}"
        assert time.monotonic() < deadline, f"not ready:\n{log_tail(log_file)}"
        time.sleep(0.05)


@pytest.mark.parametrize("unit_file, instance, ready", SERVICES,
                         ids=[s[1] or s[0] for s in SERVICES])
def test_unit_runs_then_stops_on_its_kill_signal(unit_file, instance, ready, redis_url, tmp_path):
    unit = Unit(UNITS / unit_file, instance)
    port = free_port()
    primary = redis_url.removeprefix("redis://")
    if unit_file == "blredis.service":
        required = {"--port 6379": f"--port {port}", "/var/lib/blredis": str(tmp_path)}
    elif unit_file == "blredis-sentinel.service":
        required = {"--port 26379": f"--port {port}", "/var/lib/blredis-sentinel": str(tmp_path),
                    "--monitor h1:6379": f"--monitor {primary}", ",10.0.0.11": ""}
    else:
        required = {"redis://localhost:6379": redis_url}
    command = on_this_host(unit.command(), required, {"/beamline/data": str(tmp_path)})
    log_file = tmp_path / "journal.log"
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=tmp_path, start_new_session=True,
                                env={**os.environ, **unit_environment(unit)})
    try:
        wait_ready(proc, log_file, ready)
        if unit_file == "blredis.service":
            client = redis.Redis(port=port)
            assert {"ReJSON", "search"} <= {m[b"name"].decode() for m in client.module_list()}
            client.close()
        if unit_file == "blredis-sentinel.service":
            with redis.Redis(port=port, decode_responses=True) as client:
                assert client.sentinel_get_master_addr_by_name("sardana") == \
                    ("127.0.0.1", int(primary.rsplit(":", 1)[1]))
        os.killpg(proc.pid, unit.stop_signal())  # systemd signals the whole control group
        assert proc.wait(timeout=10) == 0, log_tail(log_file)
    finally:
        terminate_process_group(proc, unit_file)


def unit_environment(unit: Unit) -> dict[str, str]:
    """The unit's ``Environment=`` assignments."""
    value = unit.settings().get("Environment", "")
    return dict(item.split("=", 1) for item in shlex.split(value))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify(tmp_path):
    """The units as installed (program path made to exist on this host) verify cleanly."""
    names = []
    for unit_file in sorted({s[0] for s in SERVICES}):
        text = (UNITS / unit_file).read_text()
        (tmp_path / unit_file).write_text(text.replace(SITE_BIN,
                                                       f"{Path(sys.executable).parent}/"))
        names += [unit_file.replace("@.", f"@{s[1]}.") for s in SERVICES if s[0] == unit_file]
    out = subprocess.run(["systemd-analyze", "verify", "--man=no",
                          *(str(tmp_path / name) for name in names)],
                         capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stderr) == (0, ""), out.stderr


def test_docs_show_the_units_as_shipped():
    """Each ``# deploy/systemd/NAME`` block of the docs is that file, word for word."""
    shown = {}
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```\w*\n(# deploy/systemd/(\S+?):.*?)```", doc.read_text(), re.S):
            shown[block[1]] = block[0]
    assert set(shown) == {path.name for path in UNITS.iterdir()}, "docs/deployment.md"
    for name, text in shown.items():
        assert text == (UNITS / name).read_text(), name
