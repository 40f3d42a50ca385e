"""Changes to an HDF5 file outside SWMR that a crash cannot leave half done.

Outside SWMR (creating a scan's entry, the items added at its end, files made
without SWMR support), HDF5 rewrites metadata in place, in an order that keeps
no reader safe: a writer killed while HDF5 flushes can leave a file whose
earlier entries cannot be read any more. HDF5 has no transactions, so the
writer keeps its own **undo journal**: h5py writes through a
:class:`JournaledFile` (h5py accepts a Python file object), which copies the
bytes every write would overwrite into ``.<name>.undo`` beside the file
*before* overwriting them (what lies beyond the file's size before the changes
needs no copy: the file is cut back to that size). Once HDF5 closed the file,
the file is synced and the journal removed (:meth:`JournaledFile.commit`).

A journal found when the file is next opened (:func:`undo_leftover`) belongs to
a writer that stopped in the middle: its copies are written back, newest
first, and the file is cut to its former size: the file is byte for byte as
it was before those changes (every earlier entry readable), and the scan is
written again from there. Copies are written to the journal before the file
is touched, so a SIGKILL at any moment is covered; a power cut is covered as
far as the file system keeps the order of writes.

The file is opened through :class:`~sardana_redis.following.paths.ConfinedFile`
(never through a link, always the same file) and locked like HDF5 does
(``flock``, exclusive, not waiting): a reader holding the file makes the open
fail with :class:`BlockingIOError`, which the writer waits out.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import struct
import zlib
from typing import Any

from sardana_redis.following.paths import ConfinedFile, test_delay

log = logging.getLogger(__name__)

MAGIC = b"SRUNDO01"
_HEADER = struct.Struct("<8sQQQ")  # magic, size before the changes, st_dev, st_ino
_RECORD = struct.Struct("<QQI")  # offset, length, crc32 of the old bytes


def journal_name(name: str) -> str:
    return f".{name}.undo"


def _records(data: bytes) -> list[tuple[int, bytes]]:
    """The complete records of a journal (a torn last one: its write never happened)."""
    out, position = [], _HEADER.size
    while position + _RECORD.size <= len(data):
        offset, length, crc = _RECORD.unpack_from(data, position)
        old = data[position + _RECORD.size:position + _RECORD.size + length]
        if len(old) != length or zlib.crc32(old) != crc:
            break
        out.append((offset, old))
        position += _RECORD.size + length
    return out


def _read_all(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def undo_leftover(folder: int, name: str, fd: int, path: Any,
                  identity: tuple[int, int] | None = None) -> bool:
    """Undo what a stopped writer's journal records in file ``fd`` (``name`` in ``folder``;
    ``identity``: that of the file the journal was made for, when ``fd`` is a copy of it):
    True when there was one (then the file is as before those changes)."""
    try:
        jfd = os.open(journal_name(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
    except FileNotFoundError:
        return False
    try:
        data = _read_all(jfd)
    finally:
        os.close(jfd)
    st = os.fstat(fd)
    if len(data) < _HEADER.size or data[:8] != MAGIC or \
            _HEADER.unpack_from(data)[2:] != (identity or (st.st_dev, st.st_ino)):
        log.warning("%s: a stale undo journal (of another file) removed", path)
    else:
        size = _HEADER.unpack_from(data)[1]
        records = _records(data)
        log.warning("%s: the writer stopped while changing it outside SWMR: %d unfinished "
                    "change(s) undone, the file is as it was before them (%d bytes)",
                    path, len(records), size)
        for offset, old in reversed(records):
            os.pwrite(fd, old, offset)
        os.ftruncate(fd, size)
        os.fsync(fd)
    os.unlink(journal_name(name), dir_fd=folder)
    return True


class JournaledFile(io.RawIOBase):
    """The file of ``confined`` opened, locked and journaled for h5py (module docstring).

    ``phase`` names the changes for the test-only pause after their first overwrite
    (``SARDANA_REDIS_TEST_DELAY_NEXUS_<PHASE>_WRITES``).
    """

    def __init__(self, confined: ConfinedFile, phase: str) -> None:
        super().__init__()
        self.confined = confined
        self.phase = phase
        self.folder, self.fd = confined.open(os.O_RDWR | os.O_CREAT)
        self.journal = -1
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: held
            undo_leftover(self.folder, confined.name, self.fd, confined.path)
        except BaseException:
            self._close_fds()
            raise
        self.position = 0
        self.size = os.fstat(self.fd).st_size  #: before the changes
        self._overwrites = 0

    def start(self) -> None:
        """Begin the journal (before h5py writes anything)."""
        st = os.fstat(self.fd)
        self.journal = os.open(journal_name(self.confined.name),
                               os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                               0o644, dir_fd=self.folder)
        os.write(self.journal, _HEADER.pack(MAGIC, self.size, st.st_dev, st.st_ino))
        os.fsync(self.journal)
        os.fsync(self.folder)

    # --- the file object h5py uses -----------------------------------------

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_END:
            offset += os.fstat(self.fd).st_size
        elif whence == os.SEEK_CUR:
            offset += self.position
        self.position = offset
        return offset

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: Any) -> int:
        data = os.pread(self.fd, len(buffer), self.position)
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)

    def _save(self, offset: int, length: int) -> None:
        """Journal the bytes ``[offset, offset + length)`` of the file before the changes."""
        length = min(length, self.size - offset)
        if length <= 0:
            return
        if self.journal < 0:
            raise RuntimeError("journaled file written before start()")
        old = os.pread(self.fd, length, offset)
        os.write(self.journal, _RECORD.pack(offset, len(old), zlib.crc32(old)) + old)

    def write(self, data: Any) -> int:
        data = bytes(data)
        self._save(self.position, len(data))
        written = os.pwrite(self.fd, data, self.position)
        if self.position < self.size:
            self._overwrites += 1
            if self._overwrites == 2:  # the first is HDF5's mark "open for writing"
                test_delay(f"NEXUS_{self.phase}_WRITES")  # the file is half changed now
        self.position += written
        return written

    def truncate(self, size: int | None = None) -> int:
        size = self.position if size is None else size
        self._save(size, self.size - size)
        os.ftruncate(self.fd, size)
        return size

    def flush(self) -> None:
        pass

    # --- the end of the changes -------------------------------------------------

    def commit(self) -> None:
        """The changes are whole (h5py closed the file): make them durable, drop the journal."""
        os.fsync(self.fd)
        if self.journal >= 0:
            os.close(self.journal)
            self.journal = -1
            os.unlink(journal_name(self.confined.name), dir_fd=self.folder)
        self._close_fds()

    def abort(self) -> None:
        """Undo the changes (an error before they were whole) and close."""
        if self.journal >= 0:
            os.close(self.journal)
            self.journal = -1
            try:
                undo_leftover(self.folder, self.confined.name, self.fd, self.confined.path)
            except OSError as exc:  # e.g. a full disk: the next open undoes them
                log.error("%s: cannot undo the unfinished changes now (%s): done at the next "
                          "open", self.confined.path, exc)
        self._close_fds()

    def release(self) -> None:
        """Let the file go as it is (its lock too), the journal kept for the next open."""
        if self.journal >= 0:
            os.close(self.journal)
            self.journal = -1
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self.fd, self.folder):
            if fd >= 0:
                os.close(fd)
        self.fd = self.folder = -1

    def close(self) -> None:  # h5py may close its file object: the fds stay ours
        pass
