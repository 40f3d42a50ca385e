"""A scan kept open after its end for custom data (real Redis for the publisher)."""

from __future__ import annotations

from blissdata.redis_engine.scan import ScanState
from blissdata.redis_engine.store import DataStore

from sardana_redis.custom_data import Phase, describe_custom_data, read_custom_data
from sardana_redis.publishing.close_hold import CloseHold, HoldsByMacro
from sardana_redis.publishing.publisher import ScanPublisher
from sardana_redis.publishing.spool import Spool
from sardana_redis.redis_url import normalize_redis_url
from sardana_redis.scan_model import EndReason, ScanEnd
from tests.scan_descriptions import step_scan


def test_holds_end_on_release_timeout_or_when_no_longer_needed():
    needed = [True]
    hold = CloseHold(lambda: needed[0], at_most=60)
    assert not hold.released
    needed[0] = False
    assert hold.released and hold.released  # once released, for good
    assert CloseHold(lambda: True, at_most=0).released
    assert CloseHold(lambda: 1 / 0, at_most=60).released  # an unreadable macro holds nothing
    holds = HoldsByMacro()
    first, other = CloseHold(lambda: True), CloseHold(lambda: True)
    holds.add(1, first)
    holds.add(2, other)
    holds.release(1)  # a new scan under macro 1
    assert first.released and not other.released


def test_custom_data_after_the_end_reaches_the_closed_scan(redis_url, tmp_path):
    description = step_scan(1, "hold", title="ascan mot01 0 1 3",
                            custom_data=(describe_custom_data("x", "before", Phase.BEFORE),))
    publisher = ScanPublisher(redis_url, description, spool=Spool(tmp_path / "spool"))
    publisher.start()
    for i in range(4):
        publisher.push({"point_nb": i, "mot01": i / 10, "ct01": float(i)})
    running = [True]
    delivered = publisher.finish(ScanEnd("2026-01-01T00:00:01+00:00", EndReason.SUCCESS),
                                 wait=10, hold=CloseHold(lambda: running[0]))
    assert delivered and publisher.points_sent == 4
    store = DataStore(normalize_redis_url(redis_url))
    assert store.load_scan(publisher.key).state < ScanState.CLOSED  # held open
    assert publisher.add_custom_data(describe_custom_data(0.1 + 0.2, "fit", Phase.AFTER))
    running[0] = False  # the macro ended
    assert publisher.wait(10)
    scan = store.load_scan(publisher.key)
    assert scan.state is ScanState.CLOSED
    items, refused = read_custom_data(scan.info)
    assert [(c.name, c.phase) for c in items] == [("before", Phase.BEFORE), ("fit", Phase.AFTER)]
    assert not refused and items[1].spec_line == "#UVAR fit 0.30000000000000004\n"
    assert not publisher.add_custom_data(describe_custom_data(1, "late", Phase.AFTER))
