"""A failed upstream source becomes a partial result naming it, never a failed request."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from faults import hold_back
from gateway.demo.embedded import database_url
from gateway.http.app import connectors_from
from gateway.http.serving import BackgroundServer, free_port
from support import settings_for, sql, start_gateway


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
# its answer back four times as long); the other sources keep the gateway's timeout.
TRAFFY_TIMEOUT = 0.25


def _faulty_traffy(mode: str) -> Starlette:
    async def answer(request: Request) -> Response:
        if mode == "slow":
            await hold_back(request, 4 * TRAFFY_TIMEOUT)
        if mode == "error":
            return Response(b"upstream exploded", status_code=500)
        if mode == "malformed":
            return Response(b'{"status": true, "results": [', media_type="application/json")
        return Response(
            b'{"status": true, "total": 0, "results": "nope"}', media_type="application/json"
        )

    return Starlette(routes=[Route("/share/teamchadchart/{rest}", answer)])


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
def test_traffy_faults_leave_the_other_systems_answering(db, mode, code):
    faulty = None if mode == "refused" else BackgroundServer(_faulty_traffy(mode)).start()
    traffy_url = faulty.url if faulty else f"http://127.0.0.1:{free_port()}"
    # 1.5 s: over what the tax aggregate takes on a slow machine.
    settings = settings_for(db, traffy_url, upstream_timeout=1.5)
    connectors = connectors_from(settings)
    if mode == "slow":  # from the start: the gateway's startup check asks Traffy too
        connectors.traffy.timeout = TRAFFY_TIMEOUT
    server, gw = start_gateway(settings, connectors)
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
        gw.client.close()
        server.stop()
        if faulty:
            faulty.stop()
