"""Hostile input, property-based: random and malicious scans published straight into a real
Redis while the real SPEC writer, NeXus writer and memory tracker run as processes.

Scans come in two ways: through blissdata (``DataStore.create_scan``/``create_stream``:
odd names, wrong types in ``scan_info``, odd shapes and values, hostile file names,
oversized info, duplicated numbers), and **raw**: a well-formed scan is published by
blissdata into a *staging* Redis, copied key by key into the followed Redis with a
corruption on the way (what blissdata itself refuses to produce: malformed scan
documents, states going backwards or skipping, streams listed but missing, garbage in
the scan history...), its history entry last, so the services see it whole.

After each hostile example a well-formed **sentinel** scan is published and must be
written completely by both writers, while every service stays alive; each hostile scan
must be written (when it is valid) or given up with a log line naming it; nothing may
appear outside the root. The sentinels make the reliability row.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import redis
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from sardana_redis.browse import list_scans
from sardana_redis.cli import main as cli_main
from sardana_redis.datastore import init_db
from sardana_redis.following.ledger import DoneRecord
from sardana_redis.local_stack.redis_server import RedisStackServer
from sardana_redis.local_stack.services import ServiceProcess
from tests.publish import publish
from tests.reliability.accounting import ScanRef, points_in_files, tally
from tests.reliability.report import full_scale
from tests.services import wait_done, writer_process

SPEC, NEXUS = "spec-writer", "nexus-writer"
WRITERS = (SPEC, NEXUS)
KINDS = {SPEC: ("spec", ".dat"), NEXUS: ("nexus", ".h5")}
SENTINEL_POINTS = 7
#: Seconds a hostile scan may take to be given up (the tracker closes abandoned ones after
#: INACTIVE seconds, writers stop waiting for never-sealed streams 5 s after the scan stopped).
HOSTILE_TIMEOUT = 45
INACTIVE = 4

#: Deterministic (CI), no deadline (services are slow), no shrinking (each example waits on
#: real services: a failure is reported as generated, with its explicit @example to add).
PROFILE = settings(derandomize=True, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck),
                   phases=(Phase.explicit, Phase.reuse, Phase.generate))


def scaled(quick: int) -> settings:
    """Examples per property: ``quick`` at quick scale, 6 times more under ``full_scale()``."""
    return settings(PROFILE, max_examples=quick * (6 if full_scale() else 1))


# --- the stack: one Redis, one staging Redis, three services ---------------------------


@dataclass
class Stack:
    """What every example works with, and what the module has counted."""

    url: str
    staging_url: str
    base: Path  #: holds root, outside, logs, Redis
    root: Path  #: the writers' only root
    outside: Path  #: target of the symbolic link root/link
    services: dict[str, ServiceProcess]
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1000))
    sentinels: dict[ScanRef, int] = field(default_factory=dict)
    outcomes: Counter = field(default_factory=Counter)
    escape_watch: set[Path] = field(default_factory=set)

    @property
    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def fresh_files(self, stem: str = "h") -> dict[str, Path]:
        """A new SPEC and NeXus file name under the root, by format."""
        n = next(self.numbers)
        return {fmt: self.root / f"{stem}{n}{ext}" for fmt, ext in KINDS.values()}

    def outside_files(self) -> set[Path]:
        """Every file outside the root, the Redis folder and the logs (must never change)."""
        found = set()
        for path in self.base.rglob("*"):
            if path.is_relative_to(self.root) or path.is_relative_to(self.base / "redis") \
                    or path.suffix == ".log":
                continue
            found.add(path)
        return found


def _services(url: str, base: Path, root: Path) -> dict[str, ServiceProcess]:
    services = {name: writer_process(name, url, root, base / f"{name}.log") for name in WRITERS}
    services["memory-tracker"] = ServiceProcess(
        "memory-tracker", ["--redis-url", url, "--monitoring-period", "1",
                           "--inactive-scan-deletion", str(INACTIVE)], base / "memory-tracker.log")
    return services


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """A Redis (256 MB) followed by both writers and the tracker, a staging Redis for raw
    scans, a root with a symbolic link to a folder outside it."""
    base = tmp_path_factory.mktemp("hostile")
    root, outside = base / "data", base / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    for ext in (".dat", ".h5"):
        (root / f"file-link{ext}").symlink_to(outside / f"target{ext}")
        (root / f"adir{ext}").mkdir()
    with RedisStackServer(base / "redis" / "main", maxmemory="256mb") as server, \
            RedisStackServer(base / "redis" / "staging", maxmemory="256mb") as staging:
        init_db(server.url)
        init_db(staging.url)
        services = _services(server.url, base, root)
        try:
            for name, service in services.items():
                service.start(ready="Memory usage" if name == "memory-tracker" else "Waiting for scan")
            stack = Stack(server.url, staging.url, base, root, outside, services)
            stack.escape_watch = stack.outside_files()
            yield stack
        finally:
            for service in services.values():
                service.stop()


# --- publishing through blissdata ------------------------------------------------------


@dataclass
class StreamSpec:
    """One stream of a published scan: its definition and the points sent (None: none)."""

    name: str
    dtype: str = "float64"
    shape: tuple[int, ...] = ()
    values: Any = None


def point_streams(points: int, extra: list[StreamSpec] = ()) -> list[StreamSpec]:
    """``#Pt No`` (0..points-1, what the accounting reads) first, then ``extra``."""
    return [StreamSpec("#Pt No", "int64", (), np.arange(points, dtype="int64")), *extra]


