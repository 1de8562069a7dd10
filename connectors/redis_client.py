"""How the gateway reaches Redis, and what it does while Redis is down.

One URL reader and one way to connect serve both users of Redis: the caches
(``connectors.cache``) and the rate limiter (``gateway.ratelimit``). The URL is redis-py's
(``redis://``, ``rediss://`` with TLS, ``unix://`` sockets), or ``redis+sentinel://`` naming
Redis Sentinels and the master they watch: the form of the Redis-Sentinel-Url package, which
Prefect and LangChain read too. Through Sentinel, each new connection asks the Sentinels
where the master is now, so after a failover the next connection reaches the promoted one.

When Redis fails — refused, timed out, an error reply, a master being promoted — each user
falls back to this process's memory through ``RedisFallback``: one warning per outage,
memory for a few seconds, then one call tries Redis again, and a line when it answers. No
request fails because Redis does. After a restart the connections the old server closed
are noticed as they are taken from the pool (redis-py checks each one, over RESP2) and
reopened, so no call after an outage fails on a stale socket.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

T = TypeVar("T")

# Everything that means "use memory now": the client's errors (a master that Sentinel cannot
# name yet is one), the socket's, timeouts, and a reply that cannot be read.
REDIS_ERRORS = (RedisError, OSError, TimeoutError, ValueError)
RETRY_SECONDS = 5.0  # after a failure, memory only for this long, then Redis again

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379  # Sentinel's own default port
URL_FORMS = (
    "redis://host:port/db, rediss:// (TLS), unix:///path or "
    "redis+sentinel://host:26379[,host2:26379]/master-name/db URL"
)
_MASTER_NAME = re.compile(r"[A-Za-z0-9._-]+")
_HOST = re.compile(r"[A-Za-z0-9._-]+")


def checked_url(raw: str) -> str:
    """A Redis URL as the gateway reads it; ``ValueError`` saying what is wrong otherwise."""
    url = raw.strip()
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == SENTINEL_SCHEME:
        sentinel_target(url)
        return url
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"must be a {URL_FORMS}, got {_shown(url)!r}")
    aioredis.connection.parse_url(url)  # the parser the client uses: same errors, same reading
    return url


@dataclass(frozen=True)
class SentinelTarget:
    """A ``redis+sentinel://[user:password@]host[:port][,host2[:port2]…]/master-name[/db]``
    URL, read: the Sentinels to ask, the master they watch, and how to log in to it. The
    user and password are the master's (and its replicas'); the Sentinels are asked without
    one."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def sentinel_target(url: str) -> SentinelTarget:
    """``url`` read as a Sentinel URL; ``ValueError`` naming what is wrong otherwise."""

    def refused(problem: str) -> ValueError:
        # Shown without its options: one could be a password (as redis-py reads them).
        login, at, located = url.rpartition("@")
        shown = _shown(login + at + re.split("[?#]", located, maxsplit=1)[0])
        return ValueError(
            f"{problem}: expected redis+sentinel://[:password@]host:26379[,host2:26379]"
            f"/master-name[/db], got {shown!r}"
        )

    # Whatever stands before the last "@" is the login, whatever characters the password
    # holds: nothing of it is read as an address, nor shown.
    userinfo, at, located = url.partition("://")[2].rpartition("@")
    if "?" in located or "#" in located:
        raise refused("a Sentinel URL takes no ?options or #fragment")
    hosts, _, path = located.partition("/")
    sentinels = tuple(_sentinel_address(host, refused) for host in hosts.split(","))
    master, _, db = path.partition("/")
    if not _MASTER_NAME.fullmatch(master):
        raise refused("no master name (letters, digits, '.', '_', '-') after the Sentinels")
    if path.endswith("/") or db and not db.isdigit():
        raise refused("the database after the master name must be a number")
    username, colon, password = userinfo.partition(":") if at else ("", "", "")
    return SentinelTarget(
        sentinels=sentinels,
        master=master,
        db=int(db or 0),
        username=unquote(username) or None,
        password=unquote(password) if colon else None,
    )


def _sentinel_address(host: str, refused: Callable[[str], ValueError]) -> tuple[str, int]:
    """``host``, ``host:port``, ``[ipv6]`` or ``[ipv6]:port``: a Sentinel's address."""
    if host.startswith("["):
        name, bracket, port = host[1:].partition("]")
        if not bracket or not name or port and not port.startswith(":"):
            raise refused(f"unreadable Sentinel address {host!r}")
        port = port[1:]
    else:
        name, _, port = host.partition(":")
        if not _HOST.fullmatch(name):
            raise refused(f"unreadable Sentinel address {host!r}" if host else "no Sentinel")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise refused(f"Sentinel port {port!r} is not a port number (1-65535)")
    return name, int(port or SENTINEL_PORT)


