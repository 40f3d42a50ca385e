import pytest

from sardana_redis.local_stack.services import ServiceProcess

pytest_plugins = ["tests.fixtures_redis", "tests.fixtures_sardana", "tests.reliability.report"]


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
