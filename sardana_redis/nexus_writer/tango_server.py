"""The NeXus writer as a Tango device server: ``RedisNexusWriter <instance>``.

Register it first (``sardana-redis tango-register RedisNexusWriter <instance>
--device a/b/c --property root_dirs=/data ...``), then run
``RedisNexusWriter <instance>``. Properties, commands, attributes and states:
see :class:`~sardana_redis.following.tango_device.WriterDevice`.
"""

from __future__ import annotations

from sardana_redis.following.tango_device import WriterDevice
from sardana_redis.nexus_writer.writer import NexusScanWriter
from sardana_redis.tango_service import run_server


class RedisNexusWriter(WriterDevice):
    """Writes the scans published in Redis into NeXus/HDF5 files."""

    DEFAULT_WRITER_NAME = "nexus-writer"  # the same as ``sardana-redis nexus-writer``
    HANDLER = NexusScanWriter


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``RedisNexusWriter`` console script."""
    run_server(RedisNexusWriter, args)


if __name__ == "__main__":
    main()
