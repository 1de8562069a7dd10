"""gateway/ratelimit/buckets.py: memory buckets refill with time (a clock the test moves) and
stay bounded, forgetting refilled and least recently used buckets. (Buckets over HTTP, in
memory and in Redis: tests/ratelimit/test_middleware.py.)"""

from __future__ import annotations

import pytest

from gateway.ratelimit.buckets import MemoryBuckets
from gateway.ratelimit.config import RateLimit


def test_memory_buckets_refill_with_time_and_forget_refilled_and_least_recent_buckets():
    now = [0.0]
    buckets = MemoryBuckets(max_buckets=3, clock=lambda: now[0])
    limit = RateLimit(rate=1.0, burst=2)
    assert [buckets.take_now("a", limit).allowed for _ in range(3)] == [True, True, False]
    refused = buckets.take_now("a", limit)
    assert refused.retry_after == pytest.approx(1.0) and refused.remaining == 0
    now[0] = 1.0
    assert buckets.take_now("a", limit).allowed
    assert not buckets.take_now("a", limit).allowed
    # A bucket that has refilled is as good as none: it is dropped.
    buckets.take_now("b", limit)
    now[0] = 10.0
    buckets.take_now("c", limit)
    assert len(buckets) == 1
    # Never more than max_buckets: the least recently used go first.
    for key in "defgh":
        buckets.take_now(key, limit)
    assert len(buckets) == 3
