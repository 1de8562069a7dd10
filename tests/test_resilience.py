"""Upstream resilience under real faults, through the gateway: timeouts, retries, circuit
breakers (the parts on their own: tests/connectors/test_resilience.py).

Real parts only: the seeded PostgreSQL (through a cuttable TCP proxy where a source must go
down), the Traffy stand-in behind an HTTP front that turns slow, answers 500 or garbage, and
behind a TCP proxy that refuses connections. Every gateway here runs with small resilience
settings (breaker opens after 3 failures, probes after 0.5 s) and its breakers on a clock the
test moves (``ManualClock``): a breaker stays open until the test says its reset interval has
passed, so no case waits for it. While Traffy is slow, its connector's timeout is short.

Each fault case checks: HTTP 200, the other sources' data right against SQL, the failed
source named with its code, the breaker sparing the upstream while open, and recovery (the
half-open probe closes the breaker, full data again) once the fault clears — on the same
gateway, never restarted.
"""

from __future__ import annotations

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

from connectors.districts import all_districts, code_for_name
from connectors.finance import FinanceConnector
from connectors.pg import PoolSettings
from connectors.registry import RegistryConnector, RegistrySourceConfig
from connectors.resilience import BreakerState, ResilienceSettings
from connectors.tax import TaxConnector
from connectors.traffy import TraffyConnector
from faults import HttpFaults, TcpProxy
from gateway.http.app import create_app
from gateway.http.serving import BackgroundServer
from schema import Connectors
from support import Gateway, ManualClock, breakers_on, settings_for, sql, wait_until

RESET = 0.5  # seconds a breaker stays open in these tests
FAST = ResilienceSettings(
    retries=2, backoff_base=0.01, backoff_cap=0.05, breaker_failures=3, breaker_reset=RESET
)
# Generous: the stand-in counts every ticket in Python, which on a slow machine under the
# whole suite took over 0.5 s.
TRAFFY_TIMEOUT = 2.0
# While the "slow" fault is on, the connector gives up after this (the fault hangs four times
# as long): the failures and the probe need not wait the generous timeout out.
SLOW_TIMEOUT = 0.3
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


def _inject(front: HttpFaults, proxy: TcpProxy, traffy: TraffyConnector, mode: str) -> None:
    if mode == "refused":
        proxy.stop()
    elif mode == "slow":
        traffy.timeout = SLOW_TIMEOUT
        front.set("slow", delay=SLOW_TIMEOUT * 4)
    else:
        front.set(mode)


def _clear(front: HttpFaults, proxy: TcpProxy, traffy: TraffyConnector) -> None:
    front.set("ok")
    proxy.start()
    traffy.timeout = TRAFFY_TIMEOUT


# --- a gateway over connectors built here ------------------------------------------------


@contextlib.contextmanager
def resilient_gateway(
    db,
    traffy_url: str,
    *,
    tax_dsn: str | None = None,
    registry: RegistryConnector | None = None,
) -> Iterator[tuple[Gateway, ManualClock]]:
    """A gateway over connectors with FAST settings, and the clock of their breakers."""
    pool = PoolSettings(max_size=4, timeout=PG_TIMEOUT)
    connectors = Connectors(
        tax=TaxConnector(tax_dsn or db.tax, pool, FAST),
        registry=registry or RegistryConnector.one_database(db.registry, pool, FAST),
        traffy=TraffyConnector(traffy_url, timeout=TRAFFY_TIMEOUT, resilience=FAST),
        finance=FinanceConnector(db.finance, pool, FAST),
    )
    clock = ManualClock()
    breakers_on(clock, *connectors.all())
    app = create_app(settings_for(db, traffy_url, upstream_timeout=PG_TIMEOUT), connectors)
    server = BackgroundServer(app).start()
    client = httpx.Client(base_url=server.url, timeout=30)
    try:
        yield Gateway(server.url, connectors, client), clock
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


@pytest.fixture(scope="module")
def gateway_over_chain(db, traffy_chain) -> Iterator[Gateway]:
    """One gateway whose Traffy is the faulty chain, for every fault in turn."""
    _front, proxy = traffy_chain
    with resilient_gateway(db, proxy.base_url) as (gw, _clock):
        yield gw


@pytest.fixture
def traffy_gateway(gateway_over_chain) -> Iterator[tuple[Gateway, ManualClock]]:
    """The gateway with fresh (closed) breakers on a clock of this test's own, its Traffy
    timeout the generous one again afterwards."""
    clock = ManualClock()
    breakers_on(clock, *gateway_over_chain.connectors.all())
    yield gateway_over_chain, clock
    gateway_over_chain.connectors.traffy.timeout = TRAFFY_TIMEOUT


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
    faulty_traffy, traffy_gateway, expected, mode, code, attempts
):
    front, proxy = faulty_traffy
    gw, clock = traffy_gateway
    traffy = gw.connectors.traffy
    assert _full(gw.post(DISTRICT_QUERY))["district"] == expected
    gw.reset_counters()
    front.reset()
    _inject(front, proxy, traffy, mode)

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
    clock.advance(RESET)
    assert _breaker(traffy, "traffy") is BreakerState.HALF_OPEN
    data, errors = _partial(gw.post(DISTRICT_QUERY))
    assert data["district"]["complaintStats"] is None
    assert [e["extensions"]["code"] for e in errors] == [code]
    assert traffy.counter.calls["traffy"] == attempts * queries + 1
    assert _breaker(traffy, "traffy") is BreakerState.OPEN

    # The fault clears: the next probe closes the breaker; full data again.
    _clear(front, proxy, traffy)
    clock.advance(RESET)
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
        with resilient_gateway(db, traffy_url, registry=registry) as (gw, clock):
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
            clock.advance(RESET)
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
        with resilient_gateway(db, traffy_url, tax_dsn=proxy.url(_db_name(db.tax))) as (gw, clock):
            assert _full(gw.post(TAX_QUERY))["district"] == expected
            stop = threading.Event()
            per_client: list[list[httpx.Response]] = [[] for _ in range(6)]

            def load(answers: list[httpx.Response]) -> None:
                with httpx.Client(base_url=gw.url, timeout=30) as client:
                    while not stop.is_set():
                        answers.append(client.post("/graphql", json={"query": TAX_QUERY}))

            def recovered() -> bool:
                """The breaker's reset interval passes and a probe (a client's or this one)
                goes: whether this request had a complete answer."""
                clock.advance(RESET)
                return not _partial(gw.post(TAX_QUERY))[1]

            with ThreadPoolExecutor(6) as pool:
                running = [pool.submit(load, answers) for answers in per_client]
                wait_until(lambda: all(per_client), what="answer to every client")
                proxy.stop()  # the database goes away: open connections cut, new ones refused
                # Failing calls open the breaker (and it stays open: the clock stands still).
                wait_until(
                    lambda: _breaker(gw.connectors.tax, "tax") is BreakerState.OPEN,
                    what="open tax breaker",
                )
                proxy.start()  # and comes back on the same address
                # A probe finds it back; on a slow machine not the first (the pool reconnects),
                # so the clock moves on until a complete answer comes (bounded); then every
                # client asks again after it.
                wait_until(recovered, timeout=20, what="complete answer after the restart")
                asked = [len(answers) for answers in per_client]
                wait_until(
                    lambda: all(len(a) > n for a, n in zip(per_client, asked, strict=True)),
                    what="new answer to every client",
                )
                stop.set()
                for done in running:
                    done.result()
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
