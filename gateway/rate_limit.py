"""Rate limits: a token bucket per principal, in memory or shared through Redis.

Each caller has a bucket of ``burst`` tokens refilled at ``rate`` per second; a request to
``/graphql`` takes one token, and a caller whose bucket is empty is answered 429 with
``Retry-After``. Every limited response, allowed or not, carries ``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset`` and ``RateLimit-Policy``
(draft-ietf-httpapi-ratelimit-headers). Health endpoints and everything outside
``/graphql`` are never limited.

Buckets are keyed by who is asking, never by what an unverified credential claims:

* an API key: ``key:<key id>``
* a JWT: ``sub:<issuer>:<subject>``
* anonymous callers: ``ip:<client address>`` (an IPv6 client by its /64, which one host
  usually holds whole)
* a credential that proves nothing (the 401s) or cannot be checked now (the 503s): the
  client address's bucket with the anonymous limits, so guessing keys or forging tokens is
  throttled like anonymous traffic and cannot drain the bucket of the principal it names.

With several replicas the buckets live in Redis (``RedisBuckets``): one Lua script per
request refills by the time elapsed on the Redis server's clock and takes a token
atomically, so the limit holds across replicas. When Redis fails (refused, timed out, an
error reply) the replica counts in its own memory instead — limits then hold per replica —
logs one warning for the outage, and tries Redis again after a few seconds. No request
fails because Redis is down.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import metrics
from policies.principal import Principal

log = logging.getLogger("bma.gateway.rate_limit")

ENV = "BMA_RATE_LIMITS"
OFF = "off"
MIN_RATE = 0.001  # one request per ~17 minutes
MAX_RATE = 1_000_000.0
MAX_BURST = 1_000_000
REDIS_PREFIX = "bma:rl:"
REDIS_TIMEOUT = 0.5  # seconds to connect to Redis, and for one answer
REDIS_RETRY_SECONDS = 5.0  # after a failure, memory only for this long, then Redis again
REDIS_ERRORS = (RedisError, OSError, TimeoutError, ValueError)  # all mean: use memory now
REDIS_SCHEMES = ("redis", "rediss", "unix")
MEMORY_MAX_BUCKETS = 100_000
MEMORY_SWEEP_SECONDS = 60.0


# --- limits ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimit:
    """``burst`` requests at once, then ``rate`` a second."""

    rate: float  # tokens added per second
    burst: int  # bucket size: the most requests in a row

    @property
    def window(self) -> int:
        """Seconds for an empty bucket to fill: the ``w`` of ``RateLimit-Policy``."""
        return max(1, math.ceil(self.burst / self.rate))

    def to_json(self) -> dict[str, float | int]:
        return {"rate": self.rate, "burst": self.burst}


@dataclass(frozen=True)
class RateLimits:
    """The limit of each audience; ``None`` is unlimited."""

    anonymous: RateLimit | None = RateLimit(rate=5.0, burst=20)
    app: RateLimit | None = RateLimit(rate=20.0, burst=60)
    partner: RateLimit | None = RateLimit(rate=50.0, burst=100)
    agency: RateLimit | None = RateLimit(rate=100.0, burst=200)

    def of(self, kind: str) -> RateLimit | None:
        return getattr(self, kind)

    def to_env(self) -> str:
        """The ``BMA_RATE_LIMITS`` value that reproduces these limits."""
        return json.dumps(
            {f.name: (lim.to_json() if (lim := self.of(f.name)) else None) for f in fields(self)}
        )


AUDIENCES = tuple(f.name for f in fields(RateLimits))
_DEFAULTS: dict[str, RateLimit] = {f.name: f.default for f in fields(RateLimits)}  # type: ignore[misc]


def parse_rate_limits(raw: str | None) -> RateLimits | None:
    """``BMA_RATE_LIMITS``: unset or empty for the defaults, ``off`` for no rate limiting, or
    a JSON object overriding some audiences, e.g. ``{"anonymous": {"rate": 2, "burst": 10},
    "agency": null}``: a missing audience or key keeps its default, ``null`` is unlimited.

    Raises ``ConfigError`` naming the variable."""
    if raw is None or not raw.strip():
        return RateLimits()
    if raw.strip().lower() == OFF:
        return None
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise _config_error(f"{ENV} is not valid JSON (or `off`): {exc}") from None
    if not isinstance(document, dict):
        raise _config_error(f'{ENV} must be `off` or a JSON object like {{"anonymous": ...}}')
    unknown = sorted(set(document) - set(AUDIENCES))
    if unknown:
        raise _config_error(
            f"{ENV} names unknown audiences: {', '.join(unknown)} (one of {', '.join(AUDIENCES)})"
        )
    overrides = {kind: _limit(kind, entry, _DEFAULTS[kind]) for kind, entry in document.items()}
    return replace(RateLimits(), **overrides)


def _limit(kind: str, entry: Any, default: RateLimit) -> RateLimit | None:
    where = f"{ENV}.{kind}"
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise _config_error(f'{where} must be null (unlimited) or {{"rate": ..., "burst": ...}}')
    unknown = sorted(set(entry) - {"rate", "burst"})
    if unknown:
        raise _config_error(f"{where} has unknown keys: {', '.join(unknown)} (rate, burst)")
    rate, burst = entry.get("rate", default.rate), entry.get("burst", default.burst)
    if (
        isinstance(rate, bool)
        or not isinstance(rate, int | float)
        or not (MIN_RATE <= rate <= MAX_RATE)
    ):
        raise _config_error(
            f"{where}.rate must be requests per second, {MIN_RATE:g}..{MAX_RATE:g}, got {rate!r}"
        )
    if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_BURST:
        raise _config_error(f"{where}.burst must be a whole number 1..{MAX_BURST}, got {burst!r}")
    return RateLimit(rate=float(rate), burst=burst)


def _config_error(message: str) -> Exception:
    # Imported when needed, here and below: gateway.settings imports this module, and
    # gateway.auth and gateway.graphql_http import gateway.settings.
    from gateway.settings import ConfigError

    return ConfigError(message)


# --- bucket keys ----------------------------------------------------------------------------


def bucket_key(principal: Principal | None, client: str | None) -> str:
    """Whose bucket a request takes from; ``principal`` None: a refused credential."""
    if principal is not None and principal.kind == "app" and principal.credential_id:
        return f"key:{principal.credential_id}"
    if principal is not None and principal.kind in ("partner", "agency"):
        return f"sub:{principal.issuer or ''}:{principal.subject}"
    return f"ip:{client_address(client)}"


def client_address(host: str | None) -> str:
    """The address a bucket is kept for: IPv6 by its /64, IPv4 (mapped too) as is."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


