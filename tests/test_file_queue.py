"""Scans queue for their files in creation order (pure)."""

from __future__ import annotations

from sardana_redis.following.file_queue import FileQueue


def test_scans_queue_for_their_files_in_creation_order():
    queue = FileQueue()
    queue.join("esrf:scan:01B", ["/d/a.dat"])
    queue.join("esrf:scan:01C", ["/d/a.dat", "/d/b.h5"])
    queue.join("esrf:scan:01D", ["/d/c.dat"])
    assert queue.my_turn("esrf:scan:01B", ["/d/a.dat"])
    assert not queue.my_turn("esrf:scan:01C", ["/d/a.dat", "/d/b.h5"])  # after 01B
    assert queue.my_turn("esrf:scan:01D", ["/d/c.dat"])  # another file
    queue.join("esrf:scan:01A", ["/d/b.h5"])  # created earlier, handed over later (a resume)
    assert not queue.my_turn("esrf:scan:01C", ["/d/a.dat", "/d/b.h5"])
    queue.leave("esrf:scan:01B")
    queue.leave("esrf:scan:01A")
    assert queue.my_turn("esrf:scan:01C", ["/d/a.dat", "/d/b.h5"])
