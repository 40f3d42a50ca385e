"""Pytest fixtures: a real Tango database, a real Sardana server and a Door client.

Everything runs on 127.0.0.1, in its own process group, with all files under
``tmp_path_factory`` directories. One stack for the whole session; Sardana's demo
elements (``sar_demo``) are created once.

To give the Sardana server extra environment (e.g. a Redis URL for a recorder),
override the session-scoped ``sardana_extra_env`` fixture in a conftest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sardana_redis.local_stack.door import DoorClient
from sardana_redis.local_stack.sardana_server import MACRO_PATH, RECORDER_PATH, SardanaServer
from sardana_redis.local_stack.tango_db import TangoDatabase
from tests.recorder_helpers import run_ok
from tests.session_door import SessionDoor

#: Macros the tests run (custom data and the like), next to the project's own.
TEST_MACROS = Path(__file__).parent / "sardana_macros"


@pytest.fixture(scope="session")
def tango_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TangoDatabase]:
    """A Tango database for the session; ``os.environ["TANGO_HOST"]`` points to it
    (restored at the end: taurus needs it, see ``sardana_redis.local_stack.door``)."""
    old_tango_host = os.environ.get("TANGO_HOST")
    with TangoDatabase(tmp_path_factory.mktemp("tango_db")) as db:
        os.environ["TANGO_HOST"] = db.tango_host
        try:
            yield db
        finally:
            if old_tango_host is None:
                os.environ.pop("TANGO_HOST", None)
            else:
                os.environ["TANGO_HOST"] = old_tango_host


@pytest.fixture(scope="session")
def sardana_extra_env() -> dict[str, str]:
    """Extra environment variables of the Sardana server (none by default)."""
    return {}


@pytest.fixture(scope="session")
def sardana_server(
    tango_db: TangoDatabase,
    tmp_path_factory: pytest.TempPathFactory,
    sardana_extra_env: dict[str, str],
) -> Iterator[SardanaServer]:
    """A Sardana server (Pool, MacroServer, Door) with this project's recorders and macros."""
    server = SardanaServer(
        tango_db.tango_host,
        tmp_path_factory.mktemp("sardana"),
        recorder_path=[RECORDER_PATH],
        macro_path=[MACRO_PATH, TEST_MACROS],
        extra_env=sardana_extra_env,
    )
    with server:
        yield server


@pytest.fixture(scope="session")
def door(sardana_server: SardanaServer) -> Iterator[SessionDoor]:
    """A client of the session's Door, with Sardana's demo elements ready and fast motors
    (it restarts Sardana when a macro is stuck: see ``tests/session_door.py``)."""
    client = SessionDoor(sardana_server)
    try:
        client.setup_demo()
        yield client
    finally:
        client.close()


@pytest.fixture
def scan_dir(tmp_path: Path) -> Path:
    """An empty directory for this test's scan files."""
    path = tmp_path / "scans"
    path.mkdir()
    return path


#: Recorder-related environment every test starts from (tests set what they need).
DEFAULT_RECORDER_ENV = {"DataRecorder": [], "ScanRecorder": [], "ScanFile": [],
                        "ActiveMntGrp": "mntgrp01"}


@pytest.fixture(autouse=True)
def _reset_recorder_env(request: pytest.FixtureRequest) -> None:
    """Tests using the Door start with no recorder configured by an earlier test."""
    if "door" in request.fixturenames:
        request.getfixturevalue("door").set_env(**DEFAULT_RECORDER_ENV)


@pytest.fixture(scope="session")
def _mg_1d_2d_created(door: DoorClient) -> str:
    """A measurement group with a counter, the 1D channel and the 2D channel."""
    run_ok(door, "defmeas", "mg_1d2d", ["ct01", "oned01", "twod01"])
    run_ok(door, "set_meas_conf", "plottype", "spectrum", ["oned01"], "mg_1d2d")
    run_ok(door, "set_meas_conf", "plottype", "image", ["twod01"], "mg_1d2d")
    return "mg_1d2d"


@pytest.fixture
def mg_1d_2d(door: DoorClient, _mg_1d_2d_created: str) -> Iterator[str]:
    """The 1D/2D measurement group, active for this test (the default one again after it:
    module-scoped fixtures of the next module, e.g. a ``plotselect``, run before the reset
    of :func:`_reset_recorder_env`)."""
    door.set_env(ActiveMntGrp=_mg_1d_2d_created)
    yield _mg_1d_2d_created
    door.set_env(ActiveMntGrp=DEFAULT_RECORDER_ENV["ActiveMntGrp"])
