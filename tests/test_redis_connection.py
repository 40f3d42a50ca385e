"""Clients built from Redis URLs (no server needed: what redis-py is configured with)."""

from __future__ import annotations

import redis
from redis.sentinel import SentinelConnectionPool, SentinelManagedSSLConnection

from sardana_redis.redis_connection import ReplicaWait, redis_client, replicated, sentinel_for


def test_plain_url_gives_a_plain_client_that_waits_for_no_replica():
    client = redis_client("redis://u:pw@h:6380/2?socket_timeout=3")
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("h", 6380, 2)
    assert (kwargs["username"], kwargs["password"], int(kwargs["protocol"])) == ("u", "pw", 2)
    assert ReplicaWait.of("redis://h:1") == ReplicaWait(0)
    assert replicated(client, ReplicaWait(0))  # no round trip: the server is not there


def test_sentinel_url_gives_a_client_of_the_primary():
    url = ("redis+sentinel://writer:pw@s1:26380,s2/sardana/3?socket_timeout=4"
           "&sentinel_password=spw&wait_replicas=2&wait_timeout=0.5")
    client = redis_client(url)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "sardana"
    kwargs = pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("writer", "pw", 3)
    assert (kwargs["protocol"], kwargs["socket_timeout"]) == (2, 4.0)
    sentinel, target, _ = sentinel_for(url)
    addresses = [(s.connection_pool.connection_kwargs["host"],
                  s.connection_pool.connection_kwargs["port"]) for s in sentinel.sentinels]
    assert addresses == [("s1", 26380), ("s2", 26379)]
    own = sentinel.sentinels[0].connection_pool.connection_kwargs
    assert (own["password"], own["socket_timeout"]) == ("spw", 4.0)
    assert "db" not in own or own["db"] == 0  # the sentinels' own database
    assert ReplicaWait.of(url) == ReplicaWait(2, 0.5)


def test_tls_sentinel_url_uses_tls_to_every_node():
    url = "rediss+sentinel://s1/sardana?ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=required"
    client = redis_client(url)
    pool = client.connection_pool
    assert pool.connection_class is SentinelManagedSSLConnection
    assert pool.connection_kwargs["ssl_ca_certs"] == "/etc/ca.pem"
    sentinel, _, _ = sentinel_for(url)
    own = sentinel.sentinels[0].connection_pool
    assert issubclass(own.connection_class, redis.SSLConnection)
    assert own.connection_kwargs["ssl_ca_certs"] == "/etc/ca.pem"
