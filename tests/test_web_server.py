"""``sardana-redis web`` as a process, on a real Redis, with scans published by blissdata
(the browser-driven tests with Sardana scans: test_web_sardana.py)."""

import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from blissdata.streams.default import Stream

from sardana_redis.datastore import open_data_store
from sardana_redis.redis_url import redact_redis_url
from tests.publish import FakeScan, publish
from tests.web_helpers import follow_scan, sse_events, start_web


@pytest.fixture
def web(redis_url, tmp_path):
    service, address = start_web(redis_url, tmp_path / "web.log")
    yield address.rstrip("/")
    service.stop()


def test_live_scan_its_list_and_two_viewers_sharing_one_reader(redis_url, web):
    scan = FakeScan(redis_url, 7, info={"npoints": 30})
    scan.send(10)
    results = []
    viewers = [threading.Thread(target=lambda: results.append(follow_scan(web, scan.key())))
               for _ in range(2)]
    for viewer in viewers:
        viewer.start()
    for _ in range(4):
        threading.Event().wait(0.15)
        scan.send(5)
    about = urllib.request.urlopen(f"{web}/about").read().decode()
    assert '"readers":1' in about  # two viewers, one reader
    scan.end("USER_ABORT")
    for viewer in viewers:
        viewer.join(60)
    for messages in results:
        values = {}
        for message in messages:
            for name, new in message["series"]["values"].items():
                values[name] = (new if message["series"]["reset"] else values.get(name, []) + new)
        last = messages[-1]
        assert last["scan"]["state"] == "CLOSED" and last["scan"]["end_reason"] == "USER_ABORT"
        assert last["scan"]["points"] == 30 and last["scan"]["npoints"] == 30
        panels = [m["panels"] for m in messages if "panels" in m][-1]  # the first: LOADING
        assert panels[0]["kind"] == "curves"
        # no plots, no devices: the first scalar against the point index (scan_plot's rule)
        (name,) = panels[0]["streams"]
        assert panels[0]["x"] is None
        scale = 1 if name == "#Pt No" else 10
        assert values[name] == pytest.approx([i / scale for i in range(30)])
    deadline = time.monotonic() + 10  # the viewers left: their reader stops
    while '"readers":0' not in urllib.request.urlopen(f"{web}/about").read().decode():
        assert time.monotonic() < deadline, "the scan's reader still runs without viewers"
        time.sleep(0.1)
    _, scans = next(e for e in sse_events(f"{web}/events/scans?session=tests")
                    if e[0] == "scans")
    assert [(s["number"], s["state"], s["points"]) for s in scans] == [(7, "CLOSED", 30)]
    assert redact_redis_url(redis_url) in about


def test_spectra_and_frames_are_decimated_on_the_server(redis_url, web):
    store = open_data_store(redis_url, init=False)
    scan = store.create_scan({"name": "ct", "number": 1, "data_policy": "no_policy",
                              "session": "foreign"}, info={"title": "a foreign scan"})
    mca = scan.create_stream(Stream.make_definition("mca", "float32", (3000,)))
    frame = scan.create_stream(Stream.make_definition("frame", "uint16", (600, 1000)))
    scan.prepare()
    scan.start()
    for i in range(3):
        mca.send(np.full((1, 3000), i, np.float32))
        frame.send(np.full((1, 600, 1000), i, np.uint16))
    scan.stop()
    scan.close()
    messages = follow_scan(web, scan.key)
    panels = [m["panels"] for m in messages if "panels" in m][-1]
    assert [p["kind"] for p in panels] == ["spectrum", "image"]
    heavy = {}
    for message in messages:
        for name, item in message["heavy"].items():
            heavy.setdefault(name, {}).update(item)
    assert heavy["frame"]["point"] == 2 and heavy["frame"]["last"]["shape"] == [200, 250]
    assert heavy["frame"]["last"]["source_shape"] == [600, 1000]
    assert heavy["mca"]["point"] == 2 and len(heavy["mca"]["last"]) == 1500
    # a scan Redis does not hold: said, and done; what is not a scan key: 404
    (gone,) = follow_scan(web, "esrf:scan:01NOSUCHSCAN")[-1:]
    assert "not in Redis" in gone["scan"]["error"] and gone["done"]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{web}/events/scan/_PROTOCOL_VERSION_")
    assert refused.value.code == 404


