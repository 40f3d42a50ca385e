"""The one place that touches blissdata's private API (checked against blissdata 2.4.x).

* :func:`stop_sink`: the publisher sends its batches itself (so it knows what Redis
  acknowledged), so the sink threads every writable stream starts are stopped at once;
* :func:`load_scan_rw`: a spool replay closes a scan whose publisher died, which
  blissdata only allows to the scan's creator (its own ``delete_scan`` does the same);
* the sink helpers below, for tests that simulate a publisher dying.

Keeping blissdata's stream sinks from hanging a process when Redis goes away:

Every writable blissdata 2.4 stream owns a "sink": two non-daemon threads that
send XADDs and read the acknowledgements. The sink only handles Redis *error
replies*; when the connection itself breaks, its send thread dies and its
acknowledgement thread waits forever, so the process (a MacroServer) can no
longer exit, and ``scan.stop()`` blocks on the dead sink.

blissdata offers no public way out, so this module is the one place that
touches the sink's private attributes (checked against blissdata 2.4.x, the
version pinned in pyproject.toml):

- :func:`sink_is_broken` tells whether a stream's sink lost its connection or
  stored an error;
- :func:`release_sink` ends both sink threads and marks the sink closed, so
  that a later ``scan.stop()`` only seals the stream server-side.
"""

from __future__ import annotations

from typing import Any


def _sink(stream: Any) -> Any | None:
    event_stream = getattr(stream, "_event_stream", stream)
    return getattr(event_stream, "_sink", None)


def sink_is_broken(stream: Any) -> bool:
    """True when the stream's sink stored an error or one of its threads died."""
    sink = _sink(stream)
    if sink is None:
        return False
    if sink._failure is not None:
        return True
    if sink._closing or sink._closed:
        return False
    return not (sink._send_thread.is_alive() and sink._recv_thread.is_alive())


def release_sink(stream: Any, timeout: float = 1.0) -> None:
    """End the sink's threads, dropping what it had not sent, and mark it closed."""
    sink = _sink(stream)
    if sink is None:
        return
    with sink.cond:
        sink._closing = True
        sink._closed = True
        # a failure makes the send thread drop its buffer instead of sending it
        sink._failure = ConnectionError("sink released")
        sink.cond.notify_all()
    sink._cmd_queue.put(StopIteration)
    sink._ack_queue.put(StopIteration)
    for thread in (sink._send_thread, sink._recv_thread):
        thread.join(timeout)
    sink._failure = None  # so that sealing the stream later goes on to the server


def stop_sink(stream: Any) -> None:
    """Stop an idle sink's threads (no network: it has nothing to send). Sealing the
    stream later still works (blissdata's ``seal`` stops the sink again, harmlessly)."""
    sink = _sink(stream)
    if sink is not None:
        sink.stop()


def load_scan_rw(store: Any, key: str) -> Any:
    """A scan loaded with write permission (to seal and close it)."""
    from blissdata.redis_engine.scan import Scan

    return Scan._load_rw(store, key)
