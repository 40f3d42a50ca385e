"""Redis URL normalisation (protocol=2 forced) and redaction."""

import re

import pytest

from sardana_redis.redis_url import RedisURLError, normalize_redis_url, redact_redis_url


@pytest.mark.parametrize("url, expected", [
    (None, "redis://localhost:6379?protocol=2"),
    ("redis://h:1", "redis://h:1?protocol=2"),
    ("redis://h:1/0?protocol=3", "redis://h:1/0?protocol=2"),
    ("rediss://u:p@h:1?ssl_cert_reqs=none", "rediss://u:p@h:1?ssl_cert_reqs=none&protocol=2"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock?protocol=2"),
])
def test_protocol_2_is_forced(url, expected):
    assert normalize_redis_url(url) == expected


@pytest.mark.parametrize("url", ["http://h:1", "localhost:6379", "redis://"])
def test_bad_urls_are_refused(url):
    with pytest.raises(RedisURLError):
        normalize_redis_url(url)


def test_password_is_redacted():
    assert redact_redis_url("redis://user:secret@h:1/0") == "redis://user:***@h:1/0"
    assert redact_redis_url("redis://h:1") == "redis://h:1"
    with pytest.raises(RedisURLError) as err:
        normalize_redis_url("http://user:secret@h:1")
    assert "secret" not in str(err.value)


# --- Sentinel URLs ------------------------------------------------------------------

from sardana_redis.redis_url import is_sentinel_url, parse_sentinel_url  # noqa: E402


def test_sentinel_url_is_parsed_as_other_clients_write_it():
    target = parse_sentinel_url(
        "redis+sentinel://writer:p%40ss@h1:26380,h2,[::1]:26381/sardana/3"
        "?socket_timeout=5&sentinel_password=s3&wait_replicas=2&wait_timeout=0.5&protocol=3")
    assert target.sentinels == (("h1", 26380), ("h2", 26379), ("::1", 26381))
    assert (target.service, target.db, target.tls) == ("sardana", 3, False)
    assert (target.username, target.password) == ("writer", "p@ss")
    assert (target.sentinel_username, target.sentinel_password) == (None, "s3")
    assert (target.wait_replicas, target.wait_timeout) == (2, 0.5)
    # a data node: same login, db and options, protocol 2 forced, our options left out
    assert target.node_url("10.0.0.7", 6379) == \
        "redis://writer:p%40ss@10.0.0.7:6379/3?socket_timeout=5&protocol=2"
    assert parse_sentinel_url(target.url) == target  # the normal form reads back the same


def test_sentinel_url_defaults_and_tls():
    target = parse_sentinel_url("rediss+sentinel://h1/sardana?ssl_ca_certs=/etc/ca.pem")
    assert target.tls and target.db == 0 and target.sentinels == (("h1", 26379),)
    assert (target.wait_replicas, target.wait_timeout) == (1, 2.0)
    assert target.node_url("h9", 6380).startswith("rediss://h9:6380/0?ssl_ca_certs=")
    assert is_sentinel_url(" redis+sentinel://h/s") and not is_sentinel_url("redis://h:1")
    assert normalize_redis_url("redis+sentinel://h:1/s").endswith("protocol=2&wait_replicas=1"
                                                                  "&wait_timeout=2")


@pytest.mark.parametrize("url, says", [
    ("redis+sentinel://h1:26379", "without a service name"),
    ("redis+sentinel://h1:26379/", "without a service name"),
    ("redis+sentinel://h1:port/s", "is not HOST[:PORT]"),
    ("redis+sentinel://h1,,h2/s", "is not HOST[:PORT]"),
    ("redis+sentinel:///s", "is not HOST[:PORT]"),
    ("redis+sentinel://h1:70000/s", "out of range"),
    ("redis+sentinel://h1/s/db1", "/SERVICE or /SERVICE/DB"),
    ("redis+sentinel://h1/s/1/2", "/SERVICE or /SERVICE/DB"),
    ("redis+sentinel://h1/s?wait_replicas=one", "whole number"),
    ("redis+sentinel://h1/s?wait_timeout=0", "wait_timeout"),
    ("redis://h1:6379?wait_replicas=1", "only a redis+sentinel:// URL"),
    ("sentinel://h1/s", "not a Redis URL"),
])
def test_bad_sentinel_urls_say_what_is_wrong(url, says):
    with pytest.raises(RedisURLError, match=re.escape(says)):
        normalize_redis_url(url)


def test_sentinel_url_passwords_are_redacted():
    url = "redis+sentinel://u:secret@h1:1,h2:2/s?sentinel_password=other"
    shown = redact_redis_url(url)
    assert "secret" not in shown and "other" not in shown
    assert shown.startswith("redis+sentinel://u:***@h1:1,h2:2/s")
    with pytest.raises(RedisURLError) as err:
        normalize_redis_url("redis+sentinel://u:secret@h1:x/s")
    assert "secret" not in str(err.value)


def test_retries_of_a_sentinel_url_stay_short():
    from sardana_redis.redis_connection import RETRY_MAX, RETRY_MAX_SENTINEL, Backoff

    plain = Backoff("redis://h:1", first=2.0)
    assert [plain.next() for _ in range(6)] == [2, 4, 8, 16, RETRY_MAX, RETRY_MAX]
    plain.reset()
    assert plain.next() == 2
    sentinel = Backoff("redis+sentinel://h/s", first=2.0)
    assert {sentinel.next() for _ in range(5)} == {RETRY_MAX_SENTINEL}
