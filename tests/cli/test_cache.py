"""gateway/cli/cache.py: `bma-gateway cache clear` empties the chosen connectors' caches in
Redis, and says why when it cannot."""

from __future__ import annotations

import os

import pytest

from connectors.cache import CacheSettings, CacheStore, cached_batch
from support import BatchUpstream, run

REDIS_URL = os.environ.get("REDIS_URL")


needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="REDIS_URL not set: the Redis-backed cache needs a Redis server"
)


@needs_redis
def test_cache_clear_empties_the_chosen_connectors_caches_in_redis(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    from gateway.cli import main

    upstream = BatchUpstream()
    settings = CacheSettings(redis_url=REDIS_URL)

    async def fill() -> None:
        store = CacheStore(settings)
        for name in ("tax.revenue", "traffy.stats"):
            await cached_batch(store, name, upstream.fetch, ["clear-me"])
        await store.close()

    async def cached(name: str) -> bool:
        store = CacheStore(settings)
        try:
            [entry] = await store.get_many(name, ['"clear-me"'])
        finally:
            await store.close()
        return entry is not None

    run(fill())
    assert run(cached("tax.revenue")) and run(cached("traffy.stats"))
    monkeypatch.setenv("REDIS_URL", REDIS_URL or "")
    assert main(["cache", "clear", "--connector", "tax"]) == 0
    assert "tax.revenue" in capsys.readouterr().out
    assert not run(cached("tax.revenue")) and run(cached("traffy.stats"))
    assert main(["cache", "clear"]) == 0
    assert not run(cached("traffy.stats"))


def test_cache_clear_without_redis_says_why(monkeypatch: pytest.MonkeyPatch, capsys):
    from gateway.cli import main

    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["cache", "clear"]) == 2
    assert "REDIS_URL is not set" in capsys.readouterr().err


def test_cache_clear_reports_an_unreachable_redis(monkeypatch: pytest.MonkeyPatch, capsys):
    from gateway.cli import main

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["cache", "clear", "--connector", "traffy"]) == 1
    assert "cannot clear the caches" in capsys.readouterr().err
