"""The publisher's local spool: every batch is kept until its scan is closed in Redis.

The scan thread only appends records to a queue in memory; the publisher's own
thread converts them into batches and writes each batch here **before** it is
sent to Redis. So a Redis that restarts, freezes, fills up or comes back empty
loses nothing (the batches are sent again from here), and neither does a
MacroServer that dies: the next recorder start, or ``sardana-redis spool
replay``, publishes what its spool holds and closes those scans.

Format: one SQLite database in WAL mode per folder (``spool.sqlite``).
SQLite is in Python's standard library, survives a killed process at any
moment (every transaction is whole or absent, no torn frame to repair), lets
several processes share a folder (the MacroServer and a ``spool replay``), and
answers "which scans, how many points, how many bytes" with one query.
Writes are not fsynced (``synchronous=NORMAL``): a killed process loses
nothing the kernel has; only a power cut can lose the last transactions.

When the folder cannot be written (read-only, missing, disk full) or the spool
reached its size limit, batches are kept in memory instead, up to
``memory_limit`` bytes; beyond that they are dropped and counted, and the
recorder tells the user how many points were lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sardana_redis.publishing.publication import Batch, Publication

log = logging.getLogger(__name__)

#: Sardana environment variable naming the spool folder (``redis_set_spool`` sets it).
SPOOL_VARIABLE = "RedisSpoolDir"
#: Process environment variable naming it (the MacroServer's, or ``sardana-redis spool``'s).
SPOOL_ENV = "SARDANA_REDIS_SPOOL"
#: Default size limit of a spool folder on disk.
DEFAULT_MAX_BYTES = 8 * 10**9
#: Default bytes a publisher keeps in memory when the disk spool cannot take them.
DEFAULT_MEMORY_LIMIT = 512 * 10**6
DB_NAME = "spool.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    publication TEXT NOT NULL,
    url TEXT NOT NULL,
    scan_key TEXT,
    end_info TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    scan_id INTEGER NOT NULL,
    stream TEXT NOT NULL,
    start INTEGER NOT NULL,
    length INTEGER NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (scan_id, stream, start)
) WITHOUT ROWID;
"""


class SpoolUnavailable(OSError):
    """The spool folder cannot be written (or is full)."""


