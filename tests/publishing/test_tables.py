"""A resource's rows: produced through the executor as the anonymous principal, page by page,
equal to what the GraphQL query answers; aggregates counted from those rows."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from gateway import errors
from gateway.audit.trail import Caller
from gateway.execution.executor import Executor, Operation
from gateway.http.app import connectors_from
from gateway.publishing.tables import Tables, bangkok_date, page_info, rows_of, walk
from policies.catalog import Column, Resource, load_catalog
from policies.model import load_policy
from policies.principal import ANONYMOUS
from schema import graphql_schema
from support import settings_for

CATALOG = load_catalog()


def _resource(**overrides: Any) -> Resource:
    fields: dict[str, Any] = {
        "id": "d-r",
        "name": "r",
        "title_th": "t",
        "title_en": "t",
        "description_th": "",
        "description_en": "",
        "query": "{ districts { code } }",
        "rows": "districts",
        "columns": (Column("code", "code"),),
        "formats": ("csv",),
    }
    return Resource(**{**fields, **overrides})


def test_walk_flattens_lists_on_the_way_and_keeps_a_list_at_the_end():
    data = {"a": {"edges": [{"node": {"x": [1, 2]}}, {"node": {"x": [3]}}]}}
    assert list(walk(data, ["a", "edges", "node", "x"])) == [[1, 2], [3]]
    assert list(walk(data, ["a", "missing"])) == [None]
    assert page_info({"a": {"pageInfo": {"hasNextPage": True}}}, "a.edges.node") == {
        "hasNextPage": True
    }


def test_a_list_column_explodes_into_one_row_per_item():
    resource = _resource(
        columns=(Column("district", "district.code"), Column("kind", "licences[].kind"))
    )
    node = {"district": {"code": "1001"}, "licences": [{"kind": "A"}, {"kind": "B"}]}
    assert list(rows_of(resource, node)) == [
        {"district": "1001", "kind": "A"},
        {"district": "1001", "kind": "B"},
    ]
    assert list(rows_of(resource, {"district": {"code": "1002"}, "licences": []})) == []


def test_a_list_within_an_exploded_list_makes_a_row_per_inner_item():
    resource = _resource(
        columns=(
            Column("district", "code"),
            Column("tax", "revenue[].taxType"),
            Column("month", "revenue[].months[].month"),
            Column("collected", "revenue[].months[].collected"),
        )
    )
    node = {
        "code": "1001",
        "revenue": [
            {
                "taxType": "A",
                "months": [{"month": "01", "collected": 1}, {"month": "02", "collected": 2}],
            },
            {"taxType": "B", "months": [{"month": "01", "collected": 3}]},
            {"taxType": "C", "months": []},
        ],
    }
    assert list(rows_of(resource, node)) == [
        {"district": "1001", "tax": "A", "month": "01", "collected": 1},
        {"district": "1001", "tax": "A", "month": "02", "collected": 2},
        {"district": "1001", "tax": "B", "month": "01", "collected": 3},
    ]


def test_the_date_transform_takes_the_bangkok_day():
    assert bangkok_date("2026-01-31T18:30:00+00:00") == "2026-02-01"
    assert bangkok_date("2026-01-31T16:59:59+00:00") == "2026-01-31"
    assert bangkok_date("2026-01-31") == "2026-01-31"


@pytest.fixture
async def tables(db, traffy_url) -> AsyncIterator[Tables]:
    connectors = connectors_from(settings_for(db, traffy_url))
    await asyncio.gather(*(c.start() for c in connectors.all()))
    executor = Executor(graphql_schema(), load_policy(), _NoAudit(), connectors)
    try:
        yield Tables(executor)
    finally:
        await asyncio.gather(*(c.stop() for c in connectors.all()))


class _NoAudit:
    """Open data is never audited: a record asked for here is a defect."""

    async def record(self, entry: dict[str, Any]) -> None:
        raise AssertionError(f"a published table was audited: {entry}")

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def test_every_complaint_once_in_the_graphs_order(tables, tickets):
    _dataset, resource = CATALOG.resource("traffy-complaints-complaints") or (None, None)
    assert resource is not None
    rows = [row async for row in tables.rows(resource)]
    assert len(rows) == len(tickets) == len({r["ticket_id"] for r in rows})
    assert [c.name for c in resource.columns] == list(rows[0])
    # The first page equals the GraphQL answer for it, field by field.
    answer = await tables.executor.run(
        Operation(resource.query, {"first": 3}), Caller(ANONYMOUS, "t", None)
    )
    first = [e["node"] for e in answer.body["data"]["complaints"]["edges"]]
    assert [r["ticket_id"] for r in rows[:3]] == [n["ticketId"] for n in first]
    assert rows[0]["district_code"] == first[0]["district"]["code"]
    assert rows[0]["lat"] == first[0]["location"]["lat"]


async def test_daily_counts_add_up_to_every_complaint(tables, tickets):
    _dataset, resource = CATALOG.resource("traffy-complaints-daily-counts") or (None, None)
    assert resource is not None and resource.aggregate is not None
    rows = [row async for row in tables.rows(resource)]
    assert sum(r["complaints"] for r in rows) == len(tickets)
    keys = [(r["date"], r["district_code"], r["type"], r["state"]) for r in rows]
    assert keys == sorted(keys, key=lambda k: tuple((v is None, str(v)) for v in k))
    assert len(set(keys)) == len(keys)
    by_district = Counter()
    for r in rows:
        by_district[r["district_code"]] += r["complaints"]
    assert len(by_district) >= 45


async def test_a_failing_source_fails_the_table_instead_of_shortening_it(db):
    connectors = connectors_from(settings_for(db, "http://127.0.0.1:9", upstream_timeout=1))
    await asyncio.gather(*(c.start() for c in connectors.all()))
    try:
        tables = Tables(Executor(graphql_schema(), load_policy(), _NoAudit(), connectors))
        _dataset, resource = CATALOG.resource("traffy-complaints-complaints") or (None, None)
        assert resource is not None
        with pytest.raises(errors.DatasetUnavailable, match="traffy-complaints-complaints"):
            [row async for row in tables.rows(resource)]
    finally:
        await asyncio.gather(*(c.stop() for c in connectors.all()))


@pytest.mark.parametrize("resource_id", [r.id for _d, r in CATALOG.resources()])
async def test_every_resource_of_the_catalogue_makes_its_table(tables, resource_id):
    _dataset, resource = CATALOG.resource(resource_id) or (None, None)
    assert resource is not None
    rows = [row async for row in tables.rows(resource)]
    assert rows, resource_id
    assert {tuple(row) for row in rows} == {resource.output_columns}


async def test_a_resource_with_several_variable_sets_runs_each(tables):
    _dataset, resource = CATALOG.resource("tax-revenue-land-and-building") or (None, None)
    assert resource is not None
    rows = [row async for row in tables.rows(resource)]
    assert len(rows) == 50 * len(resource.variables)
    caller = Caller(ANONYMOUS, "t", None)
    for variables in resource.variables:
        answer = await tables.executor.run(Operation(resource.query, dict(variables)), caller)
        expected = answer.body["data"]["districts"]
        got = [r for r in rows if r["tax_year"] == variables["year"]]
        assert [(r["district_code"], r["collected"]) for r in got] == [
            (d["code"], d["taxRevenue"]["collected"]) for d in expected
        ]


async def test_an_aggregate_counts_and_sums_as_sql_does(tables, db):
    _dataset, resource = CATALOG.resource("tax-revenue-signboard") or (None, None)
    assert resource is not None
    rows = [row async for row in tables.rows(resource)]
    conn = await asyncpg.connect(db.tax)
    try:
        found = await conn.fetch(
            "SELECT district_code, tax_year, count(*) AS n, sum(tax_due)::text AS total "
            "FROM tax.signboards GROUP BY district_code, tax_year"
        )
    finally:
        await conn.close()
    expected = {(r["district_code"], r["tax_year"]): (r["n"], r["total"]) for r in found}
    got = {(r["district_code"], r["tax_year"]): (r["signboards"], r["tax_assessed"]) for r in rows}
    assert got == expected
