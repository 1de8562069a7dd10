"""Lists, filters and cursor pagination, checked against SQL and the seeded tickets."""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.districts import code_for_name
from connectors.traffy import STATES
from support import sql


def _walk(gateway, field: str, args: str, fields: str, size: int) -> tuple[list[dict], int]:
    """Every node of a connection, page by page; returns the nodes and the reported total."""
    nodes: list[dict] = []
    after = None
    total = None
    while True:
        cursor = f', after: "{after}"' if after else ""
        data = gateway.query(
            f"{{ {field}({args} first: {size}{cursor}) {{ totalCount "
            f"edges {{ cursor node {{ {fields} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
        )[field]
        total = data["totalCount"] if total is None else total
        assert data["totalCount"] == total  # stable across pages
        nodes.extend(e["node"] for e in data["edges"])
        if not data["pageInfo"]["hasNextPage"]:
            assert len(data["edges"]) <= size
            return nodes, total
        assert data["pageInfo"]["endCursor"] == data["edges"][-1]["cursor"]
        after = data["pageInfo"]["endCursor"]


def test_parcels_filtered_by_district_and_land_use_walk_all_pages(gateway, db):
    nodes, total = _walk(
        gateway,
        "parcels",
        'filter: {district: "1003", landUse: AGRICULTURAL},',
        "id landUse district { code }",
        37,
    )
    expected = sql(
        db.tax,
        "SELECT id FROM tax.parcels WHERE district_code = '1003' AND land_use = 'agricultural' ORDER BY id",
    )
    assert [int(n["id"]) for n in nodes] == [r["id"] for r in expected]
    assert total == len(expected) > 0
    assert {n["landUse"] for n in nodes} == {"AGRICULTURAL"}
    assert {n["district"]["code"] for n in nodes} == {"1003"}


def test_parcel_count_city_wide_matches_sql(gateway, db):
    data = gateway.query("{ parcels(first: 5) { totalCount edges { node { id } } } }")["parcels"]
    assert (
        data["totalCount"] == sql(db.tax, "SELECT count(*) AS n FROM tax.parcels")[0]["n"] >= 20_000
    )
    assert [e["node"]["id"] for e in data["edges"]] == ["1", "2", "3", "4", "5"]


def test_complaints_of_a_district_and_state_walk_all_pages(gateway, tickets):
    nodes, total = _walk(
        gateway,
        "complaints",
        'filter: {district: "1004", state: IN_PROGRESS},',
        "ticketId state district { code } reportedAt",
        50,
    )
    expected = {
        t["ticket_id"]
        for t in tickets
        if code_for_name(t["district"]) == "1004" and STATES[t["state"]] == "IN_PROGRESS"
    }
    ids = [n["ticketId"] for n in nodes]
    assert len(ids) == len(set(ids)) == total == len(expected) > 0
    assert set(ids) == expected
    times = [n["reportedAt"] for n in nodes]
    assert times == sorted(times, reverse=True)  # newest first, as the platform pages


def test_complaints_reported_between_two_times(gateway, tickets):
    since, until = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC)
    data = gateway.query(
        """query($since: DateTime, $until: DateTime) {
             complaints(filter: {reportedSince: $since, reportedUntil: $until, type: "ขยะ"}, first: 1) {
               totalCount } }""",
        {"since": since.isoformat(), "until": until.isoformat()},
    )
    expected = 0
    for t in tickets:
        reported = datetime.fromisoformat(t["timestamp"])
        raw = t.get("problem_type_fondue", t.get("type"))
        types = raw if isinstance(raw, list) else raw.strip("{}").split(",")
        expected += since <= reported < until and "ขยะ" in types
    assert data["complaints"]["totalCount"] == expected > 0


