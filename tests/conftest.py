import os
import shutil
import subprocess
import sys

import pytest

from sardana_redis.local_stack.services import ServiceProcess

pytest_plugins = ["tests.fixtures_redis", "tests.fixtures_sardana", "tests.reliability.report"]

#: Fixtures that start servers (Redis Stack, the Tango database, Sardana).
STACK_FIXTURES = frozenset({"redis_server", "empty_redis_url", "redis_url", "small_redis",
                            "tango_db", "sardana_server", "door", "redis_ha"})


def pytest_configure(config):
    config.addinivalue_line("markers", "stack: needs real servers (Redis Stack, Tango, Sardana); "
                                       "the quick subset is pytest -m 'not stack'")


def pytest_collection_modifyitems(config, items):
    """Tests that use a server fixture, or live in tests/reliability, are marked ``stack``."""
    for item in items:
        if STACK_FIXTURES & set(getattr(item, "fixturenames", ())) or "reliability" in item.path.parts:
            item.add_marker(pytest.mark.stack)


#: How much of the end of Sardana's logs a failed test's report shows.
SARDANA_LOG_TAIL = 6000


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that used the session's Sardana server shows the end of its logs (its
    console and its own log file): a hung or failed macro is explained there, not in pytest's."""
    outcome = yield
    report = outcome.get_result()
    server = getattr(item, "funcargs", {}).get("sardana_server")  # the closure's, once set up
    if not report.failed or server is None:
        return
    for path in (server.log_file, server.sardana_log):
        if path.is_file():
            report.sections.append((f"end of {path.name}",
                                    path.read_text(errors="replace")[-SARDANA_LOG_TAIL:]))
    py_spy = shutil.which("py-spy", path=os.pathsep.join([os.path.dirname(sys.executable),
                                                          os.environ.get("PATH", "")]))
    if py_spy and server.pid:  # where each of Sardana's threads is (py-spy: if installed)
        dump = subprocess.run([py_spy, "dump", "--pid", str(server.pid)], capture_output=True,
                              text=True, timeout=60)
        report.sections.append(("Sardana's threads (py-spy dump)", dump.stdout + dump.stderr))


@pytest.fixture(autouse=True)
def _stop_services(monkeypatch):
    """Every service process a test starts is stopped at its end, even when the test fails."""
    started = []
    start = ServiceProcess.start

    def recording_start(self, *args, **kwargs):
        started.append(self)
        return start(self, *args, **kwargs)

    monkeypatch.setattr(ServiceProcess, "start", recording_start)
    yield
    for service in started:
        service.stop()


@pytest.fixture
def root(tmp_path):
    """An empty folder the writers under test may write under."""
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture(autouse=True, scope="session")
def _spool_folder(tmp_path_factory):
    """Publishers of the tests (and the MacroServers they start) spool under the test tree."""
    import os

    from sardana_redis.publishing.spool import SPOOL_ENV

    folder = tmp_path_factory.mktemp("spool")
    old = os.environ.get(SPOOL_ENV)
    os.environ[SPOOL_ENV] = str(folder)
    yield folder
    if old is None:
        os.environ.pop(SPOOL_ENV, None)
    else:
        os.environ[SPOOL_ENV] = old