def process_owner() -> str:
    """This process, as a spool owner: host, pid and start time (a reused pid is not us)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "?"


def owner_alive(owner: str) -> bool:
    """Whether the process that wrote ``owner`` still runs (owners of other hosts count
    as alive: a shared folder is only replayed from the host that wrote it)."""
    try:
        host, pid, started = owner.rsplit(":", 2)
        pid_n = int(pid)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True
    return _start_time(pid_n) == started and started != "?"


@dataclass(frozen=True)
class SpooledScan:
    """A scan the spool holds."""

    id: int
    owner: str
    url: str
    publication: Publication
    scan_key: str | None
    end_info: dict | None
    points: int  #: points of its first stream in the spool
    bytes: int


@dataclass
class SpoolUsage:
    folder: Path
    scans: int = 0
    points: int = 0
    bytes: int = 0
    writable: bool = True
    error: str | None = None
    by_scan: list[SpooledScan] = field(default_factory=list)


class Spool:
    """One spool folder, shared by every publisher of a process (thread-safe)."""

    def __init__(self, folder: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = Path(folder).expanduser()
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._bytes = 0
        self.error: str | None = None  #: why the disk part is not usable, when it is not

    # --- opening ---------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """The database, opened (and created) on first use; raises SpoolUnavailable."""
        if self._db is not None:
            return self._db
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            db = sqlite3.connect(self.folder / DB_NAME, timeout=10, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # (a new file only) give space back
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._bytes = db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) "
                                     "FROM batches").fetchone()[0]
        except (OSError, sqlite3.Error) as exc:
            self.error = f"spool folder {self.folder} cannot be written: {exc}"
            raise SpoolUnavailable(self.error) from None
        self._db = db
        self.error = None
        return db

    def _write(self, sql: str, rows: Iterable[tuple] | tuple = ()) -> sqlite3.Cursor:
        rows = rows if isinstance(rows, tuple) else list(rows)
        with self._lock:
            for attempt in (1, 2):  # a transient error: once more on a new connection
                db = self._connect()
                try:
                    if isinstance(rows, tuple):
                        return db.execute(sql, rows)
                    db.execute("BEGIN IMMEDIATE")
                    cur = db.executemany(sql, rows)
                    db.execute("COMMIT")
                    return cur
                except sqlite3.Error as exc:
                    with contextlib.suppress(sqlite3.Error):
                        if db.in_transaction:
                            db.execute("ROLLBACK")
                    if attempt == 1:
                        log.warning("spool %s: %s: reopening it", self.folder, exc)
                        with contextlib.suppress(sqlite3.Error):
                            db.close()
                        self._db = None
                        continue
                    self.error = f"spool folder {self.folder} cannot be written: {exc}"
                    raise SpoolUnavailable(self.error) from None
        raise AssertionError("unreachable")

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._connect().execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise SpoolUnavailable(
                    f"spool folder {self.folder} cannot be read: {exc}") from None

    # --- scans -----------------------------------------------------------

    def add_scan(self, publication: Publication, url: str, owner: str | None = None) -> int:
        cur = self._write("INSERT INTO scans (owner, publication, url, created) VALUES (?,?,?,?)",
                          (owner or process_owner(), publication.to_json(), url, time.time()))
        if cur.lastrowid is None:  # pragma: no cover - sqlite3 sets it after an INSERT
            raise SpoolUnavailable(f"spool {self.folder}: no row id for the new scan")
        return cur.lastrowid

    def set_key(self, scan_id: int, key: str) -> None:
        self._write("UPDATE scans SET scan_key=? WHERE id=?", (key, scan_id))

    def set_end(self, scan_id: int, end_info_json: str) -> None:
        self._write("UPDATE scans SET end_info=? WHERE id=?", (end_info_json, scan_id))

    def claim(self, scan_id: int, old_owner: str, owner: str | None = None) -> bool:
        """Take over a scan whose owner died; False when another process took it first."""
        cur = self._write("UPDATE scans SET owner=? WHERE id=? AND owner=?",
                          (owner or process_owner(), scan_id, old_owner))
        return cur.rowcount == 1

    def forget(self, scan_id: int) -> None:
        """The scan is closed in Redis: its batches are no longer needed."""
        with self._lock:
            db = self._connect()
            try:
                freed = db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM batches "
                                   "WHERE scan_id=?", (scan_id,)).fetchone()[0]
                db.execute("BEGIN")
                db.execute("DELETE FROM batches WHERE scan_id=?", (scan_id,))
                db.execute("DELETE FROM scans WHERE id=?", (scan_id,))
                db.execute("COMMIT")
                if not db.execute("SELECT 1 FROM scans LIMIT 1").fetchone():
                    db.execute("PRAGMA incremental_vacuum").fetchall()  # empty: the file shrinks
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise SpoolUnavailable(f"spool folder {self.folder}: {exc}") from None
            self._bytes -= freed

    # --- batches ---------------------------------------------------------

    def append(self, scan_id: int, batches: list[Batch]) -> None:
        """Keep ``batches`` (one transaction); raises SpoolUnavailable when it cannot."""
        size = sum(len(b.payload) for b in batches)
        if self._db is not None and self._bytes + size > self.max_bytes:
            self.error = (f"spool folder {self.folder} is full "
                          f"({self._bytes / 1e6:.0f} MB of {self.max_bytes / 1e6:.0f} MB)")
            raise SpoolUnavailable(self.error)
        self._write("INSERT OR IGNORE INTO batches VALUES (?,?,?,?,?)",
                    [(scan_id, b.stream, b.start, b.length, b.payload) for b in batches])
        self._bytes += size

    def batches(self, scan_id: int, since: dict[str, int], page: int = 256) -> Iterator[Batch]:
        """The scan's batches that end after ``since[stream]``, in point order, read a page
        at a time (memory stays bounded whatever the spool holds)."""
        start, stream = -1, ""
        while True:
            rows = self._read(
                "SELECT stream, start, length, payload FROM batches WHERE scan_id=? AND "
                "(start > ? OR (start = ? AND stream > ?)) ORDER BY start, stream LIMIT ?",
                (scan_id, start, start, stream, page))
            for stream, start, length, payload in rows:
                if start + length > since.get(stream, 0):
                    yield Batch(stream, start, length, bytes(payload))
            if len(rows) < page:
                return

    # --- what the spool holds --------------------------------------------

    def scans(self) -> list[SpooledScan]:
        rows = self._read(
            "SELECT s.id, s.owner, s.url, s.publication, s.scan_key, s.end_info, "
            "COALESCE(MAX(b.start + b.length), 0), COALESCE(SUM(LENGTH(b.payload)), 0) "
            "FROM scans s LEFT JOIN batches b ON b.scan_id = s.id GROUP BY s.id ORDER BY s.id")
        return [SpooledScan(i, owner, url, Publication.from_json(pub), key,
                            json.loads(end) if end else None, int(points), int(size))
                for i, owner, url, pub, key, end, points, size in rows]

    def orphans(self) -> list[SpooledScan]:
        """Scans whose publisher's process is gone: to be replayed."""
        return [s for s in self.scans() if not owner_alive(s.owner)]

    def usage(self) -> SpoolUsage:
        usage = SpoolUsage(self.folder)
        try:
            usage.by_scan = self.scans()
        except SpoolUnavailable as exc:
            usage.writable, usage.error = False, str(exc)
            return usage
        usage.scans = len(usage.by_scan)
        usage.points = sum(s.points for s in usage.by_scan)
        usage.bytes = sum(s.bytes for s in usage.by_scan)
        usage.writable = os.access(self.folder, os.W_OK)
        return usage

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def default_spool_dir() -> Path:
    """``$SARDANA_REDIS_SPOOL``, else ``~/.local/state/sardana-redis/spool`` (state that
    must survive a restart, not a cache)."""
    return Path(os.environ.get(SPOOL_ENV) or
                Path.home() / ".local" / "state" / "sardana-redis" / "spool")


_spools: dict[Path, Spool] = {}
_spools_lock = threading.Lock()


def spool_for(folder: str | os.PathLike | None) -> Spool:
    """The process' :class:`Spool` of ``folder`` (the default folder when None)."""
    path = Path(folder or default_spool_dir()).expanduser().absolute()
    with _spools_lock:
        spool = _spools.get(path)
        if spool is None:
            spool = _spools[path] = Spool(path)
        return spool
