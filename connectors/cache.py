"""Caches of upstream answers (aiocache): in memory, or in Redis when ``REDIS_URL`` is set.

Only public data is cached here: aggregates (tax revenue, business counts, population,
complaint statistics) and public complaint pages. Records carrying personal data are never
cached — Redis would become a second copy of them — and the access policy applies after the
cache, so a cached value is shown to each principal as the policy allows.

Each entry remembers when it was stored. Within its TTL it is served; after it, the upstream
is asked again — and if the upstream fails, an entry younger than TTL + ``stale_seconds`` is
served instead (stale-if-error) and the request notes it (``stale_uses``), so the response can
say which data is old. If Redis fails, the caches fall back to memory for a while, with one
warning (``connectors.redis_client``); no request fails because the cache does. Lookups are
reported to the store's observer (``connectors.observer``).
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

import orjson
from aiocache import RedisCache, SimpleMemoryCache
from aiocache.serializers import BaseSerializer

from connectors import redis_client
from connectors.base import Page, UpstreamError
from connectors.observer import QUIET, UpstreamObserver
from connectors.traffy import ComplaintCounts

log = logging.getLogger("bma.cache")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Seconds an entry is fresh, per cache; 0 turns a cache off.
DEFAULT_TTLS: Mapping[str, float] = {
    "tax.revenue": 300,
    "tax.revenue_by_month": 300,
    "registry.summaries": 300,
    "registry.population": 3600,
    "traffy.stats": 60,
    "traffy.search": 30,
    "finance.spending": 300,
    "response": 30,
    # Documents clients persisted by hash (automatic persisted queries, where allowed).
    "apq": 3600,
}
CONNECTORS = ("tax", "registry", "traffy", "finance")
NAMESPACE = "bma:cache"


@dataclasses.dataclass(frozen=True)
class CacheSettings:
    redis_url: str | None = None
    ttls: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_TTLS))
    stale_seconds: float = 600.0  # how long past its TTL an entry may stand in for a failure
    redis_timeout: float = 0.5


@dataclasses.dataclass(frozen=True)
class StaleUse:
    cache: str
    source: str
    age_seconds: float


# The stale entries the current request was served; set per request by the executor.
stale_uses: contextvars.ContextVar[list[StaleUse] | None] = contextvars.ContextVar(
    "stale_uses", default=None
)


class CacheStore:
    """The named caches of one process, in Redis (falling back to memory while it fails)
    when a URL is set, else in memory."""

    def __init__(
        self,
        settings: CacheSettings | None = None,
        observer: UpstreamObserver = QUIET,
        *,
        clock: Callable[[], float] = time.time,  # an entry's age: wall time, shared by replicas
    ) -> None:
        self.settings = settings or CacheSettings()
        self.observer = observer
        self.clock = clock
        self._memory = SimpleMemoryCache(timeout=None)
        self._redis: RedisCache | None = None
        self._fallback: redis_client.RedisFallback | None = None
        if self.settings.redis_url:
            self._pool = redis_client.connection_pool(
                self.settings.redis_url, self.settings.redis_timeout, decode_responses=False
            )
            self._redis = _redis_cache(self._pool, self.settings.redis_timeout)
            self._fallback = redis_client.RedisFallback(
                self.settings.redis_url,
                what="Redis cache",
                meanwhile="caching in this replica's memory",
                log=log,
            )

    def ttl(self, name: str) -> float:
        return float(self.settings.ttls.get(name, 0))

    async def get_many(self, name: str, keys: Sequence[str], *, text: bool = False) -> list[Any]:
        """Values by key (None when missing); ``text``: stored as text, not serialized."""
        extra = {"loads_fn": _same} if text else {}
        values: list[Any] = await self._call("multi_get", [_key(name, k) for k in keys], **extra)
        return values

    async def get(self, name: str, key: str) -> Any:
        """One value by key, as stored (None when missing): the response cache's lookup,
        made on every hit. In memory it reads the backend's table directly: aiocache's
        per-call layers (timeout, plugins, namespace; nothing this store uses) cost more
        than the rest of a hit (aiocache is pinned below 0.13 for this)."""
        if self._redis is None:
            return await self._memory._get(_key(name, key))
        [value] = await self.get_many(name, [key], text=True)
        return value

    async def set_many(
        self, name: str, pairs: Sequence[tuple[str, Any]], ttl: float, *, text: bool = False
    ) -> None:
        if pairs:
            extra = {"dumps_fn": _same} if text else {}
            await self._call("multi_set", [(_key(name, k), v) for k, v in pairs], ttl=ttl, **extra)

    async def clear(self, names: Sequence[str], *, strict: bool = False) -> None:
        """Empty the named caches; ``strict``: a Redis failure raises (the CLI reports it)
        instead of falling back to memory."""
        for name in names:
            namespace = f"{NAMESPACE}:{name}"
            if strict and self._redis is not None:
                await self._redis.clear(namespace=namespace)
            else:
                await self._call("clear", namespace=namespace)

    async def close(self) -> None:
        if self._redis is not None:
            # The pool we made (aiocache's close() calls redis-py's deprecated close()).
            await self._pool.aclose()

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        async def in_memory() -> Any:
            return await getattr(self._memory, method)(*args, **kwargs)

        if self._redis is None or self._fallback is None:
            return await in_memory()
        redis = self._redis

        async def in_redis() -> Any:
            return await getattr(redis, method)(*args, **kwargs)

        return await self._fallback.call(in_redis, in_memory)


def _same(value: Any) -> Any:
    return value


def _key(name: str, key: str) -> str:
    # Memory keys carry the namespace too: `clear` matches both backends the same way.
    return f"{NAMESPACE}:{name}:{key}"


def _redis_cache(pool: Any, timeout: float) -> RedisCache:
    """aiocache over our own pool: aiocache would build one from host and port, losing TLS
    (rediss://) and unix sockets; its ``connection_pool_class`` hook takes ours instead."""
    return RedisCache(
        serializer=TypedJsonSerializer(),
        timeout=timeout,
        connection_pool_class=lambda **_aiocache_options: pool,
    )


# ---------------------------------------------------------------------------- batches


async def cached_batch(
    store: CacheStore | None,
    name: str,
    fetch: Callable[[list[K]], Awaitable[Mapping[K, V | UpstreamError]]],
    keys: list[K],
) -> Mapping[K, V | UpstreamError]:
    """``fetch`` (a connector batch method) through the cache ``name``: fresh entries are
    served, the rest fetched and stored; a failed key is answered from a stale entry when
    there is one. Each key is reported once to the observer: hit (fresh entry),
    stale (fetch failed, an old entry served) or miss (fetched, or failed with no entry)."""
    ttl = store.ttl(name) if store is not None else 0
    if store is None or not ttl:
        return await fetch(keys)
    texts = [_text(k) for k in keys]
    entries = dict(zip(keys, await store.get_many(name, texts), strict=True))
    now = store.clock()
    result: dict[K, V | UpstreamError] = {
        k: e["v"] for k, e in entries.items() if e is not None and now - e["at"] < ttl
    }
    missing = [k for k in keys if k not in result]
    store.observer.cache(name, "hit", len(result))
    if not missing:
        return result
    try:
        found = await fetch(missing)
    except UpstreamError as exc:
        found = {k: exc for k in missing}
    fresh: list[tuple[str, Any]] = []
    stale = 0
    for k in missing:
        value = found.get(k)
        if isinstance(value, UpstreamError):
            result[k] = _stale_or(entries.get(k), value, name, now)
            stale += result[k] is not value
        else:
            result[k] = value  # type: ignore[assignment]
            if value is not None and not getattr(value, "failures", None):  # partial: not kept
                fresh.append((_text(k), {"at": now, "v": value}))
    store.observer.cache(name, "stale", stale)
    store.observer.cache(name, "miss", len(missing) - stale)
    await store.set_many(name, fresh, ttl + store.settings.stale_seconds)
    return result


async def cached_call(
    store: CacheStore | None, name: str, key: Hashable, call: Callable[[], Awaitable[V]]
) -> V:
    """One upstream call through the cache ``name`` (e.g. a page of a public list)."""

    async def fetch(keys: list[Hashable]) -> dict[Hashable, Any]:
        return {keys[0]: await call()}

    found = (await cached_batch(store, name, fetch, [key]))[key]
    if isinstance(found, UpstreamError):
        raise found
    value: V = found
    return value


def _stale_or(entry: Any, error: UpstreamError, name: str, now: float) -> Any:
    if entry is None:
        return error
    uses = stale_uses.get()
    if uses is not None:
        uses.append(StaleUse(name, error.source, round(now - entry["at"], 1)))
    return entry["v"]


def _text(key: Hashable) -> str:
    """A stable text for a key: tuples and dataclasses (queries, page requests) included."""
    return orjson.dumps(key, default=_plain, option=orjson.OPT_SORT_KEYS).decode()


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, frozenset | set):
        return sorted(value)
    raise TypeError(f"cannot key a cache by {type(value).__name__}")


