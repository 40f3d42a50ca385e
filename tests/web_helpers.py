"""The web viewer in tests and benchmarks: ``sardana-redis web`` as a real process, and a
minimal server-sent-event client (the standard library's)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sardana_redis.local_stack.services import ServiceProcess
from sardana_redis.web.app import STARTED, address_in


def start_web(url: str, log_file: Path, *extra: str) -> tuple[ServiceProcess, str]:
    """``sardana-redis web --port 0`` on ``url``: the process and the page's address."""
    service = ServiceProcess("web", ["--redis-url", url, "--port", "0", *extra], log_file)
    service.start(ready=STARTED)
    return service, address_in(service.log())


def sse_events(url: str, timeout: float = 30.0) -> Iterator[tuple[str, Any]]:
    """(event, JSON data) of a server-sent event stream."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        event, data = "message", []
        for raw in response:
            line = raw.decode().rstrip("\n")
            if not line:
                if data:
                    yield event, json.loads("\n".join(data))
                event, data = "message", []
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())


def follow_scan(base: str, key: str, timeout: float = 60.0) -> list[dict]:
    """Every message of a scan's event stream until the scan is done."""
    messages, deadline = [], time.monotonic() + timeout
    for event, data in sse_events(f"{base.rstrip('/')}/events/scan/{key}", timeout):
        if event == "scan":
            messages.append(data)
            if data["done"]:
                return messages
        if time.monotonic() > deadline:
            break
    raise TimeoutError(f"scan {key} not done after {timeout} s")
