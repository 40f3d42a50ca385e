"""Redis URLs as the project opens them.

Two forms are accepted everywhere a Redis URL is taken:

* a plain Redis URL: ``redis://[user:password@]host:port[/db]``, ``rediss://`` (TLS) or
  ``unix:///path.sock``, with redis-py's query options (``socket_timeout``, ...);
* a Sentinel-managed Redis: ``redis+sentinel://[user:password@]host[:port][,host[:port]...]
  /service_name[/db]`` (``rediss+sentinel://`` for TLS to every node), the form other
  Redis clients use. The hosts are the sentinels (port 26379 by default), the user and
  password are those of the data nodes. Beside the plain URL's query options it takes
  ``sentinel_username``/``sentinel_password`` (the sentinels' own login) and the
  replication settings ``wait_replicas`` (replicas that must acknowledge a write before
  the publisher forgets it, default 1) and ``wait_timeout`` (seconds, default 2).

redis-py 8 speaks RESP3 by default, which breaks blissdata's search
(``search_existing_scans`` raises ``KeyError: 0``).  Every URL the project
opens, user-given ones included, goes through :func:`normalize_redis_url`,
which forces ``protocol=2``.  :func:`redact_redis_url` hides credentials for
log lines and error messages.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

DEFAULT_REDIS_URL = "redis://localhost:6379"
#: Environment variable every ``sardana-redis`` command takes its default URL from.
REDIS_URL_ENV = "REDIS_URL"
_SCHEMES = ("redis", "rediss", "unix")
#: Schemes of a Sentinel-managed Redis, and whether they use TLS.
SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
DEFAULT_SENTINEL_PORT = 26379
#: Query options of a Sentinel URL that are not redis-py connection options.
SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password", "wait_replicas", "wait_timeout")
#: Replicas that must acknowledge a publication, by default, with a Sentinel URL.
DEFAULT_WAIT_REPLICAS = 1
#: Seconds one WAIT for those replicas lasts, by default.
DEFAULT_WAIT_TIMEOUT = 2.0
_EXPECTED = ("expected redis://HOST:PORT, rediss://HOST:PORT, unix:///path.sock or "
             "redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE")
_HOST = re.compile(r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<name>[^:\[\]/@,]+))(?::(?P<port>\d+))?$")


class RedisURLError(ValueError):
    """A Redis URL that cannot be used."""


def default_redis_url() -> str:
    """The URL of a command line given none: ``$REDIS_URL``, else :data:`DEFAULT_REDIS_URL`."""
    return os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL


def is_sentinel_url(url: str | None) -> bool:
    """True for a ``redis+sentinel://`` or ``rediss+sentinel://`` URL."""
    return url is not None and urlsplit(url.strip()).scheme in SENTINEL_SCHEMES


