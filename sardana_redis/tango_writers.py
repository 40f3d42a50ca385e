"""The writers as Tango device servers: ``RedisSpecWriter <instance>`` and
``RedisNexusWriter <instance>``.

Register one first (``sardana-redis tango-register RedisSpecWriter <instance> --device
a/b/c --property root_dirs=/data ...``), then run ``RedisSpecWriter <instance>`` (or
``python -m sardana_redis.tango_server RedisSpecWriter <instance>``). Each device runs the
file writer of its format; properties, commands, attributes and states: see
:class:`~sardana_redis.following.tango_device.WriterDevice`.
"""

from __future__ import annotations

from sardana_redis.following.tango_device import WriterDevice
from sardana_redis.nexus_writer.writer import NexusScanWriter
from sardana_redis.spec_writer.writer import SpecScanWriter


class RedisSpecWriter(WriterDevice):
    """Writes the scans published in Redis into SPEC files."""

    HANDLER = SpecScanWriter


class RedisNexusWriter(WriterDevice):
    """Writes the scans published in Redis into NeXus/HDF5 files."""

    HANDLER = NexusScanWriter
