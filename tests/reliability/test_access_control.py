"""Access control, measured: a Redis Stack with one ACL user per role, exactly as
``sardana_redis/users.conf.example`` defines them, plain and over TLS (mutual, test CA).

Each role runs the real code with its own user: the publisher (``ScanPublisher``, and the
RedisBlissRecorder in a real Sardana scan), the SPEC and NeXus writers and the memory
tracker as service processes, blissdata readers and ``sardana-redis scans/show/plot`` as
the read-only ``reader``. Redis' ACL log must stay empty (no rule missing), a reader that
writes is refused, a wrong password gives a clear error, and no password ever appears in
a log, a command's output, an error message or the published scan.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
import trustme
from blissdata.redis_engine.store import DataStore

from sardana_redis.cli import build_parser
from sardana_redis.datastore import init_db
from sardana_redis.local_stack.redis_server import RedisStackServer
from sardana_redis.memory_tracker import scan_keys
from sardana_redis.local_stack.services import ServiceProcess
from sardana_redis.publishing.publisher import ScanPublisher
from sardana_redis.redis_stack import TLSFiles, find_redis_stack, server_command
from sardana_redis.redis_url import normalize_redis_url, redact_redis_url
from sardana_redis.scan_model import EndReason, ScanDescription, ScanEnd
from tests.recorder_helpers import SESSION, configure, last_scan_id, read_published, run_ok
from tests.reliability.accounting import tally
from tests.scan_descriptions import column, moveable, point_nb, requested_files, step_scan
from tests.services import wait_done, writer_process
from tests.spec_files import read_spec

USERS_EXAMPLE = Path(__file__).resolve().parents[2] / "sardana_redis" / "users.conf.example"
ROLES = ("admin", "publisher", "spec-writer", "nexus-writer", "memory-tracker", "reader")
WRITERS = ("spec-writer", "nexus-writer")
POINTS, SCANS = 40, 2


# --- a secured Redis -------------------------------------------------------------------


def render_users(passwords: dict[str, str], publisher_extra: str = "") -> str:
    """``users.conf.example`` with each ``#<ROLE>_SHA256`` replaced by its password's hash,
    and ``publisher_extra`` rules appended to the publisher's line."""
    text = re.sub(r"(?m)^user publisher .*$", lambda m: f"{m.group(0)} {publisher_extra}",
                  USERS_EXAMPLE.read_text())
    for role, password in passwords.items():
        placeholder = "#" + role.upper().replace("-", "_") + "_SHA256"
        assert placeholder in text, placeholder
        text = text.replace(placeholder, "#" + hashlib.sha256(password.encode()).hexdigest())
    return text


@dataclass
class SecuredRedis:
    """A running Redis Stack with the example's users; ``name`` is the table's case."""

    name: str
    server: RedisStackServer
    passwords: dict[str, str]
    client_cert: Path | None = None  #: mutual TLS: the clients' certificate and key

    def url(self, role: str, password: str | None = None) -> str:
        """URL of ``role`` (its own password unless ``password``), as users type it."""
        url = self.server.user_url(role, password or self.passwords[role])
        if self.client_cert is not None:
            url += f"&ssl_certfile={quote(str(self.client_cert), safe='')}"
        return url

    def admin(self) -> redis.Redis:
        return redis.Redis.from_url(normalize_redis_url(self.url("admin")), decode_responses=True)

    def secrets(self) -> list[str]:
        """Every password, raw and as it appears quoted in a URL."""
        return [form for pw in self.passwords.values() for form in (pw, quote(pw, safe=""))]

    def acl_denials(self) -> list[str]:
        """Redis' ACL log (what was refused, to whom), then cleared."""
        admin = self.admin()
        entries = [f"{e['username']}: {e['reason']} {e['object']} ({e['context']})"
                   for e in admin.acl_log(count=1000)]
        admin.acl_log_reset()
        return entries


def new_passwords() -> dict[str, str]:
    """A password per role, with characters a URL must quote."""
    return {role: f"{role[:3]}-{secrets.token_hex(6)} @:/%" for role in ROLES}