@dataclass(frozen=True)
class SentinelURL:
    """A parsed ``redis+sentinel://`` URL (see the module docstring)."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    tls: bool = False
    username: str | None = None  #: the data nodes' login
    password: str | None = None
    options: tuple[tuple[str, str], ...] = (("protocol", "2"),)  #: redis-py query options
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    wait_replicas: int = DEFAULT_WAIT_REPLICAS
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT

    @property
    def url(self) -> str:
        """The URL in its normal form (``protocol=2``, the settings explicit)."""
        scheme = "rediss+sentinel" if self.tls else "redis+sentinel"
        hosts = ",".join(_host_port(h, p) for h, p in self.sentinels)
        query = list(self.options)
        for name in SENTINEL_OPTIONS:
            value = getattr(self, name)
            if value is not None:
                query.append((name, f"{value:g}" if isinstance(value, float) else str(value)))
        return (f"{scheme}://{_userinfo(self.username, self.password)}{hosts}/"
                f"{quote(self.service, safe='')}/{self.db}?{urlencode(query)}")

    def node_url(self, host: str, port: int) -> str:
        """The plain URL of one data node (``host``, ``port``), with the login, db and options."""
        scheme = "rediss" if self.tls else "redis"
        return (f"{scheme}://{_userinfo(self.username, self.password)}{_host_port(host, port)}"
                f"/{self.db}?{urlencode(self.options)}")


def _userinfo(user: str | None, password: str | None) -> str:
    if user is None and password is None:
        return ""
    text = quote(user or "", safe="")
    if password is not None:
        text += ":" + quote(password, safe="")
    return text + "@"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_sentinel_url(url: str) -> SentinelURL:
    """Parse a ``redis+sentinel://`` URL; raises :class:`RedisURLError` saying what is wrong."""
    shown = redact_redis_url(url)
    parts = urlsplit(url.strip())
    if parts.scheme not in SENTINEL_SCHEMES:
        raise RedisURLError(f"not a Sentinel URL: {shown!r} ({_EXPECTED})")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, sep, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if sep else None
    sentinels = []
    for item in hostlist.split(","):
        match = _HOST.match(item.strip())
        if not match:
            raise RedisURLError(f"Sentinel URL {shown!r}: {item!r} is not HOST[:PORT]")
        port = int(match["port"] or DEFAULT_SENTINEL_PORT)
        if not 0 < port < 65536:
            raise RedisURLError(f"Sentinel URL {shown!r}: port {port} out of range")
        sentinels.append((match["ipv6"] or match["name"], port))
    path = [unquote(p) for p in parts.path.split("/")[1:]]
    if not path or not path[0]:
        raise RedisURLError(f"Sentinel URL {shown!r} without a service name "
                            f"(redis+sentinel://HOST:PORT/SERVICE[/DB])")
    if len(path) > 2 or len(path) == 2 and path[1] and not path[1].isdigit():
        raise RedisURLError(f"Sentinel URL {shown!r}: the path is /SERVICE or /SERVICE/DB")
    db = int(path[1]) if len(path) == 2 and path[1] else 0
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in SENTINEL_OPTIONS}
    options = tuple((k, v) for k, v in query if k not in SENTINEL_OPTIONS and k != "protocol")
    try:
        replicas = int(ours.get("wait_replicas", DEFAULT_WAIT_REPLICAS))
        timeout = float(ours.get("wait_timeout", DEFAULT_WAIT_TIMEOUT))
    except ValueError:
        raise RedisURLError(f"Sentinel URL {shown!r}: wait_replicas is a whole number, "
                            f"wait_timeout a number of seconds") from None
    if replicas < 0 or not 0 < timeout <= 3600:
        raise RedisURLError(f"Sentinel URL {shown!r}: wait_replicas >= 0 and "
                            f"0 < wait_timeout <= 3600 s")
    return SentinelURL(tuple(sentinels), path[0], db, SENTINEL_SCHEMES[parts.scheme],
                       username, password, (*options, ("protocol", "2")),
                       ours.get("sentinel_username") or None,
                       ours.get("sentinel_password") or None, replicas, timeout)


def normalize_redis_url(url: str | None) -> str:
    """Return ``url`` (or the default URL) with ``protocol=2`` forced.

    Raises :class:`RedisURLError` for a URL that is not a Redis URL.
    """
    url = (url or DEFAULT_REDIS_URL).strip()
    if is_sentinel_url(url):
        return parse_sentinel_url(url).url
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise RedisURLError(f"not a Redis URL: {redact_redis_url(url)!r} ({_EXPECTED})")
    if parts.scheme != "unix" and not parts.hostname:
        raise RedisURLError(f"Redis URL without a host: {redact_redis_url(url)!r}")
    query = parse_qsl(parts.query)
    misplaced = [k for k, _ in query if k in SENTINEL_OPTIONS]
    if misplaced:
        raise RedisURLError(f"{', '.join(misplaced)}: only a redis+sentinel:// URL takes "
                            f"it ({redact_redis_url(url)!r})")
    query = [(k, v) for k, v in query if k != "protocol"]
    query.append(("protocol", "2"))
    return _unsplit(parts._replace(query=urlencode(query)))


def _unsplit(parts: SplitResult) -> str:
    """``urlunsplit``, keeping the ``//`` it drops from ``unix:///path`` URLs."""
    url = urlunsplit(parts)
    if parts.scheme == "unix" and not url.startswith("unix://"):
        url = "unix://" + url[len("unix:"):]
    return url


#: URL query arguments taken as secrets (``redis://host?password=...`` works too).
_SECRET_QUERY_ARGS = ("password", "ssl_password", "sentinel_password")


def redact_redis_url(url: str) -> str:
    """Return ``url`` with its passwords (in the address or the query) replaced by ``***``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    secret_query = any(k in _SECRET_QUERY_ARGS for k, _ in query)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    secret_user = bool(at) and ":" in userinfo
    if not secret_user and not secret_query:
        return url
    if secret_query:
        parts = parts._replace(query=urlencode(
            [(k, "***" if k in _SECRET_QUERY_ARGS else v) for k, v in query], safe="*"))
    if secret_user:
        parts = parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{hosts}")
    return _unsplit(parts)


def with_socket_timeouts(url: str | None, connect: float, read: float) -> str:
    """``url`` normalised, with socket timeouts added unless the URL sets them."""
    parts = urlsplit(normalize_redis_url(url))
    query = dict(parse_qsl(parts.query))
    query.setdefault("socket_connect_timeout", f"{connect:g}")
    query.setdefault("socket_timeout", f"{read:g}")
    return _unsplit(parts._replace(query=urlencode(query)))
