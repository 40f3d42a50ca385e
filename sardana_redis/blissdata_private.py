"""The one place that touches blissdata's private API (checked against blissdata 2.4.x).

* :func:`stop_sink`: the publisher sends its batches itself (so it knows what Redis
  acknowledged), so the sink threads every writable stream starts are stopped at once;
* :func:`load_scan_rw`: a spool replay closes a scan whose publisher died, which
  blissdata only allows to the scan's creator (its own ``delete_scan`` does the same);
* :func:`release_sink`: ends a sink's threads whatever their state (a sink whose
  connection broke never ends by itself: its acknowledgement thread waits for ever and,
  being non-daemon, keeps the process from exiting); tests use it to make a publisher
  "die" without closing its scan;
* :func:`use_connection_pool`: a DataStore that follows the primary a Sentinel names.
"""

from __future__ import annotations

from typing import Any


def _sink(stream: Any) -> Any | None:
    event_stream = getattr(stream, "_event_stream", stream)
    return getattr(event_stream, "_sink", None)


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


def use_connection_pool(store: Any, client: Any) -> None:
    """Make the DataStore ``store`` send every command through ``client``'s connection pool.

    blissdata opens its one Redis client from a URL, and everything it does (its scan
    model, its streams' sinks and readers) takes the connection pool from that client at
    call time: giving the client a Sentinel-managed pool makes the whole DataStore follow
    the primary across failovers."""
    old = store._redis.connection_pool
    store._redis.connection_pool = client.connection_pool
    old.disconnect()
