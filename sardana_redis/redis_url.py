"""Redis URLs as the project opens them.

redis-py 8 speaks RESP3 by default, which breaks blissdata's search
(``search_existing_scans`` raises ``KeyError: 0``).  Every URL the project
opens, user-given ones included, goes through :func:`normalize_redis_url`,
which forces ``protocol=2``.  :func:`redact_redis_url` hides credentials for
log lines and error messages.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_REDIS_URL = "redis://localhost:6379"
_SCHEMES = ("redis", "rediss", "unix")


class RedisURLError(ValueError):
    """A Redis URL that cannot be used."""


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
    normalized = urlunsplit(parts._replace(query=urlencode(query)))
    if parts.scheme == "unix" and not normalized.startswith("unix://"):
        normalized = "unix://" + normalized[len("unix:"):]  # urlunsplit drops "//"
    return normalized


def redact_redis_url(url: str) -> str:
    """Return ``url`` with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def with_socket_timeouts(url: str | None, connect: float, read: float) -> str:
    """``url`` normalised, with socket timeouts added unless the URL sets them."""
    parts = urlsplit(normalize_redis_url(url))
    query = dict(parse_qsl(parts.query))
    query.setdefault("socket_connect_timeout", f"{connect:g}")
    query.setdefault("socket_timeout", f"{read:g}")
    return urlunsplit(parts._replace(query=urlencode(query)))
