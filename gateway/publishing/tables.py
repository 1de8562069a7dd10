"""The rows of a published resource, produced from the graph as the anonymous principal.

A resource's operation runs through the gateway's own executor — the same limits, policy
plan, caches and upstream calls as that GraphQL query sent by an anonymous caller — so a
table can never hold a value the anonymous principal could not read, and its rows are what
the query answers. A paged resource is asked page after page (the anonymous principal's
largest page) and its rows are yielded as each page arrives, so a table of any size passes
through in the memory of one page. An aggregate counts the rows by its group columns, in
memory proportional to the groups.

A value is the JSON the GraphQL answer holds (strings for times and decimals), except for a
column with a ``transform``.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson

from gateway import errors
from gateway.audit.trail import Caller
from gateway.execution.executor import Executor, Operation
from policies.catalog import Column, Resource
from policies.principal import ANONYMOUS

Row = dict[str, Any]
BANGKOK = timezone(timedelta(hours=7))


class Tables:
    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.page_size = executor.page_limits["anonymous"].max_page_size

    async def rows(
        self, resource: Resource, request_id: str = "publishing", client: str | None = None
    ) -> AsyncIterator[Row]:
        """Every row of ``resource``, in the order the graph answers them (an aggregate's
        groups sorted by their columns)."""
        caller = Caller(ANONYMOUS, request_id, client)
        if resource.aggregate is None:
            async for node in self._nodes(resource, caller):
                for row in rows_of(resource, node):
                    yield row
            return
        aggregate = resource.aggregate
        counts: Counter[tuple[Any, ...]] = Counter()
        sums: dict[tuple[Any, ...], list[Decimal]] = {}
        async for node in self._nodes(resource, caller):
            for row in rows_of(resource, node):
                key = tuple(row[name] for name in aggregate.group_by)
                counts[key] += 1
                totals = sums.setdefault(key, [Decimal(0)] * len(aggregate.sum))
                for i, name in enumerate(aggregate.sum):
                    totals[i] += _number(row[name])
        for key in sorted(counts, key=_sort_key):
            yield {
                **dict(zip(aggregate.group_by, key, strict=True)),
                aggregate.count: counts[key],
                **{
                    name: _plain(total)
                    for name, total in zip(aggregate.sum, sums[key], strict=True)
                },
            }

    async def _nodes(self, resource: Resource, caller: Caller) -> AsyncIterator[Any]:
        """The row objects of every page of the resource's answer, for each of its sets of
        variables in turn."""
        for variables in resource.variables:
            async for node in self._pages(resource, dict(variables), caller):
                yield node

    async def _pages(
        self, resource: Resource, given: dict[str, Any], caller: Caller
    ) -> AsyncIterator[Any]:
        after: str | None = None
        while True:
            variables = (
                {**given, "first": self.page_size, "after": after} if resource.paged else given
            )
            data = await self._answer(resource, variables or None, caller)
            for found in walk(data, resource.rows.split(".")):
                for node in found if isinstance(found, list) else [found]:
                    yield node
            if not resource.paged:
                return
            page = page_info(data, resource.rows)
            if not page.get("hasNextPage") or not page.get("endCursor"):
                return
            after = page["endCursor"]

    async def _answer(
        self, resource: Resource, variables: dict[str, Any] | None, caller: Caller
    ) -> Any:
        try:
            return await self.answer(resource.query, variables, caller.request_id, caller.client)
        except errors.DatasetUnavailable as exc:
            raise errors.DatasetUnavailable(f"resource {resource.id}: {exc}") from None

    async def answer(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        request_id: str = "publishing",
        client: str | None = None,
    ) -> Any:
        """The ``data`` of one operation run as the anonymous principal, whole: any error
        (a source down, a field refused) raises DatasetUnavailable instead. What every
        publication (tables, OCDS, OC4IDS, fiscal data) reads the graph through."""
        caller = Caller(ANONYMOUS, request_id, client)  # never anyone else: published is open
        outcome = await self.executor.run(Operation(query, variables), caller)
        hit = outcome.cache == "hit" and outcome.encoded is not None
        body = orjson.loads(outcome.encoded) if hit and outcome.encoded else outcome.body
        if outcome.status != 200 or body.get("errors") or body.get("data") is None:
            found = body.get("errors") or [{"message": f"status {outcome.status}"}]
            raise errors.DatasetUnavailable(f"cannot be produced now: {found[0].get('message')}")
        return body["data"]


def walk(value: Any, segments: list[str]) -> Iterator[Any]:
    """What a dotted path reaches in an answer, the lists on the way flattened (a list at
    its end is yielded whole)."""
    if not segments:
        yield value
        return
    if isinstance(value, list):
        for item in value:
            yield from walk(item, segments)
        return
    if isinstance(value, dict):
        yield from walk(value.get(segments[0].removesuffix("[]")), segments[1:])


def _first(value: Any, segments: tuple[str, ...]) -> Any:
    """``next(walk(value, segments), None)`` without a generator per segment: a cell's path
    is read for every row of a download, and most paths cross no list."""
    for i, segment in enumerate(segments):
        if isinstance(value, dict) and not segment.endswith("[]"):
            value = value.get(segment)
        elif isinstance(value, dict | list):
            return next(walk(value, list(segments[i:])), None)
        else:
            return None
    return value


@functools.cache
def _segments(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def page_info(data: Any, rows: str) -> dict[str, Any]:
    """The pageInfo of the connection the rows are in (the path before its ``edges``)."""
    segments = rows.split(".")
    connection = segments[: segments.index("edges")] if "edges" in segments else segments[:1]
    found = next(walk(data, [*connection, "pageInfo"]), None)
    return found if isinstance(found, dict) else {}


def rows_of(resource: Resource, node: Any) -> Iterator[Row]:
    """The rows one row object makes: one, or one per item of the list a ``[]`` column
    path explodes (none when that list is empty), and per item of a list within it."""
    order = [c.name for c in resource.columns]
    for row in _exploded([(c, c.path) for c in resource.columns], node):
        yield {name: row[name] for name in order}


def _exploded(columns: list[tuple[Column, str]], node: Any) -> Iterator[Row]:
    """Rows of ``node`` for columns at these (remaining) paths: the values outside the
    first list marked ``[]``, repeated for each row its items make."""
    lists = [path for _column, path in columns if "[]" in path]
    if not lists:
        yield {c.name: _value(c, node, path) for c, path in columns}
        return
    prefix = lists[0].split("[]")[0]
    inside = [(c, p.split("[].", 1)[1]) for c, p in columns if p.startswith(prefix + "[]")]
    here = {c.name: _value(c, node, p) for c, p in columns if not p.startswith(prefix + "[]")}
    items = next(walk(node, prefix.split(".")), None) or []
    for item in items if isinstance(items, list) else [items]:
        for row in _exploded(inside, item):
            yield {**here, **row}


def _value(column: Column, node: Any, path: str) -> Any:
    value = _first(node, _segments(path)) if path else node
    if column.transform == "date" and isinstance(value, str):
        return bangkok_date(value)
    return value


def bangkok_date(timestamp: str) -> str:
    """The Bangkok date of an ISO timestamp (a date alone is kept as it is)."""
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp
    if moment.tzinfo is None:
        return moment.date().isoformat()
    return moment.astimezone(BANGKOK).date().isoformat()


def _number(value: Any) -> Decimal:
    """A summed column's value (decimals arrive as strings); a missing one adds nothing."""
    return Decimal(str(value)) if value is not None else Decimal(0)


def _plain(total: Decimal) -> int | str:
    """A sum as the graph writes its numbers: integers as integers, decimals (money) as
    decimal text with their places."""
    exponent = total.as_tuple().exponent
    return int(total) if isinstance(exponent, int) and exponent >= 0 else str(total)


def _sort_key(key: tuple[Any, ...]) -> tuple[tuple[bool, str], ...]:
    return tuple((v is None, str(v)) for v in key)
