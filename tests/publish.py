"""Publishing scans straight into Redis with blissdata (no Sardana): for service tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from sardana_redis.datastore import open_data_store
from blissdata.streams.default import Stream


class FakeScan:
    """A blissdata scan with "#Pt No", "mot01" and "ct01" streams, driven point by point."""

    def __init__(self, url: str, number: int, files: list[str] | None = None, *,
                 session: str = "tests", info: dict[str, Any] | None = None,
                 streams: dict[str, str] | None = None) -> None:
        self.store = open_data_store(url, init=False)
        full_info = {"title": f"ascan mot01 0 1 10 0.1 #{number}", "start_time": "2026-01-01T00:00:00+00:00",
                     "user_name": "tester"}
        if files is not None:
            full_info["sardana"] = {"requested_files": [{"path": f, "format": "spec"} for f in files]}
        full_info.update(info or {})
        self.scan = self.store.create_scan(
            {"name": "ascan", "number": number, "data_policy": "no_policy", "session": session},
            info=full_info)
        self.streams = {}
        if streams is None:
            streams = {"#Pt No": "int64", "mot01": "float64", "ct01": "float64"}
        for name, dtype in streams.items():
            self.streams[name] = self.scan.create_stream(Stream.make_definition(name, dtype, ()))
        self.scan.prepare()
        self.scan.start()
        self.sent = 0

    def send(self, count: int) -> None:
        i = np.arange(self.sent, self.sent + count)
        for name, stream in self.streams.items():
            values = i if stream.dtype == np.int64 else i / 10.0
            stream.send(values.astype(stream.dtype))
        self.sent += count

    def end(self, reason: str = "SUCCESS") -> None:
        self.scan.stop()
        self.scan.info["end_reason"] = reason
        self.scan.close()

    def key(self) -> str:
        return self.scan.key


def publish(url: str, number: int, files: list[str] | None, points: int = 5, **kwargs) -> str:
    """A whole scan at once; returns its key."""
    scan = FakeScan(url, number, files, **kwargs)
    scan.send(points)
    scan.end()
    return scan.key()