def requested(files: dict[str, Any]) -> dict[str, Any]:
    """``scan_info.sardana`` asking for these files (format -> path)."""
    return {"requested_files": [{"path": str(p), "format": fmt} for fmt, p in files.items()]}


def finish(scan: Any, reason: str = "SUCCESS") -> None:
    """Walk a scan to CLOSED from whatever state it is in, as a publisher ending on an error."""
    from blissdata.redis_engine.scan import ScanState

    for state, step in ((ScanState.CREATED, scan.prepare), (ScanState.PREPARED, scan.start),
                        (ScanState.STARTED, scan.stop)):
        if scan.state == state:
            step()
    scan.info["end_reason"] = reason
    scan.close()


def publish_direct(url: str, identity: dict[str, Any], info: dict[str, Any],
                   streams: list[StreamSpec]) -> str | None:
    """A whole scan through blissdata; None when blissdata refused to create it.

    A stream blissdata refuses (definition or data) is left out, as a publisher would
    carry on without it; the scan is always closed.
    """
    store = DataStore(url)
    try:
        scan = store.create_scan({"data_policy": "no_policy", **identity}, info=info)
    except Exception:  # noqa: BLE001 - e.g. scan_info over 1 MB: nothing was published
        return None
    writers = []
    try:
        for spec in streams:
            with contextlib.suppress(Exception):
                writers.append((scan.create_stream(Stream.make_definition(
                    spec.name, spec.dtype, spec.shape)), spec.values))
        scan.prepare()
        scan.start()
        for stream, values in writers:
            if values is not None and len(values):
                with contextlib.suppress(Exception):
                    stream.send(values)
    finally:
        finish(scan)
    return scan.key


# --- raw scans: staged by blissdata, copied with a corruption ---------------------------


@dataclass
class RawScan:
    """A scan's Redis keys as plain data, to corrupt before copying them."""

    key: str
    doc: Any  #: the scan document (a JSON value)
    state_key: str
    states: list[dict[str, Any]]  #: state stream entries
    streams: dict[str, bytes]  #: data stream key -> DUMP
    history: dict[str, Any]  #: the _SCAN_HISTORY_ entry
    doc_text: str | None = None  #: raw JSON text instead of ``doc``

    @classmethod
    def fetch(cls, client: redis.Redis, key: str) -> "RawScan":
        doc = json.loads(client.execute_command("JSON.GET", key))
        prefix = key.split(":", 1)[0] + ":stream:"
        state_key = prefix + doc["state_stream"]["pk"]
        states = [{k.decode(): v.decode() for k, v in fields.items()}
                  for _, fields in client.xrange(state_key)]
        streams = {prefix + m["pk"]: client.dump(prefix + m["pk"]) for m in doc["data_streams"].values()}
        return cls(key, doc, state_key, states, streams, {"key": key})

    def push(self, client: redis.Redis) -> None:
        """Write it into ``client``'s Redis, the history entry last (the services see it whole)."""
        for key, dump in self.streams.items():
            client.restore(key, 0, dump, replace=True)
        for fields in self.states:
            client.xadd(self.state_key, fields)
        client.execute_command("JSON.SET", self.key, "$", self.doc_text or json.dumps(self.doc))
        client.xadd("_SCAN_HISTORY_", self.history, maxlen=2048)