def test_complaint_by_ticket_id_has_every_field(gateway, tickets):
    raw = next(t for t in tickets if "comment" in t and t.get("after_photo"))
    data = gateway.query(
        """query($id: String!) { complaint(ticketId: $id) { ticketId type types state stateTh
             description district { code } address subdistrict location { lat lon } reportedAt
             lastActivityAt photoUrl afterPhotoUrl organizations star reopenCount } }""",
        {"id": raw["ticket_id"]},
    )["complaint"]
    assert data["ticketId"] == raw["ticket_id"]
    assert data["description"] == raw["comment"]
    assert data["photoUrl"] == raw["photo"]
    assert data["afterPhotoUrl"] == raw["after_photo"]
    assert data["stateTh"] == raw["state"]
    assert data["location"] == {"lon": float(raw["coords"][0]), "lat": float(raw["coords"][1])}
    assert data["district"]["code"] == code_for_name(raw["district"])
    assert datetime.fromisoformat(data["reportedAt"]) == datetime.fromisoformat(raw["timestamp"])
    assert gateway.query('{ complaint(ticketId: "no-such-ticket") { ticketId } }') == {
        "complaint": None
    }


def test_businesses_city_wide_walk_matches_every_registry(gateway, db):
    nodes, total = _walk(
        gateway,
        "businesses",
        "filter: {status: SUSPENDED},",
        "registrationNo status district { code }",
        40,
    )
    expected = []
    for code in range(1001, 1051):
        rows = sql(
            db.registry,
            f"SELECT registration_no FROM d{code}.commercial_registrations WHERE status = 'suspended'",
        )
        expected.extend(r["registration_no"] for r in rows)
    assert [n["registrationNo"] for n in nodes] == sorted(expected)
    assert total == len(expected) > 0
    assert all(n["registrationNo"].startswith(n["district"]["code"]) for n in nodes)


def test_businesses_of_one_district_by_type(gateway, db):
    row = sql(db.registry, "SELECT business_type FROM d1039.commercial_registrations LIMIT 1")[0]
    data = gateway.query(
        """query($t: String) { district(code: "1039") { businesses(filter: {type: $t}, first: 1000) {
             totalCount edges { node { type district { code } } } } } }""",
        {"t": row["business_type"]},
    )["district"]["businesses"]
    expected = sql(
        db.registry,
        "SELECT count(*) AS n FROM d1039.commercial_registrations WHERE business_type = $1",
        row["business_type"],
    )[0]["n"]
    assert data["totalCount"] == len(data["edges"]) == expected
    assert {e["node"]["type"] for e in data["edges"]} == {row["business_type"]}


def test_building_permits_and_population_of_a_district(gateway, db):
    data = gateway.query(
        """{ district(code: "1010") { buildingPermits(first: 3) { totalCount edges { node { permitNo floors } } }
             populationStats { year sex ageBand population } } }"""
    )["district"]
    permits = sql(db.registry, "SELECT permit_no FROM d1010.building_permits ORDER BY permit_no")
    assert data["buildingPermits"]["totalCount"] == len(permits)
    assert [e["node"]["permitNo"] for e in data["buildingPermits"]["edges"]] == [
        r["permit_no"] for r in permits[:3]
    ]
    stats = sql(
        db.registry,
        "SELECT sum(population) AS n, max(year) AS y FROM d1010.population_stats "
        "WHERE year = (SELECT max(year) FROM d1010.population_stats)",
    )[0]
    assert sum(b["population"] for b in data["populationStats"]) == stats["n"]
    assert {b["year"] for b in data["populationStats"]} == {stats["y"]}
    assert len(data["populationStats"]) == 12


def test_time_without_a_zone_is_bangkok_time(gateway, tickets):
    naive = gateway.query(
        '{ complaints(filter: {reportedSince: "2024-01-01T00:00:00"}, first: 0) { totalCount } }'
    )
    zoned = gateway.query(
        '{ complaints(filter: {reportedSince: "2024-01-01T00:00:00+07:00"}, first: 0) { totalCount } }'
    )
    since = datetime(2023, 12, 31, 17, tzinfo=UTC)
    expected = sum(datetime.fromisoformat(t["timestamp"]) >= since for t in tickets)
    assert naive["complaints"]["totalCount"] == zoned["complaints"]["totalCount"] == expected


def test_nearby_complaints_for_many_parcels_batch_in_fifties(gateway):
    gateway.reset_counters()
    data = gateway.query(
        '{ parcels(filter: {district: "1003"}, first: 120) { edges { node { nearbyComplaints(radiusMeters: 200, first: 3) { ticketId } } } } }'
    )
    assert len(data["parcels"]["edges"]) == 120
    assert gateway.connectors.traffy.counter.calls["traffy"] == 3  # 50 + 50 + 20 points
