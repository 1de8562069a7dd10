"""Joins across systems: tax parcels to owners and complaints, registries to tax signboards."""

from __future__ import annotations

from decimal import Decimal

from connectors.traffy import distance_m, parse_ticket
from support import sql


def test_parcel_with_owner_assessments_and_signboards(gateway, db):
    parcel = sql(
        db.tax,
        "SELECT p.*, o.national_id, o.name, o.kind FROM tax.parcels p JOIN tax.owners o ON o.id = p.owner_id "
        "WHERE p.id IN (SELECT parcel_id FROM tax.signboards) ORDER BY p.id LIMIT 1",
    )[0]
    data = gateway.query(
        """query($id: ID!) { parcel(id: $id) { id titleDeedNumber landUse areaSqm appraisedValue
             district { code } location { lat lon }
             owner { kind name nationalId }
             assessments { taxYear base exemption rate taxDue status paidAt }
             signboards { id signType areaCm2 moving taxDue business { registrationNo } } } }""",
        {"id": str(parcel["id"])},
    )["parcel"]
    assert data["titleDeedNumber"] == parcel["title_deed_number"]
    assert Decimal(data["appraisedValue"]) == parcel["appraised_value"]
    assert data["owner"] == {
        "kind": parcel["kind"].upper(),
        "name": parcel["name"],
        "nationalId": parcel["national_id"],
    }
    assessments = sql(
        db.tax, "SELECT * FROM tax.assessments WHERE parcel_id = $1 ORDER BY tax_year", parcel["id"]
    )
    assert [a["taxYear"] for a in data["assessments"]] == [a["tax_year"] for a in assessments]
    assert [Decimal(a["taxDue"]) for a in data["assessments"]] == [
        a["tax_due"] for a in assessments
    ]
    assert [a["status"] for a in data["assessments"]] == [a["status"].upper() for a in assessments]
    signboards = sql(
        db.tax, "SELECT * FROM tax.signboards WHERE parcel_id = $1 ORDER BY id", parcel["id"]
    )
    assert [s["id"] for s in data["signboards"]] == [str(s["id"]) for s in signboards]
    assert [s["business"]["registrationNo"] for s in data["signboards"]] == [
        s["business_registration_no"] for s in signboards
    ]


def test_business_with_licences_and_signboards_from_tax(gateway, db):
    sign = sql(
        db.tax, "SELECT business_registration_no AS no FROM tax.signboards ORDER BY id LIMIT 1"
    )[0]
    number = sign["no"]
    schema = f"d{number[:4]}"
    data = gateway.query(
        """query($no: String!) { business(registrationNo: $no) { registrationNo name status
             district { code } owner { name nationalId }
             licences { licenceNo kind issuedOn expiresOn valid }
             signboards { id taxYear taxDue } } }""",
        {"no": number},
    )["business"]
    row = sql(
        db.registry,
        f"SELECT * FROM {schema}.commercial_registrations WHERE registration_no = $1",
        number,
    )[0]
    assert data["name"] == row["business_name"]
    assert data["owner"] == {"name": row["owner_name"], "nationalId": row["owner_id"]}
    assert data["district"]["code"] == number[:4]
    licences = sql(
        db.registry, f"SELECT licence_no FROM {schema}.licences WHERE registration_no = $1", number
    )
    assert sorted(lic["licenceNo"] for lic in data["licences"]) == sorted(
        r["licence_no"] for r in licences
    )
    signs = sql(
        db.tax,
        "SELECT id, tax_due FROM tax.signboards WHERE business_registration_no = $1 ORDER BY id",
        number,
    )
    assert [(s["id"], Decimal(s["taxDue"])) for s in data["signboards"]] == [
        (str(s["id"]), s["tax_due"]) for s in signs
    ]


def test_signboard_join_is_batched_across_businesses(gateway):
    gateway.reset_counters()
    data = gateway.query(
        '{ district(code: "1004") { businesses(first: 100) { edges { node { registrationNo signboards { id } licences { kind } } } } } }'
    )
    assert len(data["district"]["businesses"]["edges"]) > 0
    # One tax call for all signboards of the page; one registry call for the page, one for licences.
    assert dict(gateway.connectors.tax.counter.calls) == {"tax": 1}
    assert dict(gateway.connectors.registry.counter.calls) == {"registry:1004": 2}


def test_nearby_complaints_are_within_the_radius_nearest_first(gateway, db, tickets):
    parcels = sql(
        db.tax,
        "SELECT id, lat, lon FROM tax.parcels WHERE district_code = '1004' ORDER BY id LIMIT 5",
    )
    gateway.reset_counters()
    data = gateway.query(
        """{ parcels(filter: {district: "1004"}, first: 5) { edges { node { id
             nearbyComplaints(radiusMeters: 300, first: 100) { ticketId location { lat lon } } } } } }"""
    )
    assert gateway.connectors.traffy.counter.calls["traffy"] == 1  # all five parcels, one call
    parsed = [p for t in tickets if (p := parse_ticket(t)) and p["lat"] is not None]
    for parcel, edge in zip(parcels, data["parcels"]["edges"], strict=True):
        got = [c["ticketId"] for c in edge["node"]["nearbyComplaints"]]
        within = sorted(
            (distance_m(parcel["lat"], parcel["lon"], t["lat"], t["lon"]), t["ticket_id"])
            for t in parsed
            if distance_m(parcel["lat"], parcel["lon"], t["lat"], t["lon"]) <= 300
        )
        assert got == [tid for _, tid in within][:100]
    assert any(e["node"]["nearbyComplaints"] for e in data["parcels"]["edges"])