#: A document RedisJSON refuses, or that cannot even be encoded (too deep for json.dumps).
REFUSED = (redis.ResponseError, RecursionError)


def publish_raw(stack: Stack, number: int, files: dict[str, Path], points: int,
                corrupt: Callable[[RawScan], None]) -> RawScan:
    """A well-formed scan staged by blissdata, corrupted, then copied into the followed Redis."""
    key = publish_direct(stack.staging_url, {"name": "ascan", "number": number, "session": "raw"},
                         {"title": f"raw #{number}", "sardana": requested(files)},
                         point_streams(points, [StreamSpec("ct01", values=np.arange(points) / 10)]))
    raw = RawScan.fetch(redis.Redis.from_url(stack.staging_url), key)
    corrupt(raw)
    raw.push(stack.client)
    return raw


# --- one hostile example: publish, sentinel, checks -------------------------------------


@dataclass
class Hostile:
    """What a hostile example published and what is expected of it."""

    keys: list[str]  #: scans published (refused ones are absent)
    expect: str = "any"  #: "written": both writers must write it; "any": written or given up
    points: int = 0  #: points of each scan, when "written"
    files: dict[str, Path] = field(default_factory=dict)  #: format -> file, when "written"
    numbers: list[int] = field(default_factory=list)
    columns: int = 1  #: scalar streams each file must hold, when "written"


def publish_sentinel(stack: Stack) -> str:
    """A well-formed scan to both sentinel files (its points are counted in the table)."""
    number = next(stack.numbers)
    files = {fmt: stack.root / f"sentinel{ext}" for fmt, ext in KINDS.values()}
    key = publish(stack.url, number, None, points=SENTINEL_POINTS, session="sentinel",
                  info={"sardana": requested(files)})
    for fmt, path in files.items():
        stack.sentinels[(fmt, str(path), number)] = SENTINEL_POINTS
    return key


def check_alive(stack: Stack) -> None:
    for name, service in stack.services.items():
        assert service.process.poll() is None, f"{name} died:\n{service.log()[-3000:]}"


def check_given_up_loudly(stack: Stack, writer: str, key: str, record: DoneRecord) -> None:
    """A hostile scan not written has a reason and a WARNING/ERROR log line naming it."""
    assert record.detail, record
    if record.status == "skipped" and "file requested" in record.detail:
        return  # nothing of this format asked for: not hostile for this writer
    lines = [line for line in stack.services[writer].log().splitlines() if key in line]
    assert any(" - WARNING - " in line or " - ERROR - " in line for line in lines), \
        f"{writer} gave up {key} ({record}) without saying so:\n" + "\n".join(lines)


def check_written(hostile: Hostile, records: dict[str, list[DoneRecord]]) -> None:
    """A valid hostile scan is in both files, every point once."""
    for writer, done in records.items():
        assert all(r.status == "written" for r in done), (writer, done)
    refs = {(fmt, str(path), n): hostile.points for fmt, path in hostile.files.items()
            for n in hostile.numbers}
    result = tally("valid hostile scan", refs)
    assert result.clean and result.scans_out == len(refs), (result, points_in_files(refs))
    for fmt, path in hostile.files.items():
        for number in hostile.numbers:
            assert file_columns(fmt, path, number) == hostile.columns, (fmt, path, number)


def file_columns(fmt: str, path: Path, number: int) -> int:
    """Columns of scan ``number`` in a file: SPEC ``#N``, NeXus datasets in ``measurement``."""
    if fmt == "nexus":
        with h5py.File(path, "r", locking=False) as f:
            return len(f[f"entry{number}/measurement"])
    block = path.read_text(errors="replace").split(f"\n#S {number} ", 1)[1]
    return int(next(line for line in block.splitlines() if line.startswith("#N "))[3:])