def start_secured(name: str, workdir: Path, tls: TLSFiles | None = None,
                  client_cert: Path | None = None) -> SecuredRedis:
    """A Redis Stack with the example's users, initialised for blissdata by ``admin``."""
    workdir.mkdir(parents=True, exist_ok=True)
    passwords = new_passwords()
    users = workdir / "users.conf"
    users.write_text(render_users(passwords))
    users.chmod(0o600)
    server = RedisStackServer(workdir / "redis", include=[users], tls=tls).start()
    secured = SecuredRedis(name, server, passwords, client_cert)
    init_db(secured.url("admin"))
    return secured


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[TLSFiles, Path]:
    """A test CA, the server's certificate for 127.0.0.1 and a client certificate."""
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(folder / "ca.pem")
    server_cert.cert_chain_pems[0].write_to_path(folder / "server.pem")
    server_cert.private_key_pem.write_to_path(folder / "server.key")
    ca.issue_cert("sardana-redis-client").private_key_and_cert_chain_pem.write_to_path(
        folder / "client.pem")
    return TLSFiles(folder / "server.pem", folder / "server.key", folder / "ca.pem"), \
        folder / "client.pem"


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredRedis]:
    secured = start_secured("access control: ACL users", tmp_path_factory.mktemp("acl"))
    yield secured
    secured.server.stop()


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory, tls_files) -> Iterator[SecuredRedis]:
    tls, client_cert = tls_files
    secured = start_secured("access control: ACL users over mutual TLS",
                            tmp_path_factory.mktemp("tls-redis"), tls, client_cert)
    yield secured
    secured.server.stop()


@pytest.fixture(params=["acl_redis", "tls_redis"], ids=["acl", "tls"])
def secured(request: pytest.FixtureRequest) -> SecuredRedis:
    """Each test once per configuration; the ACL log starts empty."""
    server = request.getfixturevalue(request.param)
    server.acl_denials()
    return server


# --- what the roles do -----------------------------------------------------------------


