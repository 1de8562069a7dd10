"""The rows a published resource must hold: its operation asked as the anonymous GraphQL
caller, page by page, for each set of its variables, rows made by the resource's columns,
an aggregate counted and summed here (the downloads and the CKAN DataStore are checked
against these)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gateway.publishing.tables import page_info, rows_of, walk
from policies.catalog import Aggregate, Resource
from support import Gateway

PAGE = 700  # the reference walks GraphQL pages of its own size, not the download's


def _answer_rows(gw: Gateway, resource: Resource) -> list[dict[str, Any]]:
    """The resource's rows as the anonymous GraphQL query answers them, page by page, for each
    of its sets of variables (an aggregate's groups counted and summed here, sorted by their
    columns, nothing last)."""
    rows: list[dict[str, Any]] = []
    for given in resource.variables:
        after = None
        while True:
            variables = {**given, "first": PAGE, "after": after} if resource.paged else dict(given)
            data = gw.query(resource.query, variables or None)
            for found in walk(data, resource.rows.split(".")):
                for node in found if isinstance(found, list) else [found]:
                    rows.extend(rows_of(resource, node))
            page = page_info(data, resource.rows)
            if not resource.paged or not page.get("hasNextPage"):
                break
            after = page["endCursor"]
    return rows if resource.aggregate is None else _aggregated(resource.aggregate, rows)


def _aggregated(aggregate: Aggregate, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[c] for c in aggregate.group_by), []).append(row)
    table = []
    for key in sorted(groups, key=lambda key: tuple((v is None, str(v)) for v in key)):
        members = groups[key]
        sums = {
            name: sum((Decimal(str(r[name])) for r in members if r[name] is not None), Decimal(0))
            for name in aggregate.sum
        }
        table.append(
            {
                **dict(zip(aggregate.group_by, key, strict=True)),
                aggregate.count: len(members),
                # As the graph writes numbers: whole ones as integers, money as decimal text.
                **{n: int(v) if v.as_tuple().exponent >= 0 else str(v) for n, v in sums.items()},
            }
        )
    return table


_PUBLISHED: dict[str, list[dict[str, Any]]] = {}


def published_rows(gw: Gateway, resource: Resource) -> list[dict[str, Any]]:
    """The resource's rows (asked once per test session)."""
    if resource.id not in _PUBLISHED:
        _PUBLISHED[resource.id] = _answer_rows(gw, resource)
    return _PUBLISHED[resource.id]