def check_browse(stack: Stack, keys: list[str]) -> None:
    """``sardana-redis scans``, ``show`` and ``plot`` end normally or with a clear error (plot:
    or 1, nothing drawn, each panel saying why), never a traceback."""
    list_scans(DataStore(stack.url), limit=0)
    with tempfile.TemporaryDirectory() as folder:
        png = ["-o", str(Path(folder) / "scan.png")]
        for argv in (["scans", "--limit", "0"], *(["show", key] for key in keys),
                     *(["plot", key, *png] for key in keys)):
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli_main([*argv[:1], "--redis-url", stack.url, *argv[1:]])
            assert code in (0, 1, 2) if argv[0] == "plot" else code in (0, 2), \
                (argv, code, err.getvalue())
            assert code != 2 or "error:" in err.getvalue()
            assert code != 1 or "not drawn: " in err.getvalue()


def run_example(stack: Stack, hostile: Hostile) -> None:
    """After a hostile example: the sentinel is written, services alive, verdicts loud."""
    sentinel = publish_sentinel(stack)
    for writer in WRITERS:
        record = wait_done(stack.url, sentinel, writer, timeout=HOSTILE_TIMEOUT)
        assert record.status == "written" and record.points == SENTINEL_POINTS, (writer, record)
    check_alive(stack)
    records = {w: [wait_done(stack.url, k, w, timeout=HOSTILE_TIMEOUT) for k in hostile.keys]
               for w in WRITERS}
    stack.outcomes["hostile scans"] += len(hostile.keys)
    for i, key in enumerate(hostile.keys):
        written = [records[w][i].status == "written" for w in WRITERS]
        stack.outcomes["written" if all(written) else "rejected" if not any(written) else "mixed"] += 1
        for writer in WRITERS:
            if records[writer][i].status != "written":
                check_given_up_loudly(stack, writer, key, records[writer][i])
    if hostile.expect == "written":
        check_written(hostile, records)
    check_alive(stack)
    check_browse(stack, hostile.keys)
    assert stack.outside_files() == stack.escape_watch, "a file appeared outside the root"


# --- strategies --------------------------------------------------------------------------

#: Any character but surrogates (which cannot be encoded): controls, NUL, RTL marks, emoji.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
NASTY_TEXT = st.one_of(TEXT, st.sampled_from([
    "", "\x00", "line\nbreak", "\r\n#S 1 fake", "x\n0 1 2 3", "\u2028sep", "\x85nel", "tab\there",
    "é ü 漢字 🚀", "\u202eevil", "../../etc", "/", "a" * 5000, "%s%n{0}", "<script>"]))

#: Any JSON value, a little deep.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | NASTY_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(NASTY_TEXT, children, max_size=4),
    max_leaves=12)


def unique_names(min_size: int = 1) -> st.SearchStrategy[list[str]]:
    """Stream names, hostile, distinct, none of them ``#Pt No``."""
    return st.lists(NASTY_TEXT.filter(lambda s: s != "#Pt No"), min_size=min_size, max_size=4,
                    unique=True)


# --- properties ---------------------------------------------------------------------------


@scaled(4)
@given(title=NASTY_TEXT, user=NASTY_TEXT, session=NASTY_TEXT, names=unique_names(),
       labels=st.lists(NASTY_TEXT, max_size=4), points=st.integers(1, 20))
@example(title="ascan\x00 é 漢字\n#S 1 fake", user="\r\n", session="é", names=["ct 1", "ct_1", "ct1"],
         labels=["\n0 1 2", "", "#L x"], points=3)
def test_unicode_and_control_characters_in_names(stack, title, user, session, names, labels, points):
    """Odd titles, users, sessions, stream names and labels are valid: both files get the scan."""
    files = stack.fresh_files()
    number = next(stack.numbers)
    extra = [StreamSpec(name, values=np.full(points, i + 0.5)) for i, name in enumerate(names)]
    columns = [{"stream": "#Pt No", "label": "#Pt No"}] + [
        {"stream": name, "label": label} for name, label in zip(names, labels)]
    key = publish_direct(stack.url, {"name": "ascan", "number": number, "session": session},
                         {"title": title, "user_name": user,
                          "sardana": {**requested(files), "columns": columns}},
                         point_streams(points, extra))
    run_example(stack, Hostile([key], "written", points, files, [number], columns=1 + len(names)))


@scaled(5)
@given(fields=st.dictionaries(st.sampled_from(
    ["title", "start_time", "end_time", "user_name", "npoints", "plots", "positioners", "h5maps",
     "count_time", "type"]), JSON, min_size=1, max_size=4),
    sardana=st.dictionaries(st.sampled_from(["columns", "beamline", "requested_files", "scan_dir"]),
                            JSON, max_size=3))
