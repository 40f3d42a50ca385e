"""Macros configuring the RedisBlissRecorder (put this folder in the MacroServer's MacroPath).

    redis_config                          show the configuration, check Redis
    redis_enable / redis_disable          publish every scan to Redis, or stop
    redis_set_url redis://host:6379       where to publish
    redis_set_info proposal ihch1234      session, beamline, proposal, collection, dataset
    redis_set_files scans.h5 scans.dat    ask the writer services for these files
    redis_files on|off                    request files from the writers or not
    redis_set_spool /local/disk/spool     where scans wait while Redis is unreachable
"""

from __future__ import annotations

from typing import Any

import redis
from sardana.macroserver.macro import Macro, Type

from sardana_redis.datastore import is_initialized
from sardana_redis.publishing.sardana_adapter import (
    INFO_VARIABLES,
    RECORDER_NAME,
    URL_VARIABLE,
    WRITE_FILES_VARIABLE,
    requested_files,
)
from sardana_redis.publishing.spool import SPOOL_VARIABLE, Spool, spool_for
from sardana_redis.redis_connection import redis_client
from sardana_redis.redis_url import (
    DEFAULT_REDIS_URL,
    RedisURLError,
    is_sentinel_url,
    normalize_redis_url,
    redact_redis_url,
)
from sardana_redis.scan_model import FILE_FORMATS, file_format


