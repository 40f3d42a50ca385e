"""The SPEC writer as a Tango device server: ``RedisSpecWriter <instance>``.

Register it first (``sardana-redis tango-register RedisSpecWriter <instance>
--device a/b/c --property root_dirs=/data ...``), then run
``RedisSpecWriter <instance>`` or ``python -m sardana_redis.spec_writer.tango_server
<instance>``. Properties, commands, attributes and states: see
:class:`~sardana_redis.following.tango_device.WriterDevice`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tango.server import run

from sardana_redis.following.tango_device import WriterDevice
from sardana_redis.spec_writer.writer import SpecScanWriter


SERVER_NAME = "RedisSpecWriter"


class RedisSpecWriter(WriterDevice):
    """Writes the scans published in Redis into SPEC files."""

    DEFAULT_WRITER_NAME = "spec-writer"  # the same as ``sardana-redis spec-writer``

    def make_handler(self) -> SpecScanWriter:
        """A SPEC writer confined to ``root_dirs``, with ``default_file`` for scans
        that request no SPEC file."""
        return SpecScanWriter([Path(d) for d in self.root_dirs], self.default_file or None)


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``RedisSpecWriter`` console script.

    ``args`` are the Tango server arguments (default: ``sys.argv[1:]``): the
    instance name first. The server is named ``RedisSpecWriter`` however it
    is started (Tango names it after ``argv[0]``, which ``python -m`` sets to
    this file's path).
    """
    argv = sys.argv[1:] if args is None else args
    run((RedisSpecWriter,), args=[SERVER_NAME, *argv])


if __name__ == "__main__":
    main()