@example(fields={"title": 42, "plots": "curve", "h5maps": [1]}, sardana={"columns": [5, None]})
@example(fields={"positioners": {"positioners_start": {"m\n#S 9": math.nan, "m2": math.inf}}},
         sardana={"requested_files": [{"path": 7}]})
def test_wrong_types_in_scan_info(stack, fields, sardana):
    """Wrong types anywhere in scan_info: written, or given up with a log line."""
    files = stack.fresh_files()
    info = {**fields, "sardana": {**requested(files), **sardana}}
    key = publish_direct(stack.url, {"name": "ascan", "number": next(stack.numbers), "session": "t"},
                         info, point_streams(5, [StreamSpec("ct01", values=np.arange(5.0))]))
    run_example(stack, Hostile([key] if key else []))


SHAPES = st.sampled_from([(), (1,), (3,), (0,), (-1,), (-5,), (2, 3), (0, 0), (10**9,), (2**31, 2**31),
                          (-1, -1), (4, 4, 4), (1,) * 12])
DTYPES = st.sampled_from(["float64", "float32", "int8", "uint64", "bool", "complex128", "float16"])
SPECIAL = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e-308, 5e-324])


@st.composite
def odd_streams(draw) -> list[StreamSpec]:
    """Streams of odd dtypes and shapes; data sent when it fits the shape (with NaN/inf)."""
    streams = []
    for i, (dtype, shape) in enumerate(draw(st.lists(st.tuples(DTYPES, SHAPES), max_size=3))):
        values = None
        if all(0 < d <= 8 for d in shape):
            raw = np.array(draw(st.lists(SPECIAL, min_size=1, max_size=4)) * int(np.prod(shape)) * 5)
            with np.errstate(all="ignore"):
                values = raw[:5 * int(np.prod(shape))].reshape(5, *shape).astype(dtype)
        streams.append(StreamSpec(f"s{i}", dtype, shape, values))
    return streams


@scaled(5)
@given(streams=odd_streams(), floats=st.lists(SPECIAL, min_size=5, max_size=5))
@example(streams=[StreamSpec("huge", "float64", (10**9,)), StreamSpec("neg", "float64", (-5,))],
         floats=[math.nan, math.inf, -math.inf, 0.0, 1.0])
def test_odd_shapes_dtypes_and_special_values(stack, streams, floats):
    """Huge, negative, empty, variable shapes; NaN and inf values. The scalar NaN/inf column
    alone is valid; with odd streams next to it the scan may be given up, loudly."""
    files = stack.fresh_files()
    number = next(stack.numbers)
    base = point_streams(5, [StreamSpec("nan_inf", values=np.array(floats))])
    key = publish_direct(stack.url, {"name": "ascan", "number": number, "session": "t"},
                         {"title": "odd", "sardana": requested(files)}, base + streams)
    run_example(stack, Hostile([key], "written" if not streams else "any", 5, files, [number], 2))


def hostile_paths(stack: Stack) -> list[str]:
    """File names that must never be written (outside the root, or malformed)."""
    root, base = stack.root, stack.base
    return [f"{root}/../escape", str(base / "escape"), f"{root}/link/escape", f"{root}/file-link",
            f"{root}/nul\x00byte", "relative/escape", f"{root}/{'n' * 300}", f"{root}/" + "d/" * 3000 + "x",
            f"{root}/new\nline", f"{root}/adir", f"{root}/link/../../escape", "/etc/escape"]


@scaled(5)
@given(picks=st.lists(st.integers(0, 11), min_size=1, max_size=3), fmt_of=st.sampled_from(
    ["suffix", "spec", "nexus", None]), in_h5maps=st.booleans(), good_too=st.booleans())
