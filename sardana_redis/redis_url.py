"""Redis URLs as the project opens them.

redis-py 8 speaks RESP3 by default, which breaks blissdata's search
(``search_existing_scans`` raises ``KeyError: 0``).  Every URL the project
opens, user-given ones included, goes through :func:`normalize_redis_url`,
which forces ``protocol=2``.  :func:`redact_redis_url` hides credentials for
log lines and error messages.
"""

from __future__ import annotations

import os
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_REDIS_URL = "redis://localhost:6379"
#: Environment variable every ``sardana-redis`` command takes its default URL from.
REDIS_URL_ENV = "REDIS_URL"
_SCHEMES = ("redis", "rediss", "unix")


class RedisURLError(ValueError):
    """A Redis URL that cannot be used."""


def default_redis_url() -> str:
    """The URL of a command line given none: ``$REDIS_URL``, else :data:`DEFAULT_REDIS_URL`."""
    return os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL


def normalize_redis_url(url: str | None) -> str:
    """Return ``url`` (or the default URL) with ``protocol=2`` forced.

    Raises :class:`RedisURLError` for a URL that is not a Redis URL.
    """
    url = (url or DEFAULT_REDIS_URL).strip()
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise RedisURLError(
            f"not a Redis URL: {redact_redis_url(url)!r} "
            f"(expected redis://HOST:PORT, rediss://HOST:PORT or unix:///path.sock)"
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise RedisURLError(f"Redis URL without a host: {redact_redis_url(url)!r}")
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "protocol"]
    query.append(("protocol", "2"))
    return _unsplit(parts._replace(query=urlencode(query)))


def _unsplit(parts: SplitResult) -> str:
    """``urlunsplit``, keeping the ``//`` it drops from ``unix:///path`` URLs."""
    url = urlunsplit(parts)
    if parts.scheme == "unix" and not url.startswith("unix://"):
        url = "unix://" + url[len("unix:"):]
    return url


#: URL query arguments redis-py takes as secrets (``redis://host?password=...`` works too).
_SECRET_QUERY_ARGS = ("password", "ssl_password")


def redact_redis_url(url: str) -> str:
    """Return ``url`` with its password (if any, in the address or the query) replaced
    by ``***``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    secret_query = any(k in _SECRET_QUERY_ARGS for k, _ in query)
    if parts.password is None and not secret_query:
        return url
    if secret_query:
        parts = parts._replace(query=urlencode(
            [(k, "***" if k in _SECRET_QUERY_ARGS else v) for k, v in query], safe="*"))
    if parts.password is not None:
        user = parts.username or ""
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        parts = parts._replace(netloc=f"{user}:***@{host}")
    return _unsplit(parts)


def with_socket_timeouts(url: str | None, connect: float, read: float) -> str:
    """``url`` normalised, with socket timeouts added unless the URL sets them."""
    parts = urlsplit(normalize_redis_url(url))
    query = dict(parse_qsl(parts.query))
    query.setdefault("socket_connect_timeout", f"{connect:g}")
    query.setdefault("socket_timeout", f"{read:g}")
    return urlunsplit(parts._replace(query=urlencode(query)))
