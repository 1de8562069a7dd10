"""Upstream resilience under real faults: timeouts, retries, circuit breakers, concurrency.

Real parts only: the seeded PostgreSQL (through a cuttable TCP proxy where a source must go
down), the Traffy stand-in behind an HTTP front that turns slow, answers 500 or garbage, and
behind a TCP proxy that refuses connections. Every gateway here runs with small resilience
settings (breaker opens after 3 failures, probes after 0.5 s) so each case stays quick.

Each fault case checks: HTTP 200, the other sources' data right against SQL, the failed
source named with its code, the breaker sparing the upstream while open, and recovery (the
half-open probe closes the breaker, full data again) once the fault clears — on the same
gateway, never restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from connectors.base import PageRequest, UpstreamTimeout, UpstreamUnavailable
from connectors.districts import all_districts, code_for_name
from connectors.pg import PoolSettings
from connectors.registry import RegistryConnector, RegistrySourceConfig
from connectors.resilience import (
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    Guard,
    RefusedByUpstream,
    ResilienceSettings,
)
from connectors.tax import TaxConnector
from connectors.traffy import ComplaintQuery, TraffyConnector
from faults import HttpFaults, TcpProxy
from gateway.http.app import create_app
from gateway.http.serving import BackgroundServer, free_port
from schema import Connectors
from support import Gateway, settings_for, sql

RESET = 0.5  # seconds a breaker stays open in these tests
FAST = ResilienceSettings(
    retries=2, backoff_base=0.01, backoff_cap=0.05, breaker_failures=3, breaker_reset=RESET
)
# Generous: the stand-in counts every ticket in Python, which on a slow machine under the
# whole suite took over 0.5 s; a "slow" fault hangs four times this.
TRAFFY_TIMEOUT = 2.0
PG_TIMEOUT = 3.0  # generous: 50 district reads share a pool of 4 while the suite runs

DISTRICT_QUERY = """{ district(code: "1004") { code complaintStats { total }
    taxRevenue(year: 2025) { parcelCount } businessCount } }"""
DISTRICTS_QUERY = "{ districts { code businessCount } }"
TAX_QUERY = (
    '{ district(code: "1004") { code taxRevenue(year: 2025) { parcelCount } businessCount } }'
)


# --- what the sources hold ---------------------------------------------------------------


@pytest.fixture(scope="module")
def expected(db, tickets) -> dict[str, Any]:
    """The answer to DISTRICT_QUERY, from the seeded data."""
    parcels = sql(
        db.tax,
        """SELECT count(*) AS n FROM tax.assessments a JOIN tax.parcels p ON p.id = a.parcel_id
           WHERE a.tax_year = 2025 AND p.district_code = '1004'""",
    )[0]["n"]
    active = sql(
        db.registry,
        "SELECT count(*) AS n FROM d1004.commercial_registrations WHERE status = 'active'",
    )[0]["n"]
    complaints = sum(code_for_name(t["district"]) == "1004" for t in tickets)
    assert parcels and active and complaints
    return {
        "code": "1004",
        "complaintStats": {"total": complaints},
        "taxRevenue": {"parcelCount": parcels},
        "businessCount": active,
    }


@pytest.fixture(scope="module")
def business_counts(db) -> dict[str, int]:
    """Active businesses per district: the answer to DISTRICTS_QUERY."""
    return {
        d.code: sql(
            db.registry,
            f"SELECT count(*) AS n FROM d{d.code}.commercial_registrations WHERE status = 'active'",
        )[0]["n"]
        for d in all_districts()
    }


# --- the faulty Traffy: stand-in <- HTTP front (slow, 500, garbage) <- TCP proxy (refused) -


@pytest.fixture(scope="module")
def traffy_chain(traffy_url) -> Iterator[tuple[HttpFaults, TcpProxy]]:
    front = HttpFaults(traffy_url).start()
    proxy = TcpProxy(front.url).start()
    yield front, proxy
    proxy.close()
    front.stop()


@pytest.fixture
def faulty_traffy(traffy_chain) -> Iterator[tuple[HttpFaults, TcpProxy]]:
    """The chain, healthy at the start and the end of each test."""
    front, proxy = traffy_chain
    front.set("ok")
    front.reset()
    proxy.start()
    yield front, proxy
    front.set("ok")
    proxy.start()


def _inject(front: HttpFaults, proxy: TcpProxy, mode: str) -> None:
    if mode == "refused":
        proxy.stop()
    elif mode == "slow":
        front.set("slow", delay=TRAFFY_TIMEOUT * 4)
    else:
        front.set(mode)


def _clear(front: HttpFaults, proxy: TcpProxy) -> None:
    front.set("ok")
    proxy.start()


# --- a gateway over connectors built here ------------------------------------------------


@contextlib.contextmanager
def resilient_gateway(
    db,
    traffy_url: str,
    *,
    tax_dsn: str | None = None,
    registry: RegistryConnector | None = None,
) -> Iterator[Gateway]:
    pool = PoolSettings(max_size=4, timeout=PG_TIMEOUT)
    connectors = Connectors(
        tax=TaxConnector(tax_dsn or db.tax, pool, FAST),
        registry=registry or RegistryConnector.one_database(db.registry, pool, FAST),
        traffy=TraffyConnector(traffy_url, timeout=TRAFFY_TIMEOUT, resilience=FAST),
    )
    app = create_app(settings_for(db, traffy_url, upstream_timeout=PG_TIMEOUT), connectors)
    server = BackgroundServer(app).start()
    client = httpx.Client(base_url=server.url, timeout=30)
    try:
        yield Gateway(server.url, connectors, client)
    finally:
        client.close()
        server.stop()


def _full(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == 200, body
    assert "errors" not in body, body["errors"]
    return body["data"]


def _partial(response: httpx.Response) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    body = response.json()
    assert response.status_code == 200, body
    return body["data"], body.get("errors", [])


def _breaker(connector: Any, source: str) -> BreakerState:
    return connector.guards()[source].breaker.state


def _readyz(gw: Gateway, source: str) -> tuple[str, str]:
    """A source's line in /readyz: its state and its breaker's."""
    response = gw.client.get("/readyz")
    assert response.status_code == 200  # degraded, not down: the other sources answer
    entry = response.json()["sources"][source]
    return entry["state"], entry["breaker"]


def _db_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


# --- Traffy faults, through the gateway --------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "code", "attempts"),
    [
        ("slow", "UPSTREAM_TIMEOUT", 1),  # a timeout is never retried
        ("error", "UPSTREAM_UNAVAILABLE", 3),  # 1 + 2 retries
        ("malformed", "UPSTREAM_UNAVAILABLE", 3),
        ("refused", "UPSTREAM_UNAVAILABLE", 3),
    ],
)
def test_traffy_fault_partial_results_breaker_and_recovery(
    db, faulty_traffy, expected, mode, code, attempts
):
    front, proxy = faulty_traffy
    with resilient_gateway(db, proxy.base_url) as gw:
        traffy = gw.connectors.traffy
        assert _full(gw.post(DISTRICT_QUERY))["district"] == expected
        gw.reset_counters()
        front.reset()
        _inject(front, proxy, mode)

        # Failing: partial answers naming Traffy, until the breaker opens (3 failures).
        queries = -(-FAST.breaker_failures // attempts)
        for i in range(1, queries + 1):
            data, errors = _partial(gw.post(DISTRICT_QUERY))
            assert data["district"] == {**expected, "complaintStats": None}
            assert [(e["extensions"]["code"], e["extensions"]["source"]) for e in errors] == [
                (code, "traffy")
            ]
            assert errors[0]["path"] == ["district", "complaintStats"]
            assert traffy.counter.calls["traffy"] == attempts * i
            if mode != "refused":
                assert front.requests == attempts * i
        assert _breaker(traffy, "traffy") is BreakerState.OPEN

        # Open: fail fast, and the upstream is not asked at all.
        started = time.monotonic()
        data, errors = _partial(gw.post(DISTRICT_QUERY))
        assert time.monotonic() - started < TRAFFY_TIMEOUT
        assert data["district"] == {**expected, "complaintStats": None}
        [error] = errors
        assert error["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "source": "traffy"}
        assert "circuit open" in error["message"]
        assert traffy.counter.calls["traffy"] == attempts * queries
        state, breaker = _readyz(gw, "traffy")
        assert state.startswith("down")
        assert breaker in (None, "open")
        assert _readyz(gw, "tax")[0] == "ok"

        # Half-open with the fault still there: one probe, no retries, open again.
        time.sleep(RESET)
        assert _breaker(traffy, "traffy") is BreakerState.HALF_OPEN
        data, errors = _partial(gw.post(DISTRICT_QUERY))
        assert data["district"]["complaintStats"] is None
        assert [e["extensions"]["code"] for e in errors] == [code]
        assert traffy.counter.calls["traffy"] == attempts * queries + 1
        assert _breaker(traffy, "traffy") is BreakerState.OPEN

        # The fault clears: the next probe closes the breaker; full data again.
        _clear(front, proxy)
        time.sleep(RESET)
        assert _full(gw.post(DISTRICT_QUERY))["district"] == expected
        assert _breaker(traffy, "traffy") is BreakerState.CLOSED
        assert _readyz(gw, "traffy") == ("ok", "closed")
        assert _full(gw.post(DISTRICT_QUERY))["district"] == expected


# --- a district registry down ------------------------------------------------------------


def test_one_district_registry_down_opens_only_its_own_breaker(
    db, server_url, traffy_url, business_counts
):
    proxy = TcpProxy(server_url).start()
    dead_district = proxy.url(_db_name(db.registry))
    sources = [
        RegistrySourceConfig(
            d.code, dead_district if d.code == "1039" else db.registry, f"d{d.code}"
        )
        for d in all_districts()
    ]
    registry = RegistryConnector(sources, PoolSettings(max_size=4, timeout=PG_TIMEOUT), FAST)
    try:
        with resilient_gateway(db, traffy_url, registry=registry) as gw:
            counts = {
                d["code"]: d["businessCount"] for d in _full(gw.post(DISTRICTS_QUERY))["districts"]
            }
            assert counts == business_counts

            proxy.stop()
            registry.counter.reset()
            data, errors = _partial(gw.post(DISTRICTS_QUERY))
            counts = {d["code"]: d["businessCount"] for d in data["districts"]}
            assert counts == {**business_counts, "1039": None}
            [error] = errors
            assert error["extensions"] == {
                "code": "UPSTREAM_UNAVAILABLE",
                "source": "registry:1039",
                "district": "1039",
            }
            assert error["path"] == ["districts", 38, "businessCount"]
            assert registry.counter.calls["registry:1039"] == 3  # 1 + 2 retries
            breakers = {s: g.breaker.state for s, g in registry.guards().items()}
            assert breakers.pop("registry:1039") is BreakerState.OPEN
            assert set(breakers.values()) == {BreakerState.CLOSED} and len(breakers) == 49

            # Open: 1039 fails fast without a call; the 49 others are each asked once.
            registry.counter.reset()
            data, errors = _partial(gw.post(DISTRICTS_QUERY))
            assert {d["code"]: d["businessCount"] for d in data["districts"]} == {
                **business_counts,
                "1039": None,
            }
            assert [e["extensions"]["district"] for e in errors] == ["1039"]
            assert "circuit open" in errors[0]["message"]
            assert registry.counter.calls == Counter(
                {f"registry:{d.code}": 1 for d in all_districts() if d.code != "1039"}
            )
            state, breaker = _readyz(gw, "registry:1039")
            assert state.startswith("down") and breaker in (None, "open")
            assert _readyz(gw, "registry:1040") == ("ok", "closed")

            # Back: after the reset interval the probe closes the breaker.
            proxy.start()
            time.sleep(RESET)
            counts = {
                d["code"]: d["businessCount"] for d in _full(gw.post(DISTRICTS_QUERY))["districts"]
            }
            assert counts == business_counts
            assert _breaker(registry, "registry:1039") is BreakerState.CLOSED
    finally:
        proxy.close()


# --- PostgreSQL restarted mid-load -------------------------------------------------------


def test_tax_database_restarted_mid_load_the_pool_recovers(db, server_url, traffy_url, expected):
    # Tax and the registry only: six clients at once would queue the Traffy stand-in (one
    # Python process counting every ticket) past its 0.5 s timeout on a slow machine.
    expected = {k: v for k, v in expected.items() if k != "complaintStats"}
    proxy = TcpProxy(server_url).start()
    try:
        with resilient_gateway(db, traffy_url, tax_dsn=proxy.url(_db_name(db.tax))) as gw:
            assert _full(gw.post(TAX_QUERY))["district"] == expected
            stop = threading.Event()

            def load() -> list[httpx.Response]:
                answers = []
                with httpx.Client(base_url=gw.url, timeout=30) as client:
                    while not stop.is_set():
                        answers.append(client.post("/graphql", json={"query": TAX_QUERY}))
                return answers

            with ThreadPoolExecutor(6) as pool:
                running = [pool.submit(load) for _ in range(6)]
                time.sleep(0.4)
                proxy.stop()  # the database goes away: open connections cut, new ones refused
                time.sleep(0.5)
                proxy.start()  # and comes back on the same address
                # A probe finds it back after the breaker's reset time; on a slow machine
                # later than that, so wait for a complete answer (bounded), then let every
                # client ask again after it.
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    time.sleep(RESET)
                    if not _partial(gw.post(TAX_QUERY))[1]:
                        break
                time.sleep(2 * RESET)
                stop.set()
                per_client = [r.result() for r in running]
            answers = [a for client_answers in per_client for a in client_answers]

            cut = 0
            for response in answers:
                data, errors = _partial(response)
                district = data["district"]
                assert {k: v for k, v in district.items() if k != "taxRevenue"} == {
                    k: v for k, v in expected.items() if k != "taxRevenue"
                }
                if errors:
                    cut += 1
                    assert district["taxRevenue"] is None
                    assert {e["extensions"]["source"] for e in errors} == {"tax"}
                    assert {e["extensions"]["code"] for e in errors} <= {
                        "UPSTREAM_UNAVAILABLE",
                        "UPSTREAM_TIMEOUT",
                    }
                else:
                    assert district["taxRevenue"] == expected["taxRevenue"]
            assert cut > 0, "no request saw the database go away"
            # Same gateway, no restart: still under load, the pool reconnected and the breaker
            # closed after its probe, so every client's last answer is complete again.
            for client_answers in per_client:
                assert _full(client_answers[-1])["district"] == expected
            for _ in range(5):
                assert _full(gw.post(TAX_QUERY))["district"] == expected
            assert _breaker(gw.connectors.tax, "tax") is BreakerState.CLOSED
    finally:
        proxy.close()


# --- the breaker on its own (an injected clock) ------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_probes_once_and_closes():
    clock = _Clock()
    breaker = CircuitBreaker("s", failures=3, reset=10, clock=clock)
    for _ in range(2):
        breaker.admit()
        breaker.failed()
    breaker.admit()
    breaker.succeeded()  # a success resets the count: failures must be consecutive
    for _ in range(2):
        breaker.admit()
        breaker.failed()
    assert breaker.state is BreakerState.CLOSED
    breaker.admit()
    breaker.failed()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen) as refused:
        breaker.admit()
    assert refused.value.source == "s" and refused.value.reason == "circuit open"

    clock.now += 9.9
    assert breaker.state is BreakerState.OPEN and not breaker.allows()
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.admit()  # the probe
    with pytest.raises(CircuitOpen):
        breaker.admit()  # everyone else while the probe is out
    breaker.failed()  # the probe failed: open again, for a full interval
    assert breaker.state is BreakerState.OPEN
    clock.now += 9.9
    assert not breaker.allows()
    clock.now += 0.1
    breaker.admit()
    breaker.released()  # a probe cancelled says nothing: the next call probes instead
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.admit()
    breaker.succeeded()
    assert breaker.state is BreakerState.CLOSED and breaker.allows()


def test_backoff_is_full_jitter_under_a_capped_exponential():
    guard = Guard("s", ResilienceSettings(backoff_base=0.05, backoff_cap=0.15))
    for retry, ceiling in [(1, 0.05), (2, 0.1), (3, 0.15), (8, 0.15)]:
        waits = [guard.backoff(retry) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling / 2 and min(waits) < ceiling / 2  # spread, not fixed


def test_settings_refuse_nonsense():
    for bad in ({"retries": -1}, {"breaker_failures": 0}, {"concurrency": 0}):
        with pytest.raises(ValueError):
            ResilienceSettings(**bad)


# --- connectors against real faulty servers ----------------------------------------------


@pytest.fixture(scope="module")
def front(traffy_url) -> Iterator[HttpFaults]:
    server = HttpFaults(traffy_url).start()
    yield server
    server.stop()


@pytest.fixture
def healthy_front(front) -> Iterator[HttpFaults]:
    front.set("ok")
    front.reset()
    yield front
    front.set("ok")


def _traffy_run(url: str, settings: ResilienceSettings, body, timeout: float = TRAFFY_TIMEOUT):
    async def main() -> Any:
        traffy = TraffyConnector(url, timeout=timeout, resilience=settings)
        await traffy.start()
        try:
            return await body(traffy)
        finally:
            await traffy.stop()

    return asyncio.run(main())


def test_retries_on_unavailable_but_never_on_timeout(healthy_front):
    front = healthy_front

    async def once(traffy: TraffyConnector) -> tuple[type, int]:
        with pytest.raises(UpstreamUnavailable) as failed:
            await traffy.stats(["1004"])
        return type(failed.value), traffy.counter.calls["traffy"]

    front.set("error")
    assert _traffy_run(front.url, FAST, once) == (UpstreamUnavailable, 3)
    assert front.requests == 3
    front.reset()
    front.set("slow", delay=0.6)
    with pytest.raises(UpstreamTimeout):
        _traffy_run(front.url, FAST, lambda t: t.stats(["1004"]), timeout=0.3)
    assert front.requests == 1
    # A retry that succeeds hides the blip from the client.
    front.reset()
    front.set("error", times=1)
    stats = _traffy_run(front.url, FAST, lambda t: t.stats(["1004"]))
    assert stats["1004"].total > 0
    assert front.requests == 2


def test_open_breaker_fails_fast_without_upstream_calls_and_one_probe_closes_it(healthy_front):
    front = healthy_front
    settings = ResilienceSettings(retries=0, breaker_failures=3, breaker_reset=0.3)

    async def scenario(traffy: TraffyConnector) -> None:
        front.set("error")
        for _ in range(3):
            with pytest.raises(UpstreamUnavailable):
                await traffy.stats(["1004"])
        assert traffy.guard.breaker.state is BreakerState.OPEN
        calls, requests = traffy.counter.calls["traffy"], front.requests
        assert (calls, requests) == (3, 3)
        for _ in range(10):
            with pytest.raises(CircuitOpen):
                await traffy.search(ComplaintQuery(), PageRequest(first=1))
        assert (traffy.counter.calls["traffy"], front.requests) == (3, 3)  # upstream spared
        [health] = await traffy.health()  # a direct check: not through the breaker, not counted
        assert (health.ok, health.breaker) == (False, "open")
        assert (traffy.counter.calls["traffy"], front.requests) == (3, 4)
        front.reset()

        # After the reset, with the upstream back but slow: one probe goes, the rest wait out.
        front.set("slow", delay=0.1)
        await asyncio.sleep(0.3)
        outcomes = await asyncio.gather(
            *(traffy.stats(["1004"]) for _ in range(5)), return_exceptions=True
        )
        assert sum(isinstance(o, dict) for o in outcomes) == 1
        assert sum(isinstance(o, CircuitOpen) for o in outcomes) == 4
        assert (traffy.counter.calls["traffy"], front.requests) == (4, 1)
        assert traffy.guard.breaker.state is BreakerState.CLOSED
        results = await asyncio.gather(*(traffy.stats(["1004"]) for _ in range(5)))
        assert all(r["1004"].total > 0 for r in results)
        [health] = await traffy.health()
        assert (health.ok, health.breaker) == (True, "closed")

    _traffy_run(front.url, settings, scenario)


def test_concurrency_bound_holds_against_a_slow_server(healthy_front):
    front = healthy_front
    front.set("slow", delay=0.15)
    settings = ResilienceSettings(concurrency=4)

    async def burst(traffy: TraffyConnector) -> None:
        results = await asyncio.gather(*(traffy.stats(["1004"]) for _ in range(16)))
        assert all(r["1004"].total > 0 for r in results)
        assert front.in_flight == 0  # every call has ended: none is left holding a slot

    _traffy_run(front.url, settings, burst, timeout=5)
    assert front.requests == 16
    assert front.max_in_flight == 4  # reached, never passed


def test_a_call_that_cannot_get_a_slot_in_time_times_out_without_touching_the_upstream(
    healthy_front,
):
    front = healthy_front
    front.set("slow", delay=0.4)
    settings = ResilienceSettings(concurrency=1)

    async def queue(traffy: TraffyConnector) -> None:
        outcomes = await asyncio.gather(
            *(traffy.stats(["1004"]) for _ in range(3)), return_exceptions=True
        )
        answered = [o for o in outcomes if isinstance(o, dict)]
        [late] = [o for o in outcomes if not isinstance(o, dict)]
        assert len(answered) == 2
        assert isinstance(late, UpstreamTimeout) and "in flight" in late.reason
        assert traffy.counter.calls["traffy"] == 2
        assert traffy.guard.breaker.state is BreakerState.CLOSED

    _traffy_run(front.url, settings, queue, timeout=0.6)
    assert front.requests == 2


def test_rejected_requests_are_not_retried_and_do_not_open_the_breaker():
    async def ask() -> None:
        traffy = TraffyConnector("http://127.0.0.1:9", resilience=FAST)
        await traffy.start()
        try:
            for _ in range(FAST.breaker_failures + 2):
                with pytest.raises(RefusedByUpstream):
                    await traffy.by_ids(["x" * 70_000])  # over any URL limit
            assert traffy.counter.calls["traffy"] == FAST.breaker_failures + 2
            assert traffy.guard.breaker.state is BreakerState.CLOSED
        finally:
            await traffy.stop()

    asyncio.run(ask())


def test_a_database_source_retries_then_opens_and_health_shows_the_breaker(db):
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/{_db_name(db.tax)}"

    async def scenario() -> None:
        tax = TaxConnector(dead, PoolSettings(timeout=2), FAST)
        await tax.start()
        try:
            with pytest.raises(UpstreamUnavailable) as refused:
                await tax.parcels_by_ids([1])
            assert refused.value.source == "tax" and not isinstance(refused.value, CircuitOpen)
            assert tax.counter.calls["tax"] == 3
            with pytest.raises(CircuitOpen):
                await tax.parcels_by_ids([1])
            assert tax.counter.calls["tax"] == 3
            [health] = await tax.health()
            assert (health.source, health.ok, health.breaker) == ("tax", False, "open")
        finally:
            await tax.stop()

    asyncio.run(scenario())
