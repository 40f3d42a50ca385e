"""Running this project's Tango device servers as real processes, for tests."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tango

from sardana_redis.local_stack.process import free_port, log_tail  # noqa: F401 (free_port: for the tests)
from sardana_redis.local_stack.tango_db import TangoDatabase, TangoServerProcess
from sardana_redis.tango_registration import register_device_server


def writer_properties(redis_url: str, root: Path) -> dict[str, Any]:
    """Tango properties of a writer device following ``redis_url`` into ``root``."""
    return {"redis_url": redis_url, "root_dirs": [str(root)]}


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Poll ``condition`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@contextmanager
def device_server(tango_db: TangoDatabase, workdir: Path, server_class: str, instance: str,
                  devices: dict[str, dict[str, Any]]) -> Iterator[dict[str, tango.DeviceProxy]]:
    """Register ``<server_class>/<instance>`` with ``devices`` (name -> properties), run it
    (``python -m sardana_redis.tango_server``) in its own process group and yield a proxy per
    device once every device answers. The server log is ``workdir/<instance>.log``."""
    for device, properties in devices.items():
        register_device_server(server_class, instance, device, properties)
    argv = [sys.executable, "-m", "sardana_redis.tango_server", server_class, instance]
    with running_server(tango_db, workdir, argv, list(devices)) as proxies:
        yield proxies


@contextmanager
def running_server(tango_db: TangoDatabase, workdir: Path, argv: list[str],
                   devices: list[str]) -> Iterator[dict[str, tango.DeviceProxy]]:
    """Run the already registered device server ``argv`` (``[program, instance]``) in its
    own process group and yield a proxy per device once every device answers. The server
    log is ``workdir/<instance>.log``."""
    server = TangoServerProcess(" ".join(argv[-2:]), workdir, workdir / f"{argv[-1]}.log")
    try:
        server.launch_server([*argv, "-ORBendPoint", "giop:tcp:127.0.0.1:"], tango_db.tango_host)
        proxies = {}
        for device in devices:
            proxy = tango.DeviceProxy(f"tango://{tango_db.tango_host}/{device}")

            def answers(proxy: tango.DeviceProxy = proxy) -> bool:
                try:
                    proxy.ping()
                except tango.DevFailed:
                    return False
                return True

            server.wait_until(answers, f"{device} answering", timeout=10.0)
            proxies[device] = proxy
        yield proxies
    except BaseException:
        print(f"--- {server.log_file}:\n{log_tail(server.log_file)}")
        raise
    finally:
        server.stop()


