"""celery_dlx.redisio: the one client factory (URL → client) and the hash-tag key names.

The key names are checked against redis-py's own slot function (Redis's CRC16 rule); the
cluster client against a real local cluster (marker ``redis_cluster``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.sentinel import SentinelConnectionPool

from celery_dlx.breaker import Breaker, Policy
from celery_dlx.breaker import RedisStorage as BreakerStorage
from celery_dlx.errors import ConfigurationError
from celery_dlx.ratelimit import Limit, Limiter, RedisStorage
from celery_dlx.redisio.client import client_from_url, configured_url, redis_url_of, require_timeouts, shared_client
from celery_dlx.redisio.keys import hash_tag, tagged, tagged_prefix
from celery_dlx.testing.redis_cluster import LocalCluster

#: Ports of the cluster that starts after its storages were made (7100-7105: the session's).
LATE_CLUSTER_PORT = 7120


def slot(key: str) -> int:
    return int(key_slot(key.encode()))


@given(st.text(max_size=12), st.text(max_size=12), st.lists(st.text(max_size=8), min_size=1, max_size=4))
def test_keys_of_one_tag_share_a_slot_whatever_the_prefix_and_tag(prefix: str, tag: str, suffixes: list[str]) -> None:
    try:
        base = tagged(prefix, tag)
    except ConfigurationError:  # refused only when Redis would hash whole keys
        escaped = tag.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
        assert hash_tag(f"{prefix}:{{{escaped}}}") is None
        return
    assert len({slot(base + suffix) for suffix in suffixes}) == 1


@given(st.text(min_size=1, max_size=12), st.lists(st.text(max_size=8), min_size=1, max_size=4))
def test_a_tagged_prefix_keeps_every_key_under_it_in_one_slot(prefix: str, suffixes: list[str]) -> None:
    head = tagged_prefix(prefix)
    assert len({slot(head + suffix) for suffix in suffixes}) == 1
    assert hash_tag(head + ":x") == head[1:-1]


@given(st.text(max_size=20))
def test_hash_tag_follows_redis_s_rule(key: str) -> None:
    tag = hash_tag(key)
    assert slot(key) == slot(key if tag is None else tag)


def test_tags_name_the_object_and_are_escaped() -> None:
    assert tagged("celery_dlx:breaker", "api") == "celery_dlx:breaker:{api}"
    assert tagged("p", "a{b}c%") == "p:{a%7Bb%7Dc%25}"
    assert tagged_prefix("celery_dlx:ratelimit") == "{celery_dlx:ratelimit}"
    assert slot(tagged("p", "a") + ":x") != slot(tagged("p", "b") + ":x")


def test_an_empty_tag_or_a_prefix_with_empty_braces_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="hash tag"):
        tagged("p", "")
    with pytest.raises(ConfigurationError, match="hash tag"):
        tagged("a{}b", "t")


def test_a_prefix_with_its_own_tag_wins_and_keeps_keys_together() -> None:
    assert hash_tag(tagged("{app}:once", "post:1")) == "app"


def test_one_server_urls_open_a_redis_client_with_timeouts_and_one_retry() -> None:
    client = client_from_url("redis://127.0.0.1:6379/3", 0.5)
    assert type(client) is redis.Redis
    options = client.get_connection_kwargs()
    assert (options["socket_timeout"], options["socket_connect_timeout"], options["db"]) == (0.5, 0.5, 3)
    require_timeouts(client, "tests")


def test_a_sentinel_url_asks_for_the_master_of_its_service() -> None:
    client = client_from_url("redis+sentinel://:s3cret@127.0.0.1:26379,127.0.0.1:26380/mymaster/2", 0.5)
    assert isinstance(client, redis.Redis)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "mymaster"
    options = client.get_connection_kwargs()
    assert (options["db"], options["password"], options["socket_timeout"]) == (2, "s3cret", 0.5)
    assert [s.get_connection_kwargs()["socket_timeout"] for s in pool.sentinel_manager.sentinels] == [0.5, 0.5]
    require_timeouts(client, "tests")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:6379", "not a Redis URL"),
        ("127.0.0.1:6379", "not a Redis URL"),
        ("redis+cluster://127.0.0.1/", "host:port"),
        ("redis+cluster://127.0.0.1:7100,:7101/", "host:port"),
        ("redis+cluster://127.0.0.1:7100/2", "database 0 only"),
        ("redis+sentinel://127.0.0.1:26379/", "service_name"),
        ("redis+sentinel://127.0.0.1:26379/svc/x", "service_name"),
    ],
)
def test_malformed_urls_are_configuration_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        client_from_url(url, 0.5)


def test_errors_do_not_show_the_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        client_from_url("redis+cluster://user:hunter2@127.0.0.1/", 0.5)
    assert "hunter2" not in str(info.value) and "user:***@" in str(info.value)


def test_every_scheme_counts_as_a_redis_url_in_settings() -> None:
    for url in ("redis://h/0", "rediss://h/0", "unix:///tmp/r.sock", "redis+cluster://h:1/", "redis+sentinel://h:1/s"):
        assert redis_url_of(url) == url
    assert redis_url_of("rpc://") is None
    conf = {"result_backend": "redis+cluster://h:7100/"}
    assert configured_url(conf, "dlx_tracking_url") == "redis+cluster://h:7100/"


@pytest.mark.redis_cluster
def test_a_cluster_url_opens_a_cluster_client_with_timeouts(redis_cluster_url: str) -> None:
    client = client_from_url(redis_cluster_url, 0.5)
    assert isinstance(client, RedisCluster)
    require_timeouts(client, "tests")
    assert len(client.get_primaries()) == 3
    assert client.set("redisio-test", "1") and client.delete("redisio-test") == 1
    assert shared_client(redis_cluster_url) is shared_client(redis_cluster_url)
    with pytest.raises(ConfigurationError, match="socket_timeout"):
        require_timeouts(client_from_url(redis_cluster_url, 0.5, socket_timeout=None), "tests")


@pytest.mark.redis_cluster
def test_a_storage_for_a_cluster_that_is_down_is_made_and_works_once_the_cluster_is_up(tmp_path: Path) -> None:
    cluster = LocalCluster(LATE_CLUSTER_PORT, tmp_path / "late")
    limiter = Limiter(RedisStorage.from_url(cluster.url, timeout=0.2), [Limit("app", "2/minute")], prefix="late")
    breaker = Breaker(BreakerStorage.from_url(cluster.url, timeout=0.2), Policy())
    down = limiter.acquire()
    assert down.degraded and not down.allowed  # on_unavailable="deny", not an exception
    assert breaker.admit("api").degraded
    with cluster:
        assert [limiter.acquire().allowed for _ in range(3)] == [True, True, False]
        state, now = breaker.storage.load(tagged("late", "api"))  # the breaker's scripts run too
        assert state.mode == "closed" and now > 0
        assert isinstance(limiter.storage.client, RedisCluster)  # type: ignore[attr-defined]