def cli(*args: str, redis_url: str | None = None) -> subprocess.CompletedProcess:
    """``sardana-redis ARGS`` with ``REDIS_URL`` in its environment (not on its command line)."""
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    return subprocess.run([sys.executable, "-m", "sardana_redis", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def description(number: int, root: Path) -> ScanDescription:
    """A scan asking for a SPEC and a NeXus file under ``root``."""
    columns = (point_nb(), moveable(), column("ct01", plot_type=1, plot_axes=("mot01",)))
    nexus = str(root / "scans.h5")
    return step_scan(number, SESSION, columns, title=f"ascan mot01 0 1 {POINTS - 1}", path=nexus,
                     npoints=POINTS, files=requested_files(spec=str(root / "scans.dat"), nexus=nexus))


def publish_scans(url: str, root: Path) -> list[str]:
    """Publish :data:`SCANS` scans of :data:`POINTS` points as ``url``'s user; their keys."""
    keys = []
    for number in range(1, SCANS + 1):
        publisher = ScanPublisher(url, description(number, root))
        publisher.start()
        for i in range(POINTS):
            publisher.push({"point_nb": i, "mot01": i / 10, "ct01": float(i * i)})
        assert publisher.finish(ScanEnd("2026-01-01T00:00:01+00:00", EndReason.SUCCESS))
        assert publisher.problem is None, publisher.problem
        keys.append(publisher.key)
    return keys


def start_services(secured: SecuredRedis, root: Path, logs: Path,
                   monkeypatch: pytest.MonkeyPatch) -> list[ServiceProcess]:
    """The SPEC writer (URL on its command line), the NeXus writer and the memory tracker
    (URL in ``REDIS_URL``, out of ``ps``), each as its own user."""
    spec = writer_process("spec-writer", secured.url("spec-writer"), root, logs / "spec.log")
    monkeypatch.setenv("REDIS_URL", secured.url("nexus-writer"))
    nexus = ServiceProcess("nexus-writer", ["--root", str(root)], logs / "nexus.log")
    services = [spec.start(), nexus.start()]
    monkeypatch.setenv("REDIS_URL", secured.url("memory-tracker"))
    tracker = ServiceProcess("memory-tracker", [
        "--monitoring-period", "0.5", "--closed-scan-deletion", "3600",
        *[arg for writer in WRITERS for arg in ("--writer", writer)]], logs / "tracker.log")
    services.append(tracker.start(ready="Memory usage"))
    monkeypatch.delenv("REDIS_URL")
    return services


def wait_expiring(secured: SecuredRedis, keys: list[str], timeout: float = 30) -> None:
    """Until the memory tracker gave every scan its expiration."""
    admin = secured.admin()
    deadline = time.monotonic() + timeout
    while not all(admin.ttl(key) > 0 for key in keys):
        assert time.monotonic() < deadline, "the memory tracker expired no scan"
        time.sleep(0.2)


def read_as_reader(secured: SecuredRedis, tmp_path: Path) -> list[str]:
    """Everything a reader does, as ``reader``: blissdata in another process, the CLI,
    and blissdata's ``get_next_scan`` here. Returns every text it produced."""
    url = secured.url("reader")
    texts = []
    for number in range(1, SCANS + 1):
        published = read_published(url, number, tmp_path)
        assert len(published.streams["ct01"]) == POINTS
        texts.append(json.dumps(published.meta))  # identity and scan_info, as published
    store = DataStore(normalize_redis_url(url))
    _, key = store.get_next_scan(since="0-0", timeout=5)
    assert store.load_scan(key).number == 1
    for args in (["scans"], ["show", str(SCANS)], ["plot", "1", "-o", str(tmp_path / "p.png")]):
        out = cli(*args, redis_url=url)
        assert out.returncode == 0, out.stderr
        texts += [out.stdout, out.stderr]
    assert (tmp_path / "p.png").stat().st_size > 0
    return texts


def assert_no_secret(secured: SecuredRedis, texts: dict[str, str]) -> None:
    """No password, raw or quoted, in any of ``texts`` (name -> text)."""
    leaks = [name for name, text in texts.items() for s in secured.secrets() if s in text]
    assert not leaks, f"a password appears in {sorted(set(leaks))}"


def file_texts(*folders: Path) -> dict[str, str]:
    """Every file below ``folders`` (logs, SPEC and HDF5 files), as text."""
    return {str(f): f.read_bytes().decode("latin-1") for folder in folders
            for f in folder.rglob("*") if f.is_file()}


# --- the roles, end to end -------------------------------------------------------------


def test_every_role_with_its_own_user(secured, tmp_path, monkeypatch, reliability):
    """Publisher, writers, memory tracker and readers, each with exactly its rules."""
    root, logs = tmp_path / "data", tmp_path / "logs"
    root.mkdir()
    logs.mkdir()
    services = start_services(secured, root, logs, monkeypatch)
    keys = publish_scans(secured.url("publisher"), root)
    admin_url = normalize_redis_url(secured.url("admin"))
    for key in keys:
        for writer in WRITERS:
            assert wait_done(admin_url, key, writer).status == "written"
    wait_expiring(secured, keys)
    shown = cli("writers", redis_url=secured.url("memory-tracker"))  # as the tracker's user
    assert shown.returncode == 0, shown.stderr
    assert "spec-writer: alive" in shown.stdout and "nexus-writer: alive" in shown.stdout
    texts = read_as_reader(secured, tmp_path)
    (root / "scans.dat").rename(tmp_path / "moved.dat")  # written again, as spec-writer
    for key in keys:
        out = cli("rewrite", key, "--writer", "spec-writer", "--wait", "30",
                  redis_url=secured.url("spec-writer"))
        assert out.returncode == 0 and "spec-writer: written" in out.stdout, out
        texts += [out.stdout, out.stderr]
    assert read_spec(root / "scans.dat") == read_spec(tmp_path / "moved.dat")  # but #E, #D
    for service in services:
        service.stop()
    published = {(kind, str(root / f"scans.{ext}"), n): POINTS
                 for kind, ext in (("spec", "dat"), ("nexus", "h5")) for n in range(1, SCANS + 1)}
    result = reliability.record(tally(secured.name, published, note=", ".join(ROLES[1:])))
    assert result.clean, result
    assert secured.acl_denials() == []
    assert_no_secret(secured, {**file_texts(logs, root, secured.server.workdir),
                               **{f"reader output {i}": t for i, t in enumerate(texts)}})


def test_reader_and_writers_are_refused_what_is_not_theirs(secured, tmp_path):
    key = publish_scans(secured.url("publisher"), tmp_path)[-1]
    admin = secured.admin()
    stream = "esrf:stream:" + admin.execute_command("JSON.GET", key, "$.state_stream.pk")[2:-2]
    reader = redis.Redis.from_url(normalize_redis_url(secured.url("reader")))
    attempts = {
        "XADD": lambda: reader.xadd(stream, {"state": 0}),
        "JSON.SET": lambda: reader.execute_command("JSON.SET", key, "$.info.title", '"x"'),
        "DEL": lambda: reader.delete(key),
        "EXPIRE": lambda: reader.expire(key, 1),
        "FCALL": lambda: reader.fcall("seal_stream", 1, stream),
        "FLUSHALL": lambda: reader.flushall(),
        "create_scan": lambda: DataStore(normalize_redis_url(secured.url("reader"))).create_scan(
            {"name": "evil", "number": 1, "data_policy": "no_policy", "session": SESSION}),
    }
    spec = redis.Redis.from_url(normalize_redis_url(secured.url("spec-writer")))
    attempts["other writer's ledger"] = lambda: spec.set("sardana_redis:writer:nexus-writer:cursor", "0-0")
    attempts["writer XADD"] = lambda: spec.xadd(stream, {"state": 0})
    publisher = redis.Redis.from_url(normalize_redis_url(secured.url("publisher")))
    attempts["publisher FLUSHALL"] = lambda: publisher.flushall()
    attempts["publisher CONFIG GET"] = lambda: publisher.config_get("requirepass")
    refused = []
    for name, attempt in attempts.items():
        with pytest.raises(redis.ResponseError, match="(?i)permission") as error:
            attempt()
        refused.append(f"{name}: {error.value}")
    assert admin.execute_command("JSON.GET", key, "$.info.title") == f'["ascan mot01 0 1 {POINTS - 1}"]'
    assert len(refused) == len(attempts)
    assert {line.split(":")[0] for line in secured.acl_denials()} == {"reader", "spec-writer",
                                                                      "publisher"}



def test_writers_publisher_and_tracker_cannot_damage_scans(secured, tmp_path):
    """Least privilege, measured: a writer writes only its own ledger, never a scan or
    a stream (its EVALSHA scripts neither); the publisher deletes no scan document and
    sets nothing but heartbeats; the memory tracker sets no stream as JSON."""
    first, key = publish_scans(secured.url("publisher"), tmp_path)
    admin = secured.admin()
    tracker = redis.Redis.from_url(normalize_redis_url(secured.url("memory-tracker")))
    closed, = scan_keys.load_keys(tracker, [(first, 0)])  # what the tracker does to a scan
    scan_keys.close_as_failed(tracker, closed, "test")    # (FCALL, JSON.SET, XADD)
    scan_keys.trim_before(tracker, closed, POINTS)      # XREVRANGE, XTRIM
    scan_keys.expire(tracker, [closed], 3600)
    assert secured.acl_denials() == []
    stream = "esrf:stream:" + admin.execute_command("JSON.GET", key, "$.state_stream.pk")[2:-2]
    data = next(iter(scan_keys.load_keys(admin, [(key, 0)])[0].data_keys.values()))
    before = {k: admin.dump(k) for k in (key, stream, data)}
    attempts = {}
    for role in WRITERS:
        user = redis.Redis.from_url(normalize_redis_url(secured.url(role)))
        script = user.register_script("return redis.call('DEL', KEYS[1])")
        attempts |= {
            f"{role} JSON.SET": lambda u=user: u.execute_command("JSON.SET", key, "$.info.title", '"x"'),
            f"{role} SET": lambda u=user: u.set(key, "x"),
            f"{role} DEL scan": lambda u=user: u.delete(key),
            f"{role} DEL stream": lambda u=user: u.delete(data),
            f"{role} PEXPIRE": lambda u=user: u.pexpire(key, 1),
            f"{role} HSET": lambda u=user: u.hset(key, "a", "b"),
            f"{role} XADD": lambda u=user: u.xadd(data, {"x": 0}),
            f"{role} XTRIM": lambda u=user: u.xtrim(data, maxlen=0),
            f"{role} script DEL": lambda s=script: s(keys=[key]),
        }
    publisher = redis.Redis.from_url(normalize_redis_url(secured.url("publisher")))
    attempts |= {
        "publisher DEL scan": lambda: publisher.delete(key),
        "publisher SET scan": lambda: publisher.set(key, "x"),
        "publisher DEL scan history": lambda: publisher.delete("_SCAN_HISTORY_"),
        "publisher SET ledger": lambda: publisher.set("sardana_redis:writer:spec-writer:cursor", "0"),
        "tracker JSON.SET stream": lambda: tracker.execute_command("JSON.SET", data, "$", "{}"),
        "tracker XADD scan": lambda: tracker.xadd(key, {"x": 0}),
        "tracker SET": lambda: tracker.set(key, "x"),
    }
    refused = []
    for name, attempt in attempts.items():
        with pytest.raises(redis.ResponseError, match="(?i)permission"):
            attempt()
        refused.append(name)
    assert refused == list(attempts)
    assert {k: admin.dump(k) for k in before} == before  # nothing changed
    assert {line.split(":")[0] for line in secured.acl_denials()} == {
        *WRITERS, "publisher", "memory-tracker"}

def test_wrong_password_is_a_clear_error_that_does_not_echo_it(secured, tmp_path):
    wrong = f"wrong-{secrets.token_hex(6)}"
    url = secured.url("reader", wrong)
    out = cli("scans", redis_url=url)
    assert out.returncode == 2
    assert "refused the login" in out.stderr and "invalid username-password pair" in out.stderr
    assert wrong not in out.stdout + out.stderr
    writer = ServiceProcess("spec-writer", ["--redis-url", url, "--root", str(tmp_path)],
                            tmp_path / "spec.log").start(ready="invalid username-password pair")
    writer.stop()
    assert wrong not in writer.log()
    assert "reader: auth AUTH (toplevel)" in secured.acl_denials()  # failed logins are logged
    assert re.search(r"rediss?://reader:\*\*\*@127\.0\.0\.1:\d+\S* refused the login", writer.log())


def test_not_initialised_errors_do_not_echo_the_password(tmp_path):
    """blissdata's own message holds the URL: the CLI shows it redacted; a publisher that
    may not initialise Redis says what to do."""
    passwords = new_passwords()
    users = tmp_path / "users.conf"
    users.write_text(render_users(passwords))
    with RedisStackServer(tmp_path / "redis", include=[users]) as server:
        out = cli("scans", redis_url=server.user_url("reader", passwords["reader"]))
        publisher = ScanPublisher(server.user_url("publisher", passwords["publisher"]),
                                  description(1, tmp_path))
        publisher.start()
        # not closed: the scan waits in the spool until an admin initialises Redis
        assert not publisher.finish(ScanEnd("2026-01-01T00:00:01+00:00", EndReason.SUCCESS),
                                    wait=3)
    assert out.returncode == 2
    assert "No blissdata protocol version found on redis://reader:***@" in out.stderr
    assert "run 'sardana-redis init-db' as an admin user" in publisher.problem
    texts = {"cli": out.stderr, "publisher": publisher.problem}
    for role in ("reader", "publisher"):
        for text in texts.values():
            assert passwords[role] not in text and quote(passwords[role], safe="") not in text


def test_publisher_with_the_init_rules_initialises_an_empty_redis(tmp_path):
    passwords = new_passwords()
    init_rules = re.search(r"(?m)^#   (\+dbsize .*)$", USERS_EXAMPLE.read_text()).group(1)
    users = tmp_path / "users.conf"
    users.write_text(render_users(passwords, init_rules))
    with RedisStackServer(tmp_path / "redis", include=[users]) as server:
        secured = SecuredRedis("init", server, passwords)
        assert len(publish_scans(secured.url("publisher"), tmp_path)) == SCANS
        assert secured.acl_denials() == ["publisher: command config|set (toplevel)"]


def test_server_command_line_for_users_and_tls(tls_files):
    tls, _ = tls_files
    args = build_parser().parse_args([
        "server", "--include", "users.conf", "--tls-cert-file", str(tls.cert),
        "--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.ca), "--port", "6390"])
    from sardana_redis.cli import _tls_files

    cmd = " ".join(server_command(find_redis_stack(), port=args.port, include=args.include,
                                  tls=_tls_files(args)))
    assert f"--include {Path('users.conf').resolve()}" in cmd
    assert f"--port 0 --tls-port 6390 --tls-cert-file {tls.cert}" in cmd
    assert "--tls-auth-clients yes" in cmd
    assert cli("server", "--tls-cert-file", str(tls.cert)).returncode == 2


def test_passwords_in_url_queries_are_redacted():
    assert redact_redis_url("rediss://h:1?password=s3cret&protocol=2") == \
        "rediss://h:1?password=***&protocol=2"
    assert redact_redis_url("unix:///run/r.sock?password=s3cret") == "unix:///run/r.sock?password=***"


# --- a real Sardana scan ---------------------------------------------------------------


def test_sardana_scan_with_credentials_in_redis_url(door, sardana_server, tls_redis, scan_dir,
                                                    tmp_path):
    """RedisURL with the publisher's user and password (over mutual TLS): the scan is
    published, and neither the MacroServer's logs nor the Door's output show the password."""
    url = tls_redis.url("publisher")
    tls_redis.acl_denials()  # earlier tests' refusals
    configure(door, url, scan_dir, oracle=False, RedisSession="access-control")
    number = last_scan_id(door) + 1
    results = [run_ok(door, "ascan", "mot01", 0, 1, 5, 0.01), run_ok(door, "redis_config")]
    published = read_published(tls_redis.url("reader"), number, tmp_path, "access-control")
    assert len(published.streams["#Pt No"]) == 6
    assert re.search(r"publisher:\*\*\*@127\.0\.0\.1:\d+.*blissdata ready",
                     "\n".join(results[1].output)), results[1].output
    door_text = "\n".join(line for r in results for lines in
                          (r.output, r.info, r.warning, r.error, r.debug) for line in lines)
    logs = {str(f): f.read_text(errors="replace") for f in sardana_server.workdir.rglob("*.log*")}
    assert_no_secret(tls_redis, {"door": door_text, "published": json.dumps(published.meta), **logs})
    assert tls_redis.acl_denials() == []


def test_publisher_and_writers_may_wait_for_replicas(secured):
    """With replicas (a Sentinel URL) the publisher and the writers confirm what they wrote
    with PUBLISH + WAIT: their users may do exactly that, the reader may not (no replica
    here: WAIT answers 0 after its timeout, without an error)."""
    from sardana_redis.redis_connection import ReplicaWait, redis_client, replicated

    for role in ("publisher", "spec-writer", "nexus-writer"):
        assert replicated(redis_client(secured.url(role)), ReplicaWait(1, 0.05)) is False, role
    with pytest.raises(redis.ResponseError, match="(?i)permission"):
        replicated(redis_client(secured.url("reader")), ReplicaWait(1, 0.05))
    assert {line.split(":")[0] for line in secured.acl_denials()} == {"reader"}
