"""Keeping blissdata's stream sinks from hanging a process when Redis goes away.

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