def _env(macro: Macro, name: str, default: Any = None) -> Any:
    try:
        return macro.getEnv(name)
    except Exception:
        return default


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _redis_status(url: str) -> str:
    try:
        client = redis_client(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
            where = ""
            if is_sentinel_url(url):  # the sentinels' answer, as the publisher uses it
                host, port = client.connection_pool.get_master_address()
                where = f" (primary {host}:{port})"
            return f"reachable{where}, blissdata ready" if is_initialized(client) else \
                f"reachable{where}, not initialised yet (the first scan does it)"
        finally:
            client.close()
    except RedisURLError as exc:
        return f"invalid URL: {exc}"
    except redis.RedisError as exc:
        return f"UNREACHABLE ({exc})"


class redis_config(Macro):
    """Show the RedisBlissRecorder configuration and whether Redis answers."""

    def run(self) -> None:
        url = _env(self, URL_VARIABLE, DEFAULT_REDIS_URL)
        data_recorders = _as_list(_env(self, "DataRecorder"))
        scan_recorders = _as_list(_env(self, "ScanRecorder"))
        files = requested_files(_env(self, "ScanDir"), _env(self, "ScanFile"), scan_recorders)
        publishing = RECORDER_NAME in data_recorders or RECORDER_NAME in scan_recorders
        rows = [
            ("Publishing", "yes" if publishing else "NO (run redis_enable)"),
            (URL_VARIABLE, f"{redact_redis_url(url)}: {_redis_status(url)}"),
        ]
        rows += [(var, str(_env(self, var, "") or "-")) for var in INFO_VARIABLES.values()]
        rows.append((WRITE_FILES_VARIABLE, str(bool(_env(self, WRITE_FILES_VARIABLE, True)))))
        rows.append(("Files requested", ", ".join(f"{f.path} ({f.format})" for f in files) or "-"))
        rows.append(("Spool", _spool_status(spool_for(_env(self, SPOOL_VARIABLE)))))
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            self.output(f"{name:>{width}}  {value}")


def _spool_status(spool: Spool) -> str:
    usage = spool.usage()
    held = (f"{usage.scans} scans held ({usage.points} points, {usage.bytes / 1e6:.1f} MB)"
            if usage.scans else "empty")
    state = "" if usage.writable else f"; NOT WRITABLE ({usage.error or 'permission denied'})"
    return f"{usage.folder}: {held}, limit {spool.max_bytes / 1e9:.0f} GB{state}"


class redis_set_spool(Macro):
    """Set the folder where scans are kept while Redis is unreachable (RedisSpoolDir).

    A local disk of the MacroServer's host, writable by its user; an empty value ("")
    goes back to the default ($SARDANA_REDIS_SPOOL, else ~/.local/state/sardana-redis/spool).
    """

    param_def = [["folder", Type.String, None, "a local folder"]]

    def run(self, folder: str) -> None:
        if folder:
            self.setEnv(SPOOL_VARIABLE, folder)
        else:
            try:
                self.unsetEnv(SPOOL_VARIABLE)
            except Exception:
                pass  # not set
        status = _spool_status(spool_for(folder or None))
        self.output(f"{SPOOL_VARIABLE} = {folder or '(default)'}: {status}")
        if "NOT WRITABLE" in status:
            self.warning("the spool folder cannot be written: while Redis is unreachable, "
                         "scans are kept in memory only")


class redis_enable(Macro):
    """Publish every scan to Redis (adds RedisBlissRecorder to DataRecorder)."""

    def run(self) -> None:
        recorders = _as_list(_env(self, "DataRecorder"))
        if RECORDER_NAME not in recorders:
            self.setEnv("DataRecorder", recorders + [RECORDER_NAME])
        url = _env(self, URL_VARIABLE, DEFAULT_REDIS_URL)
        self.output(f"Scans are published to {redact_redis_url(url)}")


class redis_disable(Macro):
    """Stop publishing scans to Redis (removes RedisBlissRecorder from DataRecorder and
    ScanRecorder)."""

    def run(self) -> None:
        recorders = [r for r in _as_list(_env(self, "DataRecorder")) if r != RECORDER_NAME]
        self.setEnv("DataRecorder", recorders)
        scan_recorders = _as_list(_env(self, "ScanRecorder"))
        if RECORDER_NAME in scan_recorders:
            self.warning("ScanRecorder still routes files to RedisBlissRecorder: "
                         "use redis_set_files or senv ScanRecorder to change it")
        self.output("Scans are no longer published to Redis by DataRecorder")


class redis_set_url(Macro):
    """Set the Redis URL scans are published to (RedisURL)."""

    param_def = [["url", Type.String, None, "e.g. redis://localhost:6379"]]

    def run(self, url: str) -> None:
        try:
            normalize_redis_url(url)
        except RedisURLError as exc:
            raise ValueError(str(exc)) from None
        self.setEnv(URL_VARIABLE, url)
        status = _redis_status(url)
        self.output(f"{URL_VARIABLE} = {redact_redis_url(url)}: {status}")
        if status.startswith("UNREACHABLE"):
            self.warning("Redis does not answer: scans will run but not be published")


class redis_set_info(Macro):
    """Set scan identity information: session, beamline, proposal, collection or dataset.

    An empty value ("") clears it. The session defaults to the Door's name.
    """

    param_def = [
        ["field", Type.String, None, "one of: " + ", ".join(INFO_VARIABLES)],
        ["value", Type.String, None, 'the value ("" to clear)'],
    ]

    def run(self, field: str, value: str) -> None:
        variable = INFO_VARIABLES.get(field.lower())
        if variable is None:
            raise ValueError(f"unknown field {field!r}: use one of {', '.join(INFO_VARIABLES)}")
        value = value.strip().strip("'\"")
        if value:
            self.setEnv(variable, value)
            self.output(f"{variable} = {value}")
        else:
            if _env(self, variable) is not None:
                self.unsetEnv(variable)
            self.output(f"{variable} cleared")


class redis_set_files(Macro):
    """Ask the writer services for these files (ScanFile, routed to RedisBlissRecorder).

    .h5/.hdf5/.nxs files go to the NeXus writer, .dat/.spec files to the SPEC
    writer. Files are relative to ScanDir.
    """

    param_def = [
        ["files", [["file", Type.String, None, "file name, e.g. scans.h5"], {"min": 1}],
         None, "file names"],
    ]

    def run(self, files: list[str]) -> None:
        bad = [f for f in files if file_format(f) is None]
        if bad:
            raise ValueError(f"unsupported file type(s) {', '.join(bad)}: "
                             f"use one of {', '.join(sorted(FILE_FORMATS))}")
        escaping = [f for f in files if f.startswith("/") or ".." in f.split("/")]
        if escaping:
            raise ValueError(f"file names must be relative to ScanDir: {', '.join(escaping)}")
        self.setEnv("ScanFile", list(files))
        self.setEnv("ScanRecorder", [RECORDER_NAME] * len(files))
        scan_dir = _env(self, "ScanDir")
        if not scan_dir:
            self.warning('ScanDir is not set: senv ScanDir "/path/to/data"')
        self.output(f"Files requested from the writers: {', '.join(files)} (in {scan_dir or '?'})")


class redis_files(Macro):
    """Turn requesting files from the writer services on or off (RedisWriteFiles)."""

    param_def = [["state", Type.String, None, "on or off"]]

    def run(self, state: str) -> None:
        value = {"on": True, "off": False, "true": True, "false": False}.get(state.lower())
        if value is None:
            raise ValueError(f"expected on or off, got {state!r}")
        self.setEnv(WRITE_FILES_VARIABLE, value)
        self.output(f"{WRITE_FILES_VARIABLE} = {value}")
