"""``sardana-redis rewrite``: have the running writers write one scan again.

The writers own the writing: this only makes the scan pending again in each chosen
writer's ledger (its done record, progress and points removed, see
:meth:`~sardana_redis.following.ledger.WriterLedger.request_rewrite`), then waits until
the writer's done record comes back. A scan a writer wrote whose files are all still
there, the very files it wrote (same inodes), is left as it is (move them away first to
write it anew).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from blissdata.redis_engine.scan import ScanState

from sardana_redis.following.ledger import DoneRecord, WriterLedger, inodes, writer_names


def _writers(client: redis.Redis, key: str, names: Sequence[str]) -> list[str]:
    """``names``, or by default every writer whose ledger knows the scan (done or pending)."""
    if names:
        return list(names)
    known = []
    for name in writer_names(client):
        ledger = WriterLedger(client, name)
        if ledger.is_done(key) or key in ledger.pending():
            known.append(name)
    if not known:
        raise LookupError(f"no writer has a record of scan {key}: name one with --writer")
    return known


def still_whole(record: DoneRecord | None) -> bool:
    """The scan was written and each of its files is still the file it was written into."""
    if record is None or record.status != "written" or not record.files:
        return False
    now = inodes(record.files)
    if not record.inodes:  # a record of an older version: the files are there
        return len(now) == len(record.files)
    return all(now.get(path) == ino for path, ino in record.inodes.items())


def outcome(name: str, record: DoneRecord) -> str:
    """One line: how writer ``name`` finished the scan."""
    files = ", ".join(record.files) or "no file"
    return f"{name}: {record.status} ({record.detail}): {files}, {record.points} point(s)"


def rewrite(client: redis.Redis, scan: Any, names: Sequence[str], wait: float,
            say: Callable[[str], None] = print) -> bool:
    """Make the writers ``names`` (default: those that know it) write ``scan`` again and
    wait up to ``wait`` seconds for their outcome; True when every one has it written."""
    key = scan.key
    if scan.state < ScanState.CLOSED:
        raise RuntimeError(f"scan {key} (#{scan.number}) is not closed (state "
                           f"{scan.state.name}): its writers are still at it")
    waiting, ok = [], True
    for name in _writers(client, key, names):
        ledger = WriterLedger(client, name)
        before = ledger.done(key)
        if before is not None and still_whole(before):
            say(f"{name}: already whole in {', '.join(before.files)}: left as it is "
                "(move the files away first to write the scan anew)")
            continue
        ledger.request_rewrite(key)
        waiting.append(ledger)
    if waiting:
        say(f"scan {key} (#{scan.number}, session {scan.session}): pending again for "
            f"{', '.join(ledger.name for ledger in waiting)}, waiting up to {wait:g} s")
    deadline = time.monotonic() + wait
    while waiting:
        for ledger in list(waiting):
            record = ledger.done(key)
            if record is not None:
                say(outcome(ledger.name, record))
                ok = ok and record.status == "written"
                waiting.remove(ledger)
        if not waiting:
            break
        if time.monotonic() > deadline:
            for ledger in waiting:
                say(f"{ledger.name}: not written within {wait:g} s (is it running? see "
                    "`sardana-redis writers`): the scan stays pending, written when it runs")
            return False
        time.sleep(0.2)
    return ok
