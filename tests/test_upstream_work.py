"""The upstream work of one query: refused by its cost before any upstream call when it is
too much for the audience, and a batch of small radius searches answered however far apart
they are (issue #12, item 7)."""

from __future__ import annotations

import math

from connectors.traffy import NEARBY_FETCH_LIMIT, BoundingBox, distance_m, parse_ticket
from gateway.limits.config import DEFAULTS
from support import sql

FAN_OUT = (
    "{ parcels(first: 100) { edges { node {"
    " nearbyComplaints(radiusMeters: 5000, first: 100) { ticketId } } } } }"
)


def test_the_nearby_fan_out_is_refused_before_any_upstream_call(anonymous):
    anonymous.reset_counters()
    response = anonymous.post(FAN_OUT)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert error["extensions"]["limit"] == DEFAULTS["anonymous"].max_cost
    assert error["extensions"]["actual"] > DEFAULTS["anonymous"].max_cost
    assert {c.name: sum(c.counter.calls.values()) for c in anonymous.connectors.all()} == {
        c.name: 0 for c in anonymous.connectors.all()
    }


RADIUS = 1000
PARCELS = 50  # one batch of the nearby loader


def test_small_nearby_searches_across_the_city_answer_each(anonymous, db, tickets):
    """50 parcels spread over the city, 1 km each: every search's own area holds a few
    hundred complaints, their union thousands — more than one search may fetch."""
    parcels = sql(
        db.tax, f"SELECT id, lat, lon, district_code FROM tax.parcels ORDER BY id LIMIT {PARCELS}"
    )
    assert len({p["district_code"] for p in parcels}) >= 30  # spread across the city
    located = [t for raw in tickets if (t := parse_ticket(raw)) and t["lat"] is not None]
    boxes = [BoundingBox.around(p["lat"], p["lon"], RADIUS) for p in parcels]

    def in_a_box(t: dict) -> bool:
        return any(
            b.min_lat <= t["lat"] <= b.max_lat and b.min_lon <= t["lon"] <= b.max_lon for b in boxes
        )

    union = sum(1 for t in located if in_a_box(t))
    assert union > NEARBY_FETCH_LIMIT  # what failed the whole batch before

    anonymous.reset_counters()
    data = anonymous.query(
        f"{{ parcels(first: {PARCELS}) {{ edges {{ node {{ id"
        f" nearbyComplaints(radiusMeters: {RADIUS}, first: 100) {{ ticketId }} }} }} }} }}"
    )
    edges = data["parcels"]["edges"]
    assert [int(e["node"]["id"]) for e in edges] == [p["id"] for p in parcels]
    for parcel, edge in zip(parcels, edges, strict=True):
        within = sorted(
            (d, t["ticket_id"])
            for t in located
            if (d := distance_m(parcel["lat"], parcel["lon"], t["lat"], t["lon"])) <= RADIUS
        )
        assert [c["ticketId"] for c in edge["node"]["nearbyComplaints"]] == [
            tid for _, tid in within[:100]
        ]
    # One paged read of the union for the batch: its pages, and no more.
    traffy = anonymous.connectors.traffy
    assert traffy.counter.calls["traffy"] == math.ceil(union / traffy.max_page)
