"""Publishing what a spool holds for publishers that are gone (a MacroServer that died).

Each orphan scan is taken over (atomically: two processes never replay the same
scan), published from the spool with every point it had, and closed: with the
end its publisher recorded when the scan had ended, else as ``FAILURE``.
"""

from __future__ import annotations

import logging
import threading

from sardana_redis.publishing.publisher import PublisherState, ScanPublisher
from sardana_redis.publishing.spool import Spool, SpoolUnavailable

log = logging.getLogger(__name__)

_replaying: dict[tuple[str, int], ScanPublisher] = {}  #: replays of this process, by scan
_replaying_lock = threading.Lock()


def replay(spool: Spool, url: str | None = None) -> list[ScanPublisher]:
    """Start a publisher for every orphan scan of ``spool`` (its own URL unless ``url``)."""
    try:
        orphans = spool.orphans()
    except SpoolUnavailable as exc:
        log.debug("no spool to replay: %s", exc)
        return []
    started = []
    with _replaying_lock:  # forget the replays that ended
        for ident in [i for i, p in _replaying.items() if p.wait(0)]:
            del _replaying[ident]
    for scan in orphans:
        ident = (str(spool.folder), scan.id)
        with _replaying_lock:
            if ident in _replaying or not spool.claim(scan.id, scan.owner):
                continue
            log.warning("Spool %s holds %s (%d points) of a publisher that stopped: "
                        "publishing it", spool.folder, scan.publication.label, scan.points)
            publisher = _replaying[ident] = ScanPublisher.resume(url, spool, scan)
        publisher.start()
        started.append(publisher)
    return started


def replay_in_background(spool: Spool) -> None:
    """:func:`replay` off the caller's thread (a scan start must not wait for it)."""
    threading.Thread(target=replay, args=(spool,), name="spool-replay", daemon=True).start()


def replay_and_wait(spool: Spool, url: str | None, timeout: float | None) -> tuple[int, int]:
    """Replay and wait for every scan to be closed: (closed, still held)."""
    publishers = replay(spool, url)
    for publisher in publishers:
        publisher.wait(timeout)
    closed = sum(1 for p in publishers if p.state is PublisherState.CLOSED)
    return closed, len(publishers) - closed