@example(picks=[3], fmt_of="suffix", in_h5maps=False, good_too=False)
@example(picks=[2, 0], fmt_of="nexus", in_h5maps=True, good_too=True)
def test_hostile_file_names(stack, picks, fmt_of, in_h5maps, good_too):
    """Traversal, outside absolute paths, symbolic links out of the root, NUL, long names: never
    written outside the root (the root's own files may still be written)."""
    names = [hostile_paths(stack)[i] for i in picks]
    entries = []
    for name in names:
        for fmt, ext in KINDS.values():
            if fmt_of == "suffix":
                entries.append({"path": name + ext})
            else:
                entries.append({"path": name + ext, "format": fmt_of or fmt})
    if good_too:
        entries += requested(stack.fresh_files())["requested_files"]
    info = {"sardana": {"requested_files": entries}}
    if in_h5maps:
        info["h5maps"] = {name + ".h5": {"type": "group", "children": {}} for name in names}
    key = publish_direct(stack.url, {"name": "ascan", "number": next(stack.numbers), "session": "t"},
                         info, point_streams(3))
    run_example(stack, Hostile([key]))


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"d": value}
    return value


@scaled(3)
@given(size=st.sampled_from([2**20 - 4096, 2**20 + 1, 5 * 2**20]),
       depth=st.sampled_from([0, 50, 127, 129, 2000]), raw=st.booleans())
@example(size=2**20 - 4096, depth=0, raw=False)
@example(size=3 * 2**20, depth=0, raw=True)
def test_oversized_and_deeply_nested_scan_info(stack, size, depth, raw):
    """scan_info near and over blissdata's 1 MB cap, and deeply nested: written, refused at the
    source (blissdata, RedisJSON), or given up loudly."""
    files = stack.fresh_files()
    number = next(stack.numbers)
    pad = "x" * (size - 1000)

    def inflate(scan: RawScan) -> None:
        scan.doc["info"].update(pad=pad, deep=nested(depth))

    if raw:
        try:
            key = publish_raw(stack, number, files, 5, inflate).key
        except REFUSED:  # too deep a document: nothing published
            key = None
    else:
        key = publish_direct(stack.url, {"name": "ascan", "number": number, "session": "t"},
                             {"pad": pad, "deep": nested(depth), "sardana": requested(files)},
                             point_streams(5))
    valid = not raw and size < 2**20 and depth <= 50
    assert key or not valid, "blissdata refused a valid scan_info"
    run_example(stack, Hostile([key] if key else [], "written" if valid else "any", 5, files, [number]))


@scaled(3)
@given(count=st.integers(2, 3), same_nexus=st.booleans())
@example(count=2, same_nexus=True)
def test_duplicated_scan_numbers_into_one_file(stack, count, same_nexus):
    """The same number into the same files: SPEC appends every block; NeXus writes the first
    entry and gives the others up (an entry is never overwritten)."""
    files = stack.fresh_files("dup")
    number = next(stack.numbers)
    keys = [publish_direct(stack.url, {"name": "ascan", "number": number, "session": f"dup{i}"},
                           {"sardana": requested(files if same_nexus or i == 0 else
                                                 {"spec": files["spec"]})}, point_streams(4))
            for i in range(count)]
    run_example(stack, Hostile(keys))
    records = {w: [wait_done(stack.url, k, w) for k in keys] for w in WRITERS}
    assert all(r.status == "written" for r in records[SPEC])
    assert [r.status for r in records[NEXUS]][:1] == ["written"]
    if same_nexus:
        assert all("already exists" in r.detail for r in records[NEXUS][1:])


# --- raw corruptions ---------------------------------------------------------------------


def set_path(doc: Any, path: tuple, value: Any) -> None:
    """``doc[path] = value``, creating mappings on the way (replacing non-mappings)."""
    for part in path[:-1]:
        if not isinstance(doc.get(part), dict):
            doc[part] = {}
        doc = doc[part]
    doc[path[-1]] = value


DOC_PATHS = st.sampled_from([
    ("id",), ("id", "number"), ("id", "name"), ("id", "session"), ("id", "path"), ("info",),
    ("info", "title"), ("state_stream",), ("state_stream", "pk"), ("data_streams",), ("pk",),
    ("data_streams", "ct01"), ("data_streams", "ct01", "pk"), ("data_streams", "ct01", "encoding"),
    ("data_streams", "ct01", "encoding", "shape"), ("data_streams", "ct01", "encoding", "dtype_str"),
    ("data_streams", "ct01", "encoding", "type"), ("data_streams", "ghost"),
    ("data_streams", "#Pt No", "info")])
STATE_SEQUENCES = st.one_of(
    st.lists(st.integers(0, 4), max_size=6).map(lambda s: [{"state": str(v)} for v in s]),
    st.sampled_from([[{"state": "x"}], [{"state": "99"}], [{"state": "-1"}], [{"other": "4"}],
                     [{"state": "4"}, {"state": "0"}], [{"state": "2.5"}]]))


