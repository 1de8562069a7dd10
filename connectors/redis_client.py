"""How the gateway reaches Redis, and what it does while Redis is down.

One URL parser (redis-py's, which knows ``redis://``, ``rediss://`` with TLS and ``unix://``
sockets) and one way to connect serve both users of Redis: the caches (``connectors.cache``)
and the rate limiter (``gateway.ratelimit``). When Redis fails — refused, timed out, an
error reply — each falls back to this process's memory through ``RedisFallback``: one
warning per outage, memory for a few seconds, then one call tries Redis again, and a line
when it answers. No request fails because Redis does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

T = TypeVar("T")

# Everything that means "use memory now": the client's errors, the socket's, timeouts, and a
# reply that cannot be read.
REDIS_ERRORS = (RedisError, OSError, TimeoutError, ValueError)
RETRY_SECONDS = 5.0  # after a failure, memory only for this long, then Redis again


def checked_url(raw: str) -> str:
    """A Redis URL as redis-py reads it; ``ValueError`` saying what is wrong otherwise."""
    url = raw.strip()
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"must be a redis://host:port/db, rediss:// (TLS) or unix:///path URL, got "
            f"{_shown(url)!r}"
        )
    aioredis.connection.parse_url(url)  # the parser the client uses: same errors, same reading
    return url


def connection_pool(url: str, timeout: float, **options: Any) -> aioredis.ConnectionPool:
    """A pool for ``url`` (TLS for rediss://, a socket file for unix://): connecting and each
    answer bounded by ``timeout``, and no retries — a failure goes to memory at once."""
    return aioredis.ConnectionPool.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        **options,
    )


def client(url: str, timeout: float) -> aioredis.Redis:
    return aioredis.Redis(connection_pool=connection_pool(url, timeout))


def _shown(url: str) -> str:
    """A malformed URL as an error may show it: whatever stands before an ``@`` could be a
    password, whether or not the URL can be read."""
    redacted_url = redacted(url)
    if redacted_url != url or "@" not in url:
        return redacted_url
    return "***@" + url.rsplit("@", 1)[1]


def redacted(url: str) -> str:
    """A URL without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


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
        retry_after: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.what = what
        self.meanwhile = meanwhile
        self.log = log
        self.retry_after = retry_after
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