# --- buckets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """One request's take from its bucket."""

    allowed: bool
    limit: RateLimit
    remaining: int  # whole tokens left after this request
    retry_after: float  # seconds until a token is there (0 when allowed)
    reset: float  # seconds until the bucket is full again

    @classmethod
    def of(cls, limit: RateLimit, tokens: float, allowed: bool) -> Decision:
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
    async def take(self, key: str, limit: RateLimit) -> Decision: ...

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

    async def take(self, key: str, limit: RateLimit) -> Decision:
        return self.take_now(key, limit)

    def take_now(self, key: str, limit: RateLimit) -> Decision:
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
        return Decision.of(limit, tokens, allowed)

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
        retry_after: float = REDIS_RETRY_SECONDS,
        fallback: MemoryBuckets | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.retry_after = retry_after
        self.fallback = fallback or MemoryBuckets()
        # No retries: a failure goes to memory at once, and Redis is tried again later.
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
        )
        self._script = self._client.register_script(TAKE_SCRIPT)
        self._down_until: float | None = None  # monotonic; None while Redis answers
        self._probing = False

    @property
    def shared(self) -> bool:
        """Whether buckets are in Redis now (False while falling back to memory)."""
        return self._down_until is None

    async def take(self, key: str, limit: RateLimit) -> Decision:
        probing = False
        if self._down_until is not None:
            if self._probing or time.monotonic() < self._down_until:
                return self.fallback.take_now(key, limit)
            self._probing = probing = True  # this request tries Redis; others stay in memory
        try:
            allowed, tokens = await self._script(
                keys=[self.prefix + key], args=[repr(limit.rate), limit.burst]
            )
            decision = Decision.of(limit, float(tokens), bool(int(allowed)))
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return self.fallback.take_now(key, limit)
        finally:
            if probing:
                self._probing = False
        if self._down_until is not None:
            self._down_until = None
            log.info("rate limits: Redis at %s answers again; limits are shared again", self)
        return decision

    def _failed(self, exc: BaseException) -> None:
        if self._down_until is None:  # one warning per outage
            log.warning(
                "rate limits: Redis at %s failed (%s: %s); counting in this replica's memory "
                "until it answers again (retrying every %g s)",
                self,
                type(exc).__name__,
                exc,
                self.retry_after,
            )
        self._down_until = time.monotonic() + self.retry_after

    async def aclose(self) -> None:
        await self._client.aclose()
        await self.fallback.aclose()

    def __str__(self) -> str:
        return redacted(self.url)


