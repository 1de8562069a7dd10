"""Token buckets: one per caller, in this process's memory or shared through Redis.

A bucket holds ``burst`` tokens and refills at ``rate`` per second; each request takes one,
and a request that finds it empty is refused for ``Take.retry_after`` seconds.

With several replicas the buckets live in Redis (``RedisBuckets``): one Lua script per
request refills by the time elapsed on the Redis server's clock and takes a token
atomically, so the limit holds across replicas. When Redis fails (refused, timed out, an
error reply) the replica counts in its own memory instead — limits then hold per replica —
logs one warning for the outage, and tries Redis again after a few seconds
(``connectors.redis_client.RedisFallback``). No request fails because Redis is down. Once
Redis answers again — restarted, or a new master named by Sentinel — the buckets are shared
again; a bucket restarts full in a Redis that lost it.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from connectors import redis_client
from gateway.ratelimit.config import RateLimit

log = logging.getLogger("bma.gateway.rate_limit")

REDIS_PREFIX = "bma:rl:"
REDIS_TIMEOUT = 0.5  # seconds to connect to Redis, and for one answer
MEMORY_MAX_BUCKETS = 100_000
MEMORY_SWEEP_SECONDS = 60.0


@dataclass(frozen=True)
class Take:
    """One request's take from its bucket: allowed or not, and what the headers say."""

    allowed: bool
    limit: RateLimit
    remaining: int  # whole tokens left after this request
    retry_after: float  # seconds until a token is there (0 when allowed)
    reset: float  # seconds until the bucket is full again

    @classmethod
    def of(cls, limit: RateLimit, tokens: float, allowed: bool) -> Take:
        """From the tokens left after the take (before it, when refused)."""
        tokens = max(0.0, min(float(limit.burst), tokens))
        return cls(
            allowed=allowed,
            limit=limit,
            remaining=int(tokens) if allowed else 0,
            retry_after=0.0 if allowed else (1 - tokens) / limit.rate,
            reset=(limit.burst - tokens) / limit.rate,
        )

    @property
    def retry_after_seconds(self) -> int:
        """``Retry-After``: whole seconds, at least 1."""
        return max(1, math.ceil(self.retry_after - 1e-9))

    def headers(self) -> dict[str, str]:
        return {
            "ratelimit-limit": str(self.limit.burst),
            "ratelimit-remaining": str(self.remaining),
            "ratelimit-reset": str(max(0, math.ceil(self.reset - 1e-9))),
            "ratelimit-policy": f"{self.limit.burst};w={self.limit.window}",
        }


class Buckets(Protocol):
    async def take(self, key: str, limit: RateLimit) -> Take: ...

    async def aclose(self) -> None: ...


@dataclass
class _Bucket:
    tokens: float
    at: float  # clock time of `tokens`
    full_at: float  # clock time it is full again: from then on, as good as absent


class MemoryBuckets:
    """Buckets of this process. Memory is bounded: a bucket that has refilled is as good as
    none and is dropped; past ``max_buckets`` the least recently used go first."""

    def __init__(
        self,
        *,
        max_buckets: int = MEMORY_MAX_BUCKETS,
        sweep_every: float = MEMORY_SWEEP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_buckets = max_buckets
        self.sweep_every = sweep_every
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()  # least recently used first
        self._swept_at = clock()

    def __len__(self) -> int:
        return len(self._buckets)

    async def take(self, key: str, limit: RateLimit) -> Take:
        return self.take_now(key, limit)

    def take_now(self, key: str, limit: RateLimit) -> Take:
        """No await: atomic on the event loop."""
        now = self.clock()
        bucket = self._buckets.pop(key, None)
        tokens = float(limit.burst)
        if bucket is not None:
            tokens = min(tokens, bucket.tokens + max(0.0, now - bucket.at) * limit.rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[key] = _Bucket(tokens, now, now + (limit.burst - tokens) / limit.rate)
        self._evict(now)
        return Take.of(limit, tokens, allowed)

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        while buckets:  # refilled buckets at the idle end
            oldest = next(iter(buckets.values()))
            if oldest.full_at > now:
                break
            buckets.popitem(last=False)
        if now - self._swept_at >= self.sweep_every:  # refilled ones behind a slow refiller
            self._swept_at = now
            for key in [k for k, b in buckets.items() if b.full_at <= now]:
                del buckets[key]
        while len(buckets) > self.max_buckets:
            buckets.popitem(last=False)

    async def aclose(self) -> None:
        self._buckets.clear()


# KEYS[1] the bucket; ARGV rate, burst. Returns {allowed, tokens left}.
# The clock is the Redis server's, the same for every replica. A bucket expires once it has
# refilled: an absent key is a full bucket.
TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens),
  'at', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil((burst - tokens) / rate * 1000) + 1000))
return {allowed, string.format('%.6f', tokens)}
"""


class RedisBuckets:
    """Buckets shared by every replica through Redis, falling back to ``fallback`` (this
    process's memory) while Redis fails."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = REDIS_PREFIX,
        timeout: float = REDIS_TIMEOUT,
        retry_after: float | None = None,  # None: redis_client.RETRY_SECONDS
        fallback: MemoryBuckets | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.fallback = fallback if fallback is not None else MemoryBuckets()
        self._client = redis_client.client(url, timeout)
        # Run by its SHA (EVALSHA). A Redis that has not seen it — restarted, or a replica
        # just promoted — answers NOSCRIPT; redis-py then loads it and runs it again.
        self._script = self._client.register_script(TAKE_SCRIPT)
        self._redis = redis_client.RedisFallback(
            url,
            what="rate limits",
            meanwhile="counting in this replica's memory",
            log=log,
            retry_after=retry_after,
            clock=clock,
        )

    @property
    def shared(self) -> bool:
        """Whether buckets are in Redis now (False while falling back to memory)."""
        return self._redis.up

    async def take(self, key: str, limit: RateLimit) -> Take:
        async def in_redis() -> Take:
            allowed, tokens = await self._script(
                keys=[self.prefix + key], args=[repr(limit.rate), limit.burst]
            )
            return Take.of(limit, float(tokens), bool(int(allowed)))

        async def in_memory() -> Take:
            return self.fallback.take_now(key, limit)

        return await self._redis.call(in_redis, in_memory)

    async def aclose(self) -> None:
        await self._client.aclose()
        await self.fallback.aclose()

    def __str__(self) -> str:
        return redis_client.redacted(self.url)


def buckets_for(redis_url: str | None) -> Buckets:
    """Redis buckets when a URL is given (several replicas), else this process's memory."""
    return RedisBuckets(redis_url) if redis_url else MemoryBuckets()
