"""Start one of this project's Tango device servers by its class name:
``python -m sardana_redis.tango_server CLASS INSTANCE [Tango options]``.

The same as the console scripts ``RedisSpecWriter``, ``RedisNexusWriter`` and
``RedisMemoryTracker`` (``CLASS INSTANCE``), for environments whose scripts are not
on the ``PATH``.
"""

from __future__ import annotations

import importlib
import sys

from sardana_redis.tango_registration import SERVER_CLASSES


def main(argv: list[str] | None = None) -> None:
    """Run the server class named first in ``argv`` (default: ``sys.argv[1:]``)."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in SERVER_CLASSES:
        sys.exit(f"usage: python -m sardana_redis.tango_server CLASS INSTANCE [Tango options]"
                 f"\nCLASS: one of {', '.join(SERVER_CLASSES)}")
    device_class = getattr(importlib.import_module(SERVER_CLASSES[args[0]]), args[0])
    device_class.main(args[1:])


if __name__ == "__main__":
    main()
