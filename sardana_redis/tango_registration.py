"""Registering this project's Tango device servers without Jive.

:func:`register_device_server` adds ``CLASS/INSTANCE`` with one device to the
Tango database of ``$TANGO_HOST`` and sets the given device properties; the
``sardana-redis tango-register`` subcommand (:func:`add_tango_register_parser`)
does it from the command line.
"""

from __future__ import annotations

import argparse

from sardana_redis.redis_url import redact_redis_url

#: Device server classes of this project: class name -> the module that defines it.
SERVER_CLASSES = {
    "RedisSpecWriter": "sardana_redis.tango_writers",
    "RedisNexusWriter": "sardana_redis.tango_writers",
    "RedisMemoryTracker": "sardana_redis.memory_tracker.tango_server",
}


def register_device_server(server_class: str, instance: str, device: str,
                           properties: dict[str, list[str] | str]) -> None:
    """Register ``device`` of class ``server_class`` in the server ``server_class/instance``
    and set its ``properties``.

    Idempotent: registering again the same device updates the given properties and
    keeps the other ones. A device registered in another server or class is refused
    (ValueError) rather than moved.
    """
    import tango  # imported here: the sardana-redis command line starts faster without

    server = f"{server_class}/{instance}"
    db = tango.Database()
    try:
        info = db.get_device_info(device)
    except tango.DevFailed as exc:
        if exc.args[0].reason != "DB_DeviceNotDefined":
            raise
        info = None
    if info is not None and (info.ds_full_name.lower() != server.lower()
                             or info.class_name != server_class):
        raise ValueError(f"{device} is already registered in server {info.ds_full_name} as "
                         f"class {info.class_name}; delete it first to register it in {server}")
    dev_info = tango.DbDevInfo()
    dev_info.name, dev_info._class, dev_info.server = device, server_class, server
    db.add_server(server, dev_info, with_dserver=True)
    if properties:
        db.put_device_property(device, {name: [value] if isinstance(value, str) else list(value)
                                        for name, value in properties.items()})


def _parse_properties(items: list[str]) -> dict[str, list[str] | str]:
    """``["a=1", "b=x", "b=y"]`` -> ``{"a": "1", "b": ["x", "y"]}``."""
    properties: dict[str, list[str] | str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--property {item!r}: expected NAME=VALUE")
        if name not in properties:
            properties[name] = value
        else:
            previous = properties[name]
            properties[name] = [*([previous] if isinstance(previous, str) else previous), value]
    return properties


def cmd_tango_register(args: argparse.Namespace) -> int:
    """Register a device server of this project in the Tango database ($TANGO_HOST)."""
    import tango

    try:
        properties = _parse_properties(args.property)
        register_device_server(args.server_class, args.instance, args.device, properties)
        db = tango.Database()
    except ValueError as exc:
        raise RuntimeError(str(exc)) from None
    except tango.DevFailed as exc:
        raise RuntimeError(f"Tango database: {exc.args[0].desc.strip()}") from None
    server = f"{args.server_class}/{args.instance}"
    print(f"Registered {args.device} (class {args.server_class}) in server {server} "
          f"of the Tango database {db.get_db_host()}:{db.get_db_port()}")
    for name, value in properties.items():
        shown = redact_redis_url(value) if name == "redis_url" and isinstance(value, str) else value
        print(f"  {name} = {shown}")  # never print a Redis password
    print(f"Start it with: {args.server_class} {args.instance}")
    print(f"           or: python -m sardana_redis.tango_server {args.server_class} "
          f"{args.instance}")
    return 0


def add_tango_register_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``tango-register`` subcommand to the ``sardana-redis`` command line."""
    p = subparsers.add_parser(
        "tango-register", help="register a writer/tracker Tango device server (no Jive needed)",
        description=(cmd_tango_register.__doc__ or "")
        + " Registering again updates the properties.")
    p.add_argument("server_class", metavar="CLASS", choices=list(SERVER_CLASSES),
                   help=f"device server class: {', '.join(SERVER_CLASSES)}")
    p.add_argument("instance", metavar="INSTANCE", help="server instance name, e.g. bl01")
    p.add_argument("--device", required=True, metavar="DOMAIN/FAMILY/MEMBER",
                   help="device name, e.g. bl01/redis/specwriter")
    p.add_argument("--property", action="append", default=[], metavar="NAME=VALUE",
                   help="device property; repeat a name to give a list, e.g. "
                        "--property root_dirs=/data --property root_dirs=/scratch")
    p.set_defaults(func=cmd_tango_register)
