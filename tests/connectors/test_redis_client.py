"""Reaching Redis: one URL reader (Sentinel URLs too), one pool, and memory while Redis is
down. Restarts and failovers under a running gateway: tests/test_redis_failover.py."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from connectors.redis_client import (
    RETRY_SECONDS,
    MasterPool,
    RedisFallback,
    SentinelTarget,
    checked_url,
    client,
    connection_pool,
    redacted,
    sentinel_target,
)
from gateway.http.serving import free_port
from gateway.settings import ConfigError, Settings
from redis_servers import MASTER_NAME, RedisServer, sentinel_config
from support import REQUIRED_ENV

PASSWORD = "s3cret-Pa55"


# ---------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        f"redis://:{PASSWORD}@redis.internal:6380/2",
        f"rediss://default:{PASSWORD}@redis.example.com:6380/1",
        "unix:///var/run/redis/redis.sock?db=1",
        "redis+sentinel://sentinel-1:26379,sentinel-2:26379,sentinel-3/bma-cache/2",
        f"redis+sentinel://:{PASSWORD}@10.0.3.7/bma-cache",
    ],
)
def test_accepted_urls_are_kept(url):
    assert checked_url(url) == url
    assert checked_url(f"  {url}\n") == url  # surrounding white space dropped


def test_rediss_pool_speaks_tls():
    pool = connection_pool(f"rediss://:{PASSWORD}@redis.example.com:6380/1", 0.5)
    assert pool.connection_class is aioredis.SSLConnection
    kwargs = pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("redis.example.com", 6380, 1)
    assert kwargs["password"] == PASSWORD


def test_redis_pool_is_plain_tcp_with_the_timeouts_and_no_retries():
    pool = connection_pool("redis://redis.internal:6380/2", 0.25, decode_responses=False)
    assert pool.connection_class is aioredis.Connection
    kwargs = pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("redis.internal", 6380, 2)
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.25
    assert kwargs["retry_on_timeout"] is False
    assert kwargs["retry"].get_retries() == 0
    assert kwargs["decode_responses"] is False
    # RESP2: redis-py's RESP3 default skips the check that drops a connection the server
    # closed (tests/test_redis_failover.py restarts a server under load to prove it).
    assert kwargs["protocol"] == 2


def test_unix_pool_uses_the_socket_file():
    pool = connection_pool("unix:///var/run/redis/redis.sock?db=1", 0.5)
    assert pool.connection_class is aioredis.UnixDomainSocketConnection
    assert pool.connection_kwargs["path"] == "/var/run/redis/redis.sock"
    assert pool.connection_kwargs["db"] == 1


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{PASSWORD}@redis.internal:6379/0",
        f"https://:{PASSWORD}@redis.internal/0",
        f"redis://:{PASSWORD}@redis.internal:99999/0",  # port out of range
        f"redis://:{PASSWORD}@redis.internal:port/0",
        f"redis://:{PASSWORD}@[::1/0",
        "garbage",
        "",
        "localhost:6379",
        f"redis+sentinel://:{PASSWORD}@s1:26379,s2:26379",  # no master name
        f"redis+sentinel://:{PASSWORD}@s1:26379/",
        f"redis+sentinel://:{PASSWORD}@s1:26379/bma-cache/zero",
        f"redis+sentinel://:{PASSWORD}@s1:26379/bma-cache/0/extra",
        f"redis+sentinel://:{PASSWORD}@s1:99999/bma-cache",
        f"redis+sentinel://:{PASSWORD}@s1,,s2/bma-cache",
        f"redis+sentinel://:{PASSWORD}@/bma-cache",
        f"redis+sentinel://:{PASSWORD}@[::1/bma-cache",
        f"redis+sentinel://:{PASSWORD}@s1/bma-cache?sentinel_password={PASSWORD}",
        f"redis+sentinel://:{PASSWORD[:4]}/{PASSWORD[4:]}@s1:port/bma-cache",  # a "/" in it
    ],
)
def test_refused_urls_never_show_the_password(url):
    with pytest.raises(ValueError) as raised:
        checked_url(url)
    message = str(raised.value)
    assert message
    assert PASSWORD not in message


def test_a_refused_scheme_says_what_is_expected():
    with pytest.raises(ValueError) as raised:
        checked_url(f"http://user:{PASSWORD}@redis.internal:6379/0")
    assert str(raised.value) == (
        "must be a redis://host:port/db, rediss:// (TLS), unix:///path or "
        "redis+sentinel://host:26379[,host2:26379]/master-name/db URL, got "
        "'http://user:***@redis.internal:6379/0'"
    )


# ---------------------------------------------------------------------------- Sentinel URLs


@pytest.mark.parametrize(
    ("url", "target"),
    [
        (
            f"redis+sentinel://:{PASSWORD}@s1:26380,s2,[fd00::7]:26381/bma-cache/3",
            SentinelTarget(
                sentinels=(("s1", 26380), ("s2", 26379), ("fd00::7", 26381)),
                master="bma-cache",
                db=3,
                password=PASSWORD,
            ),
        ),
        (  # the database defaults to 0; a user name, and a password percent-encoded
            "redis+sentinel://gateway:p%40ss%2Fword@10.0.3.7/bma-cache",
            SentinelTarget(
                sentinels=(("10.0.3.7", 26379),),
                master="bma-cache",
                username="gateway",
                password="p@ss/word",
            ),
        ),
        (
            "REDIS+SENTINEL://s1/mymaster/0",
            SentinelTarget(sentinels=(("s1", 26379),), master="mymaster"),
        ),
    ],
)
def test_a_sentinel_url_names_the_sentinels_the_master_and_the_database(url, target):
    assert sentinel_target(url) == target


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://s1:26379", "no master name"),
        ("redis+sentinel://s1:26379/bma-cache/zero", "the database after the master name"),
        ("redis+sentinel://s1:26379/bma cache", "no master name"),
        ("redis+sentinel://s1:0/bma-cache", "Sentinel port '0' is not a port number"),
        ("redis+sentinel://s1,/bma-cache", "no Sentinel"),
        ("redis+sentinel://s1/bma-cache?db=1", "a Sentinel URL takes no ?options"),
    ],
)
def test_a_refused_sentinel_url_says_what_is_wrong_and_what_is_expected(url, problem):
    with pytest.raises(ValueError) as raised:
        checked_url(url)
    message = str(raised.value)
    assert message.startswith(problem), message
    assert "expected redis+sentinel://[:password@]host:26379[,host2:26379]/master-name[/db]" in (
        message
    )


def test_a_sentinel_pool_asks_the_sentinels_for_the_master_with_the_same_bounds():
    pool = connection_pool(
        f"redis+sentinel://:{PASSWORD}@s1:26380,s2/bma-cache/3", 0.25, decode_responses=False
    )
    assert isinstance(pool, MasterPool)
    assert pool.service_name == "bma-cache" and pool.is_master
    kwargs = pool.connection_kwargs
    assert (kwargs["db"], kwargs["password"], kwargs["decode_responses"]) == (3, PASSWORD, False)
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.25
    assert kwargs["retry"].get_retries() == 0 and kwargs["protocol"] == 2
    sentinels = [s.connection_pool.connection_kwargs for s in pool.sentinel_manager.sentinels]
    assert [(s["host"], s["port"]) for s in sentinels] == [("s1", 26380), ("s2", 26379)]
    for asking in sentinels:  # asked without the master's password, as bounded
        assert asking.get("password") is None
        assert asking["socket_timeout"] == asking["socket_connect_timeout"] == 0.25
        assert asking["retry"].get_retries() == 0


@pytest.mark.parametrize(
    "url",
    [f"user:{PASSWORD}@redis.internal:6379/0", f"redis//:{PASSWORD}@redis.internal:6379/0"],
)
def test_a_url_without_its_scheme_never_shows_the_password(url):
    with pytest.raises(ValueError) as raised:
        checked_url(url)
    assert PASSWORD not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://:{PASSWORD}@h:6379/0", "redis://:***@h:6379/0"),
        (f"rediss://default:{PASSWORD}@h/1", "rediss://default:***@h/1"),
        (f"redis://u:{PASSWORD}@[::1]:6380/0", "redis://u:***@[::1]:6380/0"),
        (f"redis+sentinel://:{PASSWORD}@s1:26379,s2/m/1", "redis+sentinel://:***@s1:26379,s2/m/1"),
        (f"redis+sentinel://:a/{PASSWORD}@s1/m", "redis+sentinel://:***@s1/m"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("redis://user@h:6379/0", "redis://user@h:6379/0"),  # no password: as it was
        ("unix:///tmp/redis.sock?db=1", "unix:///tmp/redis.sock?db=1"),
    ],
)
def test_redacted(url, shown):
    assert redacted(url) == shown


async def test_a_sentinel_client_reaches_the_master_and_closes_its_sentinel_connections(
    tmp_path: Path,
):
    """A real master and Sentinel (redis-server, started here): the client finds the master
    through the Sentinel, and closing it leaves no connection open at the Sentinel."""
    master = RedisServer(tmp_path / "master").start()
    sentinel = RedisServer(
        tmp_path / "sentinel", *sentinel_config(master, 1000, 2000), sentinel=True
    )
    try:
        sentinel.start()
        redis = client(f"redis+sentinel://127.0.0.1:{sentinel.port}/{MASTER_NAME}/2", 0.5)
        await redis.set("bma:test:through-sentinel", b"stored")
        with master.client(db=2) as direct:
            assert direct.get("bma:test:through-sentinel") == b"stored"

        def asking() -> list[str]:
            with sentinel.client() as admin:
                return [c["cmd"] for c in admin.client_list() if c["cmd"].startswith("sentinel")]

        assert asking() == ["sentinel|masters"]
        await redis.aclose()
        assert asking() == []
    finally:
        sentinel.stop()
        master.stop()


async def test_no_sentinel_answering_is_one_readable_failure():
    """Nothing listens at the Sentinel's address: the failure (the outage's warning) names
    the master and the Sentinels asked, in a line."""
    port = free_port()
    redis = client(f"redis+sentinel://:{PASSWORD}@127.0.0.1:{port}/bma-cache/0", 0.25)
    try:
        with pytest.raises(RedisConnectionError) as raised:
            await redis.get("bma:test:nothing")
    finally:
        await redis.aclose()
    assert str(raised.value) == (
        f"No master found for 'bma-cache' (asked 127.0.0.1:{port}; not every Sentinel answered)"
    )


# ---------------------------------------------------------------------------- settings


def test_settings_keep_a_rediss_url():
    url = f"rediss://:{PASSWORD}@redis.example.com:6380/1"
    assert Settings.from_env({**REQUIRED_ENV, "REDIS_URL": url}).redis_url == url


def test_settings_accept_a_unix_socket():
    url = "unix:///var/run/redis/redis.sock?db=1"
    assert Settings.from_env({**REQUIRED_ENV, "REDIS_URL": url}).redis_url == url


def test_settings_without_redis_use_memory():
    assert Settings.from_env(dict(REQUIRED_ENV)).redis_url is None
    assert Settings.from_env({**REQUIRED_ENV, "REDIS_URL": "  "}).redis_url is None


def test_settings_keep_a_sentinel_url():
    url = f"redis+sentinel://:{PASSWORD}@sentinel-1,sentinel-2/bma-cache/1"
    assert Settings.from_env({**REQUIRED_ENV, "REDIS_URL": url}).redis_url == url


def test_settings_refuse_a_sentinel_url_without_its_master_naming_redis_url():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(
            {**REQUIRED_ENV, "REDIS_URL": f"redis+sentinel://:{PASSWORD}@sentinel-1:26379"}
        )
    (problem,) = raised.value.problems
    assert problem.startswith("REDIS_URL ")
    assert "no master name" in problem
    assert PASSWORD not in str(raised.value)


def test_settings_refuse_http_naming_redis_url():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**REQUIRED_ENV, "REDIS_URL": f"http://u:{PASSWORD}@redis.internal/0"})
    (problem,) = raised.value.problems
    assert problem.startswith("REDIS_URL ")
    assert "redis://host:port/db" in problem
    assert PASSWORD not in str(raised.value)


# ---------------------------------------------------------------------------- the fallback


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Backends:
    """Redis (its failure injected by the test) and memory, each counting its calls."""

    def __init__(self) -> None:
        self.broken = False
        self.redis_calls = 0
        self.memory_calls = 0
        self.hold: asyncio.Event | None = None  # while set, a Redis call waits for it
        self.held = asyncio.Event()  # set when a Redis call is waiting

    async def in_redis(self) -> str:
        self.redis_calls += 1
        if self.hold is not None:
            self.held.set()
            await self.hold.wait()
        if self.broken:
            raise RedisConnectionError("Error 111 connecting to redis.internal:6379.")
        return "redis"

    async def in_memory(self) -> str:
        self.memory_calls += 1
        return "memory"

    async def call(self, fallback: RedisFallback) -> str:
        return await fallback.call(self.in_redis, self.in_memory)


@pytest.fixture
def logger() -> logging.Logger:
    return logging.getLogger(f"test.redis.{uuid.uuid4().hex[:6]}")


def lines(caplog, logger: logging.Logger) -> list[tuple[int, str]]:
    found = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == logger.name]
    caplog.clear()
    return found


async def test_one_outage(caplog, logger):
    caplog.set_level(logging.INFO, logger=logger.name)
    clock, backends = Clock(), Backends()
    fallback = RedisFallback(
        f"redis://:{PASSWORD}@redis.internal:6379/0",
        what="Redis cache",
        meanwhile="caching in this replica's memory",
        log=logger,
        retry_after=5,
        clock=clock,
    )
    assert fallback.retry_after == 5 and RETRY_SECONDS == 5.0

    # Redis answers: every call goes to it.
    assert [await backends.call(fallback) for _ in range(3)] == ["redis"] * 3
    assert (backends.redis_calls, backends.memory_calls) == (3, 0)
    assert fallback.up

    # It fails: that call is answered from memory, with one warning.
    backends.broken = True
    assert await backends.call(fallback) == "memory"
    assert not fallback.up
    (warning,) = lines(caplog, logger)
    assert warning[0] == logging.WARNING
    assert warning[1] == (
        "Redis cache unavailable: Redis at redis://:***@redis.internal:6379/0 failed "
        "(ConnectionError: Error 111 connecting to redis.internal:6379.); caching in this "
        "replica's memory until it answers again (retrying every 5 s)"
    )

    # During the retry interval: memory only, Redis not asked, nothing logged.
    clock.now += 4.9
    assert [await backends.call(fallback) for _ in range(5)] == ["memory"] * 5
    assert backends.redis_calls == 4
    assert lines(caplog, logger) == []

    # After it: one probe; the others stay in memory while it is in flight.
    clock.now += 0.1
    backends.hold = asyncio.Event()
    probe = asyncio.create_task(backends.call(fallback))
    await backends.held.wait()  # the probe reached Redis
    assert [await backends.call(fallback) for _ in range(3)] == ["memory"] * 3
    assert backends.redis_calls == 5
    backends.hold.set()
    assert await probe == "memory"  # the probe failed: memory, and no second warning
    backends.hold = None
    assert lines(caplog, logger) == []
    assert not fallback.up

    # The probe's failure started a new interval.
    clock.now += 4
    assert await backends.call(fallback) == "memory"
    assert backends.redis_calls == 5

    # Redis is back: the next probe answers, a line says so, and calls go to Redis again.
    clock.now += 1
    backends.broken = False
    assert await backends.call(fallback) == "redis"
    assert fallback.up
    assert lines(caplog, logger) == [
        (logging.INFO, "Redis cache: Redis at redis://:***@redis.internal:6379/0 answers again")
    ]
    assert [await backends.call(fallback) for _ in range(2)] == ["redis"] * 2
    assert backends.redis_calls == 8

    # A second outage warns again: one warning per outage.
    backends.broken = True
    assert await backends.call(fallback) == "memory"
    assert await backends.call(fallback) == "memory"
    assert [level for level, _ in lines(caplog, logger)] == [logging.WARNING]


@pytest.mark.parametrize(
    "error",
    [OSError("connection reset"), TimeoutError(), ValueError("unreadable reply")],
    ids=lambda error: type(error).__name__,
)
async def test_every_kind_of_redis_failure_falls_back(error, caplog, logger):
    fallback = RedisFallback(
        "redis://redis.internal:6379/0", what="rate limits", meanwhile="m", log=logger
    )

    async def failing() -> str:
        raise error

    async def memory() -> str:
        return "memory"

    assert await fallback.call(failing, memory) == "memory"
    assert not fallback.up


async def test_a_bug_is_not_taken_for_an_outage(logger):
    fallback = RedisFallback("redis://h:6379/0", what="rate limits", meanwhile="m", log=logger)

    async def buggy() -> str:
        raise KeyError("a bug")

    async def memory() -> str:
        return "memory"

    with pytest.raises(KeyError):
        await fallback.call(buggy, memory)
    assert fallback.up


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set: no Redis to reach"
)
async def test_the_pool_reaches_a_real_redis(logger):
    url = checked_url(os.environ["REDIS_URL"])
    redis = client(url, 0.5)
    fallback = RedisFallback(url, what="test", meanwhile="m", log=logger)
    key = f"bma:test:{uuid.uuid4().hex}"

    async def memory() -> bytes:
        return b"memory"

    try:
        assert await redis.set(key, b"stored", ex=10)
        assert await fallback.call(lambda: redis.get(key), memory) == b"stored"
        assert fallback.up
    finally:
        await redis.delete(key)
        await redis.aclose()  # and its pool
