"""Redis URL normalisation (protocol=2 forced) and redaction."""

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
