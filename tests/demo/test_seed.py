"""gateway/demo/seed.py: the synthetic dataset is deterministic for a seed, its IDs valid and
unique, its tickets cover every district, state and type (no database needed)."""

from __future__ import annotations

from datetime import time

import orjson
import pytest

from connectors.districts import all_districts, code_for_name
from gateway.demo import thai_data
from gateway.demo.seed import (
    BANGKOK,
    SIGNBOARD_COLUMNS,
    SeedScale,
    build_dataset,
)
from gateway.demo.tax_rules import is_valid_thai_id

SMALL = SeedScale(parcels=3_000, registrations=600, tickets=2_000, building_permits_per_district=3)


@pytest.fixture(scope="module")
def small_dataset():
    return build_dataset(SMALL, rng_seed=7)


def _tables(dataset) -> dict[str, list[tuple]]:
    tables: dict[str, list[tuple]] = {}
    for t in dataset.tax + dataset.registry + dataset.traffy:
        tables.setdefault(t.name, []).extend(t.rows)
    return tables


def test_same_seed_same_rows_other_seed_other_rows(small_dataset):
    assert _tables(build_dataset(SMALL, rng_seed=7)) == _tables(small_dataset)
    assert _tables(build_dataset(SMALL, rng_seed=8))["parcels"] != _tables(small_dataset)["parcels"]


def test_every_seeded_id_is_valid_and_owner_ids_unique(small_dataset):
    tables = _tables(small_dataset)
    owner_ids = [row[3] for row in tables["owners"]]
    assert len(set(owner_ids)) == len(owner_ids)
    assert all(is_valid_thai_id(i) for i in owner_ids)
    assert all(is_valid_thai_id(row[4]) for row in tables["commercial_registrations"])


def test_tickets_cover_every_district_state_and_type(small_dataset):
    docs = [orjson.loads(doc) for _, doc in _tables(small_dataset)["tickets"]]
    assert {code_for_name(d["district"]) for d in docs} == {d.code for d in all_districts()}
    assert {d["state"] for d in docs} == set(thai_data.TRAFFY_STATES)
    types = set()
    for d in docs:
        raw = d.get("problem_type_fondue", d.get("type"))
        types.update(raw if isinstance(raw, list) else raw.strip("{}").split(","))
    assert types == set(thai_data.TRAFFY_TYPES)


def test_signboard_tax_is_paid_within_its_year_in_office_hours(small_dataset):
    signs = [
        dict(zip(SIGNBOARD_COLUMNS, row, strict=True))
        for row in _tables(small_dataset)["signboards"]
    ]
    latest = max(SMALL.tax_years)
    for s in signs:
        assert (s["status"] == "paid") == (s["paid_at"] is not None)
        if s["paid_at"] is not None:
            local = s["paid_at"].astimezone(BANGKOK)
            assert local.year == s["tax_year"] and time(8, 30) <= local.time() <= time(16, 30)
    for latest_year, share in ((True, 0.7), (False, 0.95)):
        these = [s for s in signs if (s["tax_year"] == latest) == latest_year]
        paid = sum(s["status"] == "paid" for s in these) / len(these)
        assert paid == pytest.approx(share, abs=0.05)