def redacted(url: str) -> str:
    """A URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def parse_redis_url(raw: str | None, name: str = "REDIS_URL") -> str | None:
    """A Redis URL setting: None when unset or empty; ``ConfigError`` naming ``name`` when
    it is not a redis://, rediss:// or unix:// URL."""
    url = (raw or "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES or not (parts.hostname or parts.path):
        raise _config_error(
            f"{name} must be a redis://host:port/db, rediss:// or unix:// URL, got "
            f"{redacted(url)!r}"
        )
    try:
        aioredis.connection.parse_url(url)
    except ValueError as exc:
        raise _config_error(f"{name}: {exc}") from None
    return url


def buckets_for(redis_url: str | None) -> Buckets:
    """Redis buckets when a URL is given (several replicas), else this process's memory."""
    return RedisBuckets(redis_url) if redis_url else MemoryBuckets()


# --- the middleware -------------------------------------------------------------------------


class Authenticating(Protocol):
    async def authenticate(self, headers: Mapping[str, str]) -> Principal: ...


class RateLimitMiddleware:
    """ASGI middleware limiting ``paths`` (``/graphql``); other paths pass untouched.

    It authenticates the request once and leaves the principal on ``request.state`` for
    the GraphQL layer; a refused credential is not answered here but passed on (to its 401)
    after a take from the client address's bucket. The buckets are closed at shutdown.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: RateLimits,
        buckets: Buckets,
        authenticator: Authenticating,
        paths: Iterable[str] = ("/graphql",),
    ) -> None:
        from gateway.auth import AuthError, AuthUnavailable

        self.app = app
        self.limits = limits
        self.buckets = buckets
        self.authenticator = authenticator
        self.paths = frozenset(paths)
        self._refused = (AuthError, AuthUnavailable)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._closing_on_shutdown(send))
            return
        if scope["type"] != "http" or _route_path(scope) not in self.paths:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        principal = await self._principal(request)
        limit = self.limits.of(principal.kind if principal else "anonymous")
        if limit is None:  # unlimited
            await self.app(scope, receive, send)
            return
        client = request.client.host if request.client else None
        decision = await self.buckets.take(bucket_key(principal, client), limit)
        if not decision.allowed:
            metrics.rate_limited.labels(principal.kind if principal else "anonymous").inc()
            await _too_many_requests(request, decision)(scope, receive, send)
            return
        extra = decision.headers()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _principal(self, request: Request) -> Principal | None:
        """The request's principal, cached where ``principal_of`` finds it; None when the
        credential is refused (the GraphQL layer answers that)."""
        principal = getattr(request.state, "principal", None)
        if principal is None:
            try:
                principal = await self.authenticator.authenticate(request.headers)
            except self._refused:
                return None
            request.state.principal = principal
        return principal

    def _closing_on_shutdown(self, send: Send) -> Send:
        async def on_shutdown(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                try:
                    await self.buckets.aclose()
                except Exception as exc:  # closing must not turn a clean stop into a failure
                    log.warning("rate limits: closing the buckets failed: %s", exc)
            await send(message)

        return on_shutdown


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _too_many_requests(request: Request, decision: Decision) -> Response:
    from gateway.graphql_http import JSON
    from gateway.graphql_http import _request_id as request_id_of

    seconds = decision.retry_after_seconds
    limit = decision.limit
    body = {
        "errors": [
            {
                "message": (
                    f"rate limit exceeded ({limit.burst} requests, then {limit.rate:g} a "
                    f"second): retry after {seconds} s"
                ),
                "extensions": {"code": "RATE_LIMITED", "retryAfter": seconds},
            }
        ]
    }
    headers = {
        **decision.headers(),
        "retry-after": str(seconds),
        "x-request-id": request_id_of(request),
    }
    return Response(orjson.dumps(body), status_code=429, media_type=JSON, headers=headers)
