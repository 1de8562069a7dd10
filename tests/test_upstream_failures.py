"""A failed upstream source becomes a partial result naming it, never a failed request."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from faults import TcpProxy, hold_back
from gateway.demo.embedded import database_url
from gateway.http.serving import BackgroundServer, free_port
from support import Gateway, breakers_on, settings_for, sql, start_gateway


@pytest.fixture(scope="module")
def one_district_down(db, traffy_url):
    """District 1039's registry points at a port where nothing listens."""
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/bmatest_registry"
    server, gw = start_gateway(settings_for(db, traffy_url, registry_district_urls={"1039": dead}))
    yield gw
    gw.client.close()
    server.stop()


def test_city_wide_businesses_with_one_district_down(one_district_down, db):
    response = one_district_down.post(
        "{ businesses(first: 1000, filter: {status: ACTIVE}) { totalCount edges { node { registrationNo district { code } } } } }"
    )
    assert response.status_code == 200
    body = response.json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert error["extensions"]["district"] == "1039"
    assert error["extensions"]["source"] == "registry:1039"
    assert "1039" in error["message"]
    assert error["path"] == ["businesses"]
    page = body["data"]["businesses"]
    expected_total = sum(
        sql(
            db.registry,
            f"SELECT count(*) AS n FROM d{c}.commercial_registrations WHERE status = 'active'",
        )[0]["n"]
        for c in range(1001, 1051)
        if c != 1039
    )
    assert page["totalCount"] == expected_total
    codes = {e["node"]["district"]["code"] for e in page["edges"]}
    assert "1039" not in codes
    assert len(codes) == 49 or len(page["edges"]) == 1000


def test_every_other_district_still_answers_in_the_fifty_district_query(one_district_down):
    body = one_district_down.post(
        "{ districts { code businessCount complaintStats { total } } }"
    ).json()
    counts = {d["code"]: d["businessCount"] for d in body["data"]["districts"]}
    assert counts["1039"] is None
    assert all(n > 0 for c, n in counts.items() if c != "1039")
    assert all(d["complaintStats"]["total"] > 0 for d in body["data"]["districts"])
    [error] = body["errors"]
    assert error["path"] == ["districts", 38, "businessCount"]
    assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"


def test_missing_registry_schema_is_unavailable_too(db, traffy_url):
    # A source that answers but lacks its tables fails alone, like a source that is down.
    wrong = database_url(db.registry, "bmatest_tax")
    server, gw = start_gateway(settings_for(db, traffy_url, registry_district_urls={"1001": wrong}))
    try:
        body = gw.post(
            '{ district(code: "1001") { businessCount } d2: district(code: "1002") { businessCount } }'
        ).json()
        assert body["data"]["district"]["businessCount"] is None
        assert body["data"]["d2"]["businessCount"] > 0
        assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    finally:
        gw.client.close()
        server.stop()


# While the stand-in hangs, Traffy's connector gives up after TRAFFY_TIMEOUT (the fault holds
# its answer back four times as long); the other sources keep the gateway's 1.5 s, over what
# the tax aggregate takes on a slow machine.
TRAFFY_TIMEOUT = 0.25
UPSTREAM_TIMEOUT = 1.5


class FaultyTraffy:
    """A Traffy that answers as ``mode`` says (slow, an error, malformed JSON or the wrong
    shape), behind a TCP proxy that refuses connections once stopped."""

    def __init__(self) -> None:
        self.mode = "shape"
        self.server = BackgroundServer(self._app()).start()
        self.proxy = TcpProxy(self.server.url).start()

    def _app(self) -> Starlette:
        async def answer(request: Request) -> Response:
            if self.mode == "slow":
                await hold_back(request, 4 * TRAFFY_TIMEOUT)
            if self.mode == "error":
                return Response(b"upstream exploded", status_code=500)
            if self.mode == "malformed":
                return Response(b'{"status": true, "results": [', media_type="application/json")
            return Response(
                b'{"status": true, "total": 0, "results": "nope"}', media_type="application/json"
            )

        return Starlette(routes=[Route("/share/teamchadchart/{rest}", answer)])

    def stop(self) -> None:
        self.proxy.close()
        self.server.stop()


@pytest.fixture(scope="module")
def faulty_traffy(db) -> Iterator[tuple[FaultyTraffy, Gateway]]:
    """One gateway whose Traffy is at fault, for every fault in turn."""
    traffy = FaultyTraffy()
    server, gw = start_gateway(
        settings_for(db, traffy.proxy.base_url, upstream_timeout=UPSTREAM_TIMEOUT)
    )
    yield traffy, gw
    gw.client.close()
    server.stop()
    traffy.stop()


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("slow", "UPSTREAM_TIMEOUT"),
        ("error", "UPSTREAM_UNAVAILABLE"),
        ("malformed", "UPSTREAM_UNAVAILABLE"),
        ("shape", "UPSTREAM_UNAVAILABLE"),
        ("refused", "UPSTREAM_UNAVAILABLE"),
    ],
)
def test_traffy_faults_leave_the_other_systems_answering(faulty_traffy, mode, code):
    traffy, gw = faulty_traffy
    traffy.mode = mode
    if mode == "refused":
        traffy.proxy.stop()
    gw.connectors.traffy.timeout = TRAFFY_TIMEOUT if mode == "slow" else UPSTREAM_TIMEOUT
    breakers_on(time.monotonic, gw.connectors.traffy)  # each fault meets a closed breaker
    try:
        response = gw.post(
            '{ district(code: "1004") { code complaintStats { total } taxRevenue(year: 2025) { parcelCount } } }'
        )
        assert response.status_code == 200
        body = response.json()
        assert body["data"]["district"]["complaintStats"] is None
        assert body["data"]["district"]["taxRevenue"]["parcelCount"] > 0
        assert [e["extensions"]["code"] for e in body["errors"]] == [code]
        assert body["errors"][0]["extensions"]["source"] == "traffy"
        root = gw.post("{ complaints(first: 5) { totalCount } }")
        assert root.status_code == 200
        assert root.json()["errors"][0]["extensions"]["code"] == code
    finally:
        traffy.proxy.start()


def test_finance_down_leaves_its_fields_null_and_the_other_systems_answering(db, traffy_url):
    """The finance source is guarded like the others: down, its fields are null with an error
    naming it, the rest of the district answers, and /readyz reports it."""
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/bmatest_finance"
    server, gw = start_gateway(settings_for(db, traffy_url, finance_database_url=dead))
    try:
        body = gw.post(
            '{ district(code: "1039") { code businessCount spending(year: 2568) { approved } } }'
        ).json()
        [error] = body["errors"]
        assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        assert error["extensions"]["source"] == "finance"
        assert error["path"] == ["district", "spending"]
        assert body["data"]["district"]["spending"] is None
        assert body["data"]["district"]["businessCount"] > 0
        ready = gw.client.get("/readyz").json()
        assert ready["status"] == "degraded"
        assert ready["sources"]["finance"]["state"].startswith("down")
    finally:
        gw.client.close()
        server.stop()
