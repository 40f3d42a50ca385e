"""The writers' settings, declared once (:mod:`sardana_redis.settings`): the options of
``sardana-redis spec-writer`` / ``nexus-writer`` and the properties of the
``RedisSpecWriter`` / ``RedisNexusWriter`` Tango devices are generated from
:class:`WriterSettings` (``--root`` / ``root_dirs``, ``--max-points`` / ``max_points``...).
The Redis URL is apart: every service takes it (``--redis-url`` / ``redis_url``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sardana_redis.following.file_writer import FileScanWriter
from sardana_redis.following.follower import LEASE, MAX_SCANS
from sardana_redis.following.limits import (
    MAX_POINT_BYTES,
    MAX_POINTS,
    MAX_STREAMS,
    READ_BUDGET,
    ScanLimits,
)
from sardana_redis.settings import setting

_LIMITS = ("scan limits: scans declaring more are refused (log: Scan KEY #N refused: ...); "
           "see docs/writers.md")


@dataclass(frozen=True)
class WriterSettings:
    """What a writer service writes, where, and within which limits."""

    root_dirs: tuple[str, ...] = setting(
        (), "absolute folder the writer may write under (repeat for several; required)",
        kind="folders", option="--root", metavar="FOLDER")
    sessions: tuple[str, ...] = setting(
        (), "only write scans of this session (repeat; default: all)", kind="names",
        option="--session", metavar="SESSION")
    beamlines: tuple[str, ...] = setting(
        (), "only write scans of this beamline (repeat; default: all)", kind="names",
        option="--beamline", metavar="BEAMLINE")
    default_file: str = setting(
        "", "file for scans that request none, e.g. /data/{session}/{proposal}/scans.dat "
            "(fields: session, beamline, proposal, collection, dataset, name, number, date)",
        kind="text", metavar="PATTERN")
    writer_name: str = setting(
        "", "writer name: instances with the same name share the work and their progress",
        kind="text", option="--name", metavar="NAME")
    next_scan_timeout: float = setting(0.5, "seconds per wait for a new scan (Stop can take "
                                            "that long)", positive=True)
    lease: float = setting(LEASE, "seconds a scan stays claimed by an instance that stopped "
                                  "renewing it (killed, frozen): then another instance, or this "
                                  "one restarted, resumes its file", low=1)
    max_scans: int = setting(MAX_SCANS, "scans written at once, one thread each: more wait, "
                                        "pending, oldest first", low=1)
    max_streams: int = setting(MAX_STREAMS, "streams a scan may have", low=1, group=_LIMITS)
    max_points: int = setting(MAX_POINTS, "points a scan may declare or publish per stream",
                              low=1, group=_LIMITS)
    max_point_size: int = setting(MAX_POINT_BYTES, "bytes one point of one stream may take, "
                                                   "e.g. 512mb", kind="memory", metavar="SIZE",
                                  group=_LIMITS)
    read_budget: int = setting(READ_BUDGET, "bytes of stream data read from Redis at once per "
                                            "scan, e.g. 64mb: bounds the writer's memory",
                               kind="memory", metavar="SIZE", group=_LIMITS)

    def limits(self) -> ScanLimits:
        return ScanLimits(max_streams=self.max_streams, max_points=self.max_points,
                          max_point_bytes=self.max_point_size, read_budget=self.read_budget)

    def handler(self, handler_class: type[FileScanWriter]) -> FileScanWriter:
        """The file writer confined to :attr:`root_dirs`."""
        return handler_class([Path(d) for d in self.root_dirs], self.default_file or None,
                             limits=self.limits())
