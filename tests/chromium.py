"""A real headless Chromium (Debian's package), driven through the DevTools protocol over
``--remote-debugging-pipe`` with the standard library alone: for the web viewer's tests,
its screenshots and its benchmark.

Chromium reads NUL-terminated JSON commands on its fd 3 and writes the answers on fd 4.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
         "--disable-backgrounding-occluded-windows", "--hide-scrollbars",
         "--window-size=1000,1400", "--remote-debugging-pipe")


def chromium_path() -> str | None:
    return CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")


class Chromium:
    """One headless browser; :meth:`open` a page, then :meth:`evaluate` in it."""

    def __init__(self, path: str | None = None):
        path = path or chromium_path()
        if path is None:
            raise FileNotFoundError("no chromium: apt-get install chromium")
        self._profile = tempfile.mkdtemp(prefix="sardana-redis-chromium-")
        cmd_read, self._cmd = os.pipe()
        self._resp, resp_write = os.pipe()
        # above 9, so that moving them onto 3 and 4 never overwrites one of them
        low = (cmd_read, resp_write)
        cmd_read, resp_write = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in low)
        for fd in low:
            os.close(fd)
        # the pipe ends onto the child's fds 3 and 4 by bash (dash takes no fd above 9), not
        # by a preexec_fn (unsafe with threads)
        self.process = subprocess.Popen(
            ["/bin/bash", "-c", f'exec 3<&{cmd_read} 4>&{resp_write} {cmd_read}<&- '
             f'{resp_write}>&-; exec "$@"', "sh",
             path, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            pass_fds=(cmd_read, resp_write), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(cmd_read)
        os.close(resp_write)
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None
        self._target: str | None = None

    def command(self, method: str, params: dict | None = None, session: str | None = None,
                timeout: float = 30.0) -> dict[str, Any]:
        """Send one DevTools command and return its result (events are skipped)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        sid = self.session if session is None else session
        if sid:
            message["sessionId"] = sid
        os.write(self._cmd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"chromium did not answer {method}")
                chunk = os.read(self._resp, 1 << 20)
                if not chunk:
                    raise ConnectionError("chromium closed its DevTools pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def open(self, url: str) -> str:
        """Open ``url`` in a new tab (instead of the last one), attached to: later commands
        go to it."""
        if self._target:
            self.command("Target.closeTarget", {"targetId": self._target}, session="")
        self._target = target = self.command("Target.createTarget", {"url": url}, session="")["targetId"]
        self.session = self.command("Target.attachToTarget", {"targetId": target, "flatten": True},
                                    session="")["sessionId"]
        return self.session

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = self.command("Runtime.evaluate", {"expression": expression,
                                                   "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, period: float = 0.1) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value, error = self.evaluate(expression), None
            except RuntimeError as exc:  # not defined yet, or a mistake: said at the end
                value, error = None, exc
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression} still false after {timeout} s"
                                   + (f" ({error})" if error else ""))
            time.sleep(period)

    def screenshot(self, path: Path) -> None:
        """A PNG of the page's content (down to its last element)."""
        width, height = self.evaluate(
            "[document.documentElement.scrollWidth, Math.ceil(Math.max(...[...document.body"
            ".children].map(e => e.getBoundingClientRect().bottom + window.scrollY))) + 12]")
        self.command("Emulation.setDeviceMetricsOverride",
                     {"width": max(1000, width), "height": min(max(height, 200), 4000),
                      "deviceScaleFactor": 1, "mobile": False})
        data = self.command("Page.captureScreenshot", {"format": "png", "clip": {
            "x": 0, "y": 0, "width": max(1000, width), "height": min(max(height, 200), 4000),
            "scale": 1}})["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.command("Browser.close", session="", timeout=5)
        except (OSError, TimeoutError, RuntimeError, ConnectionError):
            pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._cmd, self._resp):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