# ---------------------------------------------------------------------------- serializer

# The only classes a cached value may be rebuilt as: never an arbitrary class from Redis.
_CLASSES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "ComplaintCounts": lambda f: ComplaintCounts(
        f["total"], Counter(f["by_state"]), Counter(f["by_type"])
    ),
    "Page": lambda f: Page(**f),
}


class TypedJsonSerializer(BaseSerializer):  # type: ignore[misc]  # aiocache is untyped
    """JSON that keeps Decimal, datetime, date, tuples and the connectors' value classes.
    Never pickle: a value read from Redis can only become data, not code."""

    DEFAULT_ENCODING = "utf-8"

    def dumps(self, value: Any) -> str:
        return orjson.dumps(_tagged(value)).decode()

    def loads(self, value: str | None) -> Any:
        return None if value is None else _untagged(orjson.loads(value))


def _tagged(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _tagged(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tagged(v) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [_tagged(v) for v in value]}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if type(value).__name__ in _CLASSES and dataclasses.is_dataclass(value):
        fields = {f.name: _tagged(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$class": type(value).__name__, "fields": fields}
    return value


def _untagged(value: Any) -> Any:
    if isinstance(value, list):
        return [_untagged(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$decimal" in value:
        return Decimal(value["$decimal"])
    if "$datetime" in value:
        return datetime.fromisoformat(value["$datetime"])
    if "$date" in value:
        return date.fromisoformat(value["$date"])
    if "$tuple" in value:
        return tuple(_untagged(v) for v in value["$tuple"])
    if "$class" in value:
        build = _CLASSES[value["$class"]]
        return build({k: _untagged(v) for k, v in value["fields"].items()})
    return {k: _untagged(v) for k, v in value.items()}


class RecentLookups(Generic[V]):
    """What lookups by key found lately, in this process: each answer (an absent one too, so
    that a key asked for again and again does not reach the database every time) for
    ``seconds``, and at most ``most`` keys, the least recently stored leaving first. The
    request path's small stores (API keys, registered documents) keep theirs here."""

    def __init__(self, seconds: float, most: int) -> None:
        self.seconds = seconds
        self.most = most
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str) -> tuple[float, V] | None:
        """When the answer for ``key`` was stored, and the answer; None if none is kept."""
        return self._entries.get(key)

    def fresh(self, entry: tuple[float, V], now: float) -> bool:
        return now - entry[0] < self.seconds

    def put(self, key: str, now: float, value: V) -> None:
        self._entries[key] = (now, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.most:
            self._entries.popitem(last=False)
