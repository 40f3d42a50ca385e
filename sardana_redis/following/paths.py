"""Where a writer may write: only under its configured root folders.

File names come from Redis, which is untrusted input: a path is refused when
it is not absolute, has ``..`` parts or control characters, or resolves
(symbolic links followed) outside every root.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class UnsafePath(ValueError):
    """A file path a writer must not write."""


class OutsideRoots(UnsafePath):
    """A clean absolute path, but under none of this writer's roots (maybe another writer's)."""


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
        safe[name] = "".join("_" if c in "/\\" or ord(c) < 32 else c for c in value).strip(".") or "_"
    return pattern.format(**safe)
