"""Where a writer may write: only under its configured root folders.

File names come from Redis, which is untrusted input: a path is refused when
it is not absolute, has ``..`` parts or control characters, or resolves
(symbolic links followed) outside every root.

The check holds for the whole life of a file, not only when a scan starts: a
:class:`ConfinedFile` opens its folders one by one from the root without following
links (``O_NOFOLLOW``, ``O_DIRECTORY``, each relative to the folder above), and
remembers the identity (device, inode) of the file and of every folder it went
through. Every later open of it for the same scan (the NeXus writer reopens its
file at the end of a scan) must meet the same file in the same folders, or is
refused (:class:`ChangedOnDisk`): a folder or file swapped for a link meanwhile
never sends data outside the roots.
"""

from __future__ import annotations

import errno
import logging
import os
import string
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class UnsafePath(ValueError):
    """A file path a writer must not write."""


class OutsideRoots(UnsafePath):
    """A clean absolute path, but under none of this writer's roots (maybe another writer's)."""


class ChangedOnDisk(UnsafePath):
    """A file, or one of its folders, is no longer the one confined when the scan started."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(f"refusing {path}: it changed on disk since the scan started "
                         "(replaced by a link?)")


log = logging.getLogger(__name__)

#: Environment variable prefix of test-only pauses (``SARDANA_REDIS_TEST_DELAY_<POINT>``
#: = seconds), to kill or attack a writer at an exact moment; unset in production.
TEST_DELAY_ENV = "SARDANA_REDIS_TEST_DELAY_"


def test_delay(point: str) -> None:
    """Sleep ``SARDANA_REDIS_TEST_DELAY_<POINT>`` seconds, if set (reliability tests only)."""
    seconds = os.environ.get(TEST_DELAY_ENV + point)
    if seconds:
        log.warning("test delay %s: pausing %s s", point, seconds)
        time.sleep(float(seconds))


_FIELDS = ("session", "beamline", "proposal", "collection", "dataset", "name", "number", "date")


def confine(path: Any, roots: Sequence[Path]) -> Path:
    """``path`` as a resolved absolute path under one of ``roots``, or :class:`UnsafePath`."""
    if not isinstance(path, str) or not path:
        raise UnsafePath(f"file path must be a non-empty string, got {type(path).__name__}")
    if any(ord(c) < 32 or c == "\x7f" for c in path):
        raise UnsafePath(f"control characters in file path {path!r}")
    if not os.path.isabs(path):
        raise UnsafePath(f"file path {path!r} is not absolute")
    if ".." in Path(path).parts:
        raise UnsafePath(f"'..' in file path {path!r}")
    resolved = Path(os.path.realpath(path))
    for root in roots:
        real_root = Path(os.path.realpath(root))
        if resolved == real_root or real_root in resolved.parents:
            return resolved
    raise OutsideRoots(f"{path!r} is outside the writer's root folders "
                     f"({', '.join(str(r) for r in roots)})")


Identity = tuple[int, int]  #: (st_dev, st_ino)


def _identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino)


class ConfinedFile:
    """A file under one of the roots, opened only through its folders' handles, never by
    following a link, and always the same file (see the module docstring)."""

    def __init__(self, path: Path, roots: Sequence[Path]) -> None:
        self.path = Path(path)
        for root in roots:
            real_root = Path(os.path.realpath(root))
            if real_root in self.path.parents:
                self.root, self.parts = real_root, self.path.relative_to(real_root).parts
                break
        else:
            raise OutsideRoots(f"{path!r} is outside the writer's root folders")
        self.name = self.parts[-1]
        #: identities of the root, each folder and the file, as first opened (None before)
        self.identity: tuple[Identity, ...] | None = None

    def _changed(self, *fds: int) -> ChangedOnDisk:
        for fd in fds:
            os.close(fd)
        log.error("%s", message := ChangedOnDisk(self.path))
        return message

    def open_folder(self, create: bool = True) -> tuple[int, list[Identity]]:
        """A handle on the file's folder, walked from the root without following links
        (folders made when missing and ``create``), and the identities met on the way."""
        if create:  # the root itself, as configured (it may be made on first use)
            os.makedirs(self.root, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        ids = [_identity(os.fstat(fd))]
        for part in self.parts[:-1]:
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                try:
                    sub = os.open(part, flags, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(part, 0o777, dir_fd=fd)
                    except FileExistsError:
                        pass
                    sub = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # a link (or a file) now
                    raise self._changed(fd) from None
                os.close(fd)
                raise
            os.close(fd)
            fd = sub
            ids.append(_identity(os.fstat(fd)))
        return fd, ids

    def open(self, flags: int, mode: int = 0o666) -> tuple[int, int]:
        """``(folder handle, file handle)``: the file opened with ``flags`` relative to its
        folder, never through a link; the identity of the folders and of the file must be
        those of the first open (:class:`ChangedOnDisk` otherwise)."""
        folder, ids = self.open_folder(create=bool(flags & os.O_CREAT))
        try:
            fd = os.open(self.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=folder)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # the file is a link now
                raise self._changed(folder) from None
            os.close(folder)
            raise
        ids.append(_identity(os.fstat(fd)))
        if self.identity is None:
            self.identity = tuple(ids)
        elif tuple(ids) != self.identity:
            raise self._changed(fd, folder)
        return folder, fd

    def check(self, fd: int) -> None:
        """Right after an open by another library: ``fd`` must still be the file its path
        names, through the same folders (:class:`ChangedOnDisk` otherwise)."""
        folder, ids = self.open_folder(create=False)
        try:
            st = os.stat(self.name, dir_fd=folder, follow_symlinks=False)
        finally:
            os.close(folder)
        ids.append(_identity(st))
        if _identity(os.fstat(fd)) != ids[-1] or (self.identity and tuple(ids) != self.identity):
            raise self._changed()

    def replaced(self) -> None:
        """The writer itself gave the file a new inode in its folder (a recovery copy):
        remember the new one (the folders must be the same)."""
        if self.identity is None:
            return
        folder, ids = self.open_folder(create=False)
        try:
            st = os.stat(self.name, dir_fd=folder, follow_symlinks=False)
        finally:
            os.close(folder)
        if tuple(ids) != self.identity[:-1]:
            raise self._changed()
        self.identity = (*ids, _identity(st))


def expand_pattern(pattern: str, fields: Mapping[str, Any]) -> str:
    """Fill a default file pattern such as ``/data/{session}/{proposal}/scans.dat``.

    Values are made file-name safe (``/`` and control characters replaced);
    missing values become ``unknown``.
    """
    names = {f for _, f, _, _ in string.Formatter().parse(pattern) if f}
    unknown = names - set(_FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))} in {pattern!r}; "
                         f"use {', '.join(_FIELDS)}")
    safe = {}
    for name in _FIELDS:
        value = str(fields.get(name) if fields.get(name) not in (None, "") else "unknown")
        cleaned = "".join("_" if c in "/\\" or ord(c) < 32 else c for c in value)
        safe[name] = cleaned.strip(".") or "_"
    return pattern.format(**safe)
