"""The SPEC writer as a Tango device server: ``RedisSpecWriter <instance>``.

Register it first (``sardana-redis tango-register RedisSpecWriter <instance>
--device a/b/c --property root_dirs=/data ...``), then run
``RedisSpecWriter <instance>`` or ``python -m sardana_redis.spec_writer.tango_server
<instance>``. Properties, commands, attributes and states: see
:class:`~sardana_redis.following.tango_device.WriterDevice`.
"""

from __future__ import annotations

from sardana_redis.following.tango_device import WriterDevice
from sardana_redis.spec_writer.writer import SpecScanWriter
from sardana_redis.tango_service import run_server


class RedisSpecWriter(WriterDevice):
    """Writes the scans published in Redis into SPEC files."""

    DEFAULT_WRITER_NAME = "spec-writer"  # the same as ``sardana-redis spec-writer``
    HANDLER = SpecScanWriter


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``RedisSpecWriter`` console script."""
    run_server(RedisSpecWriter, args)


if __name__ == "__main__":
    main()