def test_token_required_when_set(redis_url, tmp_path):
    service, address = start_web(redis_url, tmp_path / "web.log", "--token", "s3cret")
    try:
        base = address.split("?")[0].rstrip("/")
        assert address.endswith("?token=s3cret")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/about")
        assert refused.value.code == 401
        with urllib.request.urlopen(address) as page:
            assert "HttpOnly" in page.headers["set-cookie"]
            assert "default-src 'self'" in page.headers["content-security-policy"]
        request = urllib.request.Request(f"{base}/about",
                                         headers={"Authorization": "Bearer s3cret"})
        assert urllib.request.urlopen(request).status == 200
    finally:
        service.stop()


def test_read_only_reader_user_is_enough(redis_url, tmp_path):
    """The viewer works as users.conf.example's ``reader`` (no write command at all), and
    never shows its password."""
    from pathlib import Path

    from sardana_redis.redis_connection import redis_client

    example = Path(__file__).resolve().parents[1] / "sardana_redis" / "users.conf.example"
    rules = next(line for line in example.read_text().splitlines()
                 if line.startswith("user reader "))
    rules = rules.removeprefix("user reader ").replace("#READER_SHA256", ">pass-w0rd").split()
    admin = redis_client(redis_url)
    admin.execute_command("ACL", "SETUSER", "reader", "reset", *rules)
    try:
        scan = FakeScan(redis_url, 3)
        scan.send(4)
        scan.end()
        reader_url = redis_url.replace("redis://", "redis://reader:pass-w0rd@", 1)
        service, address = start_web(reader_url, tmp_path / "web.log")
        try:
            base = address.rstrip("/")
            last = follow_scan(base, scan.key())[-1]
            assert last["scan"]["points"] == 4 and "error" not in last["scan"]
            about = urllib.request.urlopen(f"{base}/about").read().decode()
            assert "pass-w0rd" not in about + service.log() and "reader" in about
        finally:
            service.stop()
        denials = [e for e in admin.acl_log() if e.get("username") == "reader"]
        assert denials == []
    finally:
        admin.acl_deluser("reader")
        admin.acl_log_reset()


def test_the_list_follows_new_scans(redis_url, web):
    publish(redis_url, 1, None, points=2)
    events = sse_events(f"{web}/events/scans?session=tests&limit=5")
    first = next(data for event, data in events if event == "scans")
    assert [s["number"] for s in first] == [1]
    started = time.monotonic()
    scan = FakeScan(redis_url, 2)  # starts while the list is watched: pushed, not polled
    try:
        grown = next(data for event, data in events if event == "scans" and len(data) == 2)
        assert time.monotonic() - started < 1.0
        assert [s["number"] for s in grown] == [1, 2]  # seen as soon as it is created
        assert grown[0]["state"] == "CLOSED" and grown[1]["state"] != "CLOSED"
    finally:
        scan.end()
    events.close()


def test_redis_down_then_back(tmp_path):
    """A viewer opened while Redis is down says so, and shows the scan once Redis is back
    (its reader retries); the server itself never stops."""
    from sardana_redis.datastore import init_db
    from sardana_redis.local_stack.redis_server import RedisStackServer

    (tmp_path / "redis").mkdir()
    server = RedisStackServer(tmp_path / "redis", persistence=True).start()
    service = None
    try:
        init_db(server.url)
        key = publish(server.url, 1, None, points=7)
        service, address = start_web(server.url, tmp_path / "web.log")
        server.stop()  # saved on the way down
        messages = []

        def watch() -> None:
            for event, data in sse_events(f"{address}events/scan/{key}", timeout=60):
                if event == "scan":
                    messages.append(data)
                    if data["done"]:
                        return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        deadline = time.monotonic() + 20
        while not any("Redis unreachable" in m["scan"].get("error", "") for m in messages):
            assert time.monotonic() < deadline, messages
            time.sleep(0.1)
        server.start()
        watcher.join(30)
        last = messages[-1]
        assert last["done"] and "error" not in last["scan"], last
        assert last["scan"]["points"] == 7 and last["scan"]["state"] == "CLOSED"
        assert service.process.poll() is None
    finally:
        if service is not None:
            service.stop()
        server.stop()