def connection_pool(url: str, timeout: float, **options: Any) -> aioredis.ConnectionPool:
    """A pool for ``url`` (TLS for rediss://, a socket file for unix://, the current master
    for redis+sentinel://): connecting and each answer bounded by ``timeout``, and no
    retries — a failure goes to memory at once."""
    bounded: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        "retry_on_timeout": False,
        # RESP2: redis-py 8 speaks RESP3 by default and then, listening for maintenance
        # notifications, skips its check of a pooled connection as it is taken, so each
        # connection the server closed (a restart) failed one call: another outage
        # (redis-py issue 4252). RESP3 brings nothing these users need.
        "protocol": 2,
    }
    if url.partition("://")[0].lower() == SENTINEL_SCHEME:
        return _master_pool(sentinel_target(url), bounded, options)
    return aioredis.ConnectionPool.from_url(url, **bounded, **options)


class MasterPool(SentinelConnectionPool):
    """Connections to the master the Sentinels name: each new connection asks them where
    it is (redis-py's pool, which also drops idle connections to a former master). Closing
    the pool closes the connections to the Sentinels too."""

    async def get_master_address(self) -> Any:
        try:
            return await super().get_master_address()  # type: ignore[no-untyped-call]
        except MasterNotFoundError as exc:
            # redis-py's message repeats every unanswering Sentinel client's whole set-up:
            # the outage's one warning should stay a readable line.
            found, _, unanswered = str(exc).partition(" : ")
            if unanswered:
                asked = ", ".join(
                    f"{s.connection_pool.connection_kwargs['host']}:"
                    f"{s.connection_pool.connection_kwargs['port']}"
                    for s in self.sentinel_manager.sentinels
                )
                found += f" (asked {asked}; not every Sentinel answered)"
            raise MasterNotFoundError(found) from None

    async def aclose(self) -> None:
        await super().aclose()
        await self.sentinel_manager.aclose()


def _master_pool(
    target: SentinelTarget, bounded: dict[str, Any], options: dict[str, Any]
) -> MasterPool:
    # The Sentinels are asked with the same bounds: one that does not answer costs one
    # timeout, and the next one is asked.
    asking = {k: v for k, v in bounded.items() if k != "retry_on_timeout"}  # deprecated there
    # redis-py's Sentinel classes carry no type hints.
    sentinels = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=asking
    )
    return MasterPool(  # type: ignore[no-untyped-call]
        target.master,
        sentinels,
        db=target.db,
        username=target.username,
        password=target.password,
        **bounded,
        **options,
    )


def client(url: str, timeout: float) -> aioredis.Redis:
    """A client owning its pool: closing it closes the pool."""
    return aioredis.Redis.from_pool(connection_pool(url, timeout))


def _shown(url: str) -> str:
    """A malformed URL as an error may show it: whatever stands before an ``@`` could be a
    password, whether or not the URL can be read."""
    redacted_url = redacted(url)
    if redacted_url != url or "@" not in url:
        return redacted_url
    return "***@" + url.rsplit("@", 1)[1]


def redacted(url: str) -> str:
    """A URL without its password, for logs and errors. Read as text, not parsed: a
    Sentinel URL's host list is no single host and port, and whatever stands before the
    last ``@`` may be a password, even holding a ``/``."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, located = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not sep or not at or not colon:
        return url
    return f"{scheme}://{user}:***@{located}"


class RedisFallback:
    """Whether to ask Redis or memory now, and the log lines of an outage.

    While Redis answers, every call goes to it. After a failure, calls go to memory for
    ``retry_after`` seconds; then one call (the probe) tries Redis while the others stay in
    memory, until Redis answers again.
    """

    def __init__(
        self,
        url: str,
        *,
        what: str,  # "Redis cache", "rate limits": how the log lines begin
        meanwhile: str,  # what memory does meanwhile, e.g. "counting in this replica's memory"
        log: logging.Logger,
        retry_after: float | None = None,  # None: RETRY_SECONDS, read now
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.what = what
        self.meanwhile = meanwhile
        self.log = log
        self.retry_after = RETRY_SECONDS if retry_after is None else retry_after
        self.clock = clock
        self._down_until: float | None = None  # None while Redis answers
        self._probing = False

    @property
    def up(self) -> bool:
        """Whether Redis answered the last call made to it."""
        return self._down_until is None

    async def call(
        self, in_redis: Callable[[], Awaitable[T]], in_memory: Callable[[], Awaitable[T]]
    ) -> T:
        """``in_redis()`` while Redis is usable, else (or when it fails) ``in_memory()``."""
        probe = False
        if self._down_until is not None:
            if self._probing or self.clock() < self._down_until:
                return await in_memory()
            self._probing = probe = True
        try:
            result = await in_redis()
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return await in_memory()
        finally:
            if probe:
                self._probing = False
        if self._down_until is not None:
            self._down_until = None
            self.log.info("%s: Redis at %s answers again", self.what, redacted(self.url))
        return result

    def _failed(self, exc: BaseException) -> None:
        if self._down_until is None:  # one warning per outage
            self.log.warning(
                "%s unavailable: Redis at %s failed (%s: %s); %s until it answers again "
                "(retrying every %g s)",
                self.what,
                redacted(self.url),
                type(exc).__name__,
                exc,
                self.meanwhile,
                self.retry_after,
            )
        self._down_until = self.clock() + self.retry_after