@st.composite
def corruptions(draw) -> tuple[str, Callable[[RawScan], None]]:
    """A named way to damage a staged scan before it is copied."""
    kind = draw(st.sampled_from(["set", "delete", "states", "missing stream", "doc text",
                                 "history", "truncated stream"]))
    if kind == "set":
        path, value = draw(DOC_PATHS), draw(JSON)
        return f"set {path}", lambda raw: set_path(raw.doc, path, value)
    if kind == "delete":
        path = draw(DOC_PATHS)
        return f"delete {path}", lambda raw: _delete(raw.doc, path)
    if kind == "states":
        states = draw(STATE_SEQUENCES)
        return f"states {states}", lambda raw: setattr(raw, "states", states)
    if kind == "missing stream":
        return kind, lambda raw: raw.streams.pop(next(iter(raw.streams)))
    if kind == "doc text":
        text = draw(st.sampled_from(["[]", "{}", '"scan"', "null", "42", '{"id": {}}']))
        return f"doc {text}", lambda raw: setattr(raw, "doc_text", text)
    if kind == "history":
        fields = draw(st.sampled_from([{"foo": "bar"}, {"key": "nonsense"},
                                       {"key": "esrf:scan:01NOPE"}, {"key": ""}]))
        return f"history {fields}", lambda raw: setattr(raw, "history", fields)
    return kind, _truncate_one_stream


def _delete(doc: Any, path: tuple) -> None:
    for part in path[:-1]:
        doc = doc.get(part) if isinstance(doc, dict) else None
    if isinstance(doc, dict):
        doc.pop(path[-1], None)


def _truncate_one_stream(raw: RawScan) -> None:
    """The staged ``ct01`` stream replaced by an empty, unsealed one: it never ends."""
    key = raw.key.split(":", 1)[0] + ":stream:" + raw.doc["data_streams"]["ct01"]["pk"]
    raw.streams.pop(key)


@scaled(10)
@given(corruption=corruptions())
@example(corruption=("history without key", lambda raw: setattr(raw, "history", {"foo": "bar"})))
@example(corruption=("state garbage", lambda raw: setattr(raw, "states", [{"state": "x"}])))
@example(corruption=("states backwards", lambda raw: setattr(raw, "states", [{"state": str(s)} for s in
                                                                            (0, 1, 2, 1, 0)])))
@example(corruption=("no state stream pk", lambda raw: _delete(raw.doc, ("state_stream", "pk"))))
@example(corruption=("data_streams a list", lambda raw: set_path(raw.doc, ("data_streams",), [1])))
def test_malformed_scans_in_redis(stack, corruption):
    """What blissdata refuses to produce (malformed documents, states backwards, streams listed
    but missing, history garbage): given up loudly, services alive, the next scan written."""
    _, corrupt = corruption
    try:
        raw = publish_raw(stack, next(stack.numbers), stack.fresh_files(), 5, corrupt)
    except REFUSED:  # no such JSON document: no history entry either
        return run_example(stack, Hostile([]))
    named = raw.history.get("key")  # what the history entry leads to, if anything
    # blissdata passes over entries naming no existing key, as it does for deleted scans
    exists = isinstance(named, str) and stack.client.exists(named)
    run_example(stack, Hostile([named] if exists else []))
    if named is None:
        for writer in WRITERS:
            assert "names no scan, skipped" in stack.services[writer].log(), writer


# --- the row -------------------------------------------------------------------------------


def test_sentinels_all_written_and_nothing_escaped(stack, reliability):
    """The table row: every sentinel scan, in both files, every point once."""
    result = tally(f"hostile input ({stack.outcomes['hostile scans']} hostile scans)",
                   stack.sentinels, note="sentinel scans after each hostile example")
    result.figures = {name: str(stack.outcomes[name])
                      for name in ("hostile scans", "rejected", "written", "mixed")}
    reliability.record(result)
    assert result.clean and result.scans_out == result.scans_in > 0, result
    assert stack.outside_files() == stack.escape_watch
    assert not any(stack.outside.iterdir())
    for name, service in stack.services.items():
        assert "Traceback" not in service.log(), f"{name}:\n{service.log()[-3000:]}"
