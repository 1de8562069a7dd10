"""The compiler and its executor, on a small schema of odd values, against graphql-core.

Every case runs the same document through graphql-core's ``execute`` (the reference) and
through ``CompiledExecutor`` with the compiled operation, and compares the results: data,
errors, their messages, paths and locations. The values are chosen to leave the inline
fast paths: nulls in non-null fields, ints beyond 32 bits, exceptions as values,
awaitables, a resolver that raises, a null item in a non-null list.
"""

from __future__ import annotations

import asyncio
import inspect
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
import strawberry
from graphql import (
    ExecutionResult,
    GraphQLSchema,
    OperationDefinitionNode,
    execute,
    get_operation_ast,
    parse,
)

from gateway.audit.trail import AccessTrail
from gateway.execution.compiled import CompiledExecutor
from gateway.execution.compiler import Uncompiled, compile_operation
from gateway.observability import metrics


@strawberry.enum
class Kind(Enum):
    SMALL = "small"
    LARGE = "large"


@strawberry.type
class Point:
    x: float
    y: float | None


@strawberry.type
class Item:
    name: str
    size: int | None
    count: int
    tags: list[str]
    kind: Kind | None
    price: Decimal | None
    point: Point | None
    points: list[Point]

    @strawberry.field
    def label(self) -> str:
        return self.name.upper()

    @strawberry.field
    async def later(self) -> str:
        await asyncio.sleep(0)
        return self.name + " later"

    @strawberry.field
    def broken(self) -> int | None:
        raise ValueError(f"{self.name} is broken")


def item(name: str, **odd: Any) -> Item:
    values: dict[str, Any] = {
        "name": name,
        "size": 3,
        "count": 7,
        "tags": ["a", "b"],
        "kind": Kind.SMALL,
        "price": Decimal("12.50"),
        "point": Point(x=1.5, y=None),
        "points": [Point(x=0.0, y=2.0)],
        **odd,
    }
    return Item(**values)


ITEMS = [
    item("plain"),
    item("big", size=2**40),  # beyond Int: an error, the field null
    item("nulled", count=None),  # null in a non-null field: the item null
    item("floaty", point=Point(x=float("inf"), y=1.0)),  # not a finite Float
    item("failing", tags=ValueError("no tags")),  # an exception as a value
    item("stringy", kind="LARGE"),  # not a member: coerced by the enum
    item("listless", points=[Point(x=1.0, y=1.0), None]),  # null in [Point!]!
]


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item | None]:
        return ITEMS

    @strawberry.field
    async def first(self) -> Item:
        return ITEMS[0]


SCHEMA: GraphQLSchema = strawberry.Schema(query=Query)._schema


def both(query: str) -> tuple[ExecutionResult, ExecutionResult]:
    document = parse(query)
    operation = get_operation_ast(document)
    assert operation is not None
    compiled = compile_operation(SCHEMA, document, operation, {}, city_wide=True)

    async def run() -> tuple[ExecutionResult, ExecutionResult]:
        reference = execute(SCHEMA, document)
        fast = execute(
            SCHEMA,
            document,
            executor_class=CompiledExecutor,
            compiled=compiled,
            trail=AccessTrail(),
        )
        if inspect.isawaitable(reference):
            reference = await reference
        if inspect.isawaitable(fast):
            fast = await fast
        return fast, reference  # type: ignore[return-value]

    return asyncio.run(run())


def formatted(result: ExecutionResult) -> dict[str, Any]:
    errors = sorted((e.formatted for e in result.errors or ()), key=repr)
    return {"data": result.data, "errors": errors}


CASES = {
    "leaves": "{ items { name size count kind price } }",
    "lists and objects": "{ items { tags point { x y } points { x y } } }",
    "methods, awaitables and errors": "{ items { label later broken } first { name later } }",
    "aliases, fragments, typename": (
        "{ a: items { n: name ...F ... on Item { size __typename } } } "
        "fragment F on Item { name kind point { __typename x } }"
    ),
    "merged duplicates": "{ items { point { x } point { y } name name } }",
}


@pytest.mark.parametrize("query", CASES.values(), ids=CASES.keys())
def test_compiled_answers_what_graphql_core_answers(query: str) -> None:
    fast, reference = both(query)
    assert formatted(fast) == formatted(reference)
    assert reference.errors, "the cases are chosen to raise errors"


def test_the_odd_values_are_answered_as_the_spec_says() -> None:
    fast, _ = both("{ items { name size count } }")
    assert fast.data is not None
    rows = fast.data["items"]
    assert rows[0] == {"name": "plain", "size": 3, "count": 7}
    assert rows[1] == {"name": "big", "size": None, "count": 7}
    assert rows[2] is None  # its non-null count was null
    messages = {e.message for e in fast.errors or ()}
    assert "Cannot return null for non-nullable field Item.count." in messages


def test_every_selection_set_gets_its_function() -> None:
    document = parse(CASES["aliases, fragments, typename"])
    operation = get_operation_ast(document)
    assert operation is not None
    compiled = compile_operation(SCHEMA, document, operation, {}, city_wide=True)
    # Query, Item (under the alias), Point (in the fragment)
    assert len(compiled.functions) == 3
    assert {name for name, _ in compiled.subfields} == {"Item", "Point"}


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("query($on: Boolean!) { items { name @include(if: $on) } }", "directive with a variable"),
        (
            "query @experimental_disableErrorPropagation { items { name } }",
            "directive with a variable",
        ),
    ],
)
def test_what_the_compiler_leaves_to_the_reference(query: str, reason: str) -> None:
    document = parse(query)
    operation = get_operation_ast(document)
    assert operation is not None
    with pytest.raises(Uncompiled, match=reason):
        compile_operation(SCHEMA, document, operation, {}, city_wide=True)


def test_a_literal_include_is_compiled() -> None:
    fast, reference = both("{ items { name @include(if: false) size @skip(if: false) } }")
    assert formatted(fast) == formatted(reference)
    assert fast.data is not None and "name" not in fast.data["items"][0]


def test_executions_are_counted_by_path() -> None:
    def count(path: str, reason: str) -> float:
        return metrics.executions.labels(path, reason)._value.get()

    before = count("compiled", ""), count("reference", "introspection")
    metrics.observe_execution("compiled")
    metrics.observe_execution("reference", "introspection")
    assert count("compiled", "") == before[0] + 1
    assert count("reference", "introspection") == before[1] + 1
    assert b'bma_executions_total{path="reference",reason="introspection"}' in metrics.render()


def test_every_query_of_the_readme_tour_compiles() -> None:
    """The tour's operations run compiled, for a city-wide principal and a row-scoped one
    (`bma_executions_total{path="reference"}` stays at zero for them)."""
    from pathlib import Path

    from schema import graphql_schema

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```graphql")[1:]]
    schema = graphql_schema()
    compiled = 0
    for block in blocks:
        document = parse(block)
        for operation in document.definitions:
            assert isinstance(operation, OperationDefinitionNode)  # a block may hold several
            for city_wide in (True, False):
                assert compile_operation(schema, document, operation, {}, city_wide).functions
            compiled += 1
    assert compiled >= 6
