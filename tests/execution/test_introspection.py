"""An operation split into its data and introspection parts, and put back together."""

from __future__ import annotations

import pytest
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    execute_sync,
    parse,
    print_ast,
)

import schema
from gateway.execution.introspection import merged, split


@pytest.fixture(scope="module")
def built() -> GraphQLSchema:
    return schema.graphql_schema()


def text(document: DocumentNode | None) -> str | None:
    """A document printed on one line, for comparison."""
    return None if document is None else " ".join(print_ast(document).split())


def same(document: DocumentNode | None, expected: str | None) -> bool:
    return text(document) == (None if expected is None else text(parse(expected)))


def operation_of(document: DocumentNode) -> OperationDefinitionNode:
    (operation,) = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return operation


# ---------------------------------------------------------------------------- split


def test_data_and_introspection_parts(built):
    parts = split(
        built,
        parse(
            '{ districts { code } __schema { queryType { name } } district(code: "1") { nameTh } }'
        ),
    )
    assert same(parts.data, '{ districts { code } district(code: "1") { nameTh } }')
    assert same(parts.introspection, "{ __schema { queryType { name } } }")


def test_typename_stays_with_the_data(built):
    parts = split(built, parse('{ __typename __type(name: "Sex") { name } }'))
    assert same(parts.data, "{ __typename }")
    assert same(parts.introspection, '{ __type(name: "Sex") { name } }')


def test_nested_typename_and_nested_fields_are_not_split(built):
    document = parse("{ districts { code __typename } }")
    parts = split(built, document)
    assert same(parts.data, "{ districts { code __typename } }")
    assert parts.introspection is None


def test_only_introspection_has_no_data_part(built):
    parts = split(built, parse('{ __type(name: "District") { name fields { name } } }'))
    assert parts.data is None
    assert same(parts.introspection, '{ __type(name: "District") { name fields { name } } }')


def test_only_typename_is_data(built):
    parts = split(built, parse("{ __typename }"))
    assert same(parts.data, "{ __typename }")
    assert parts.introspection is None


def test_fragments_on_query_are_split_too(built):
    parts = split(
        built,
        parse(
            "{ ...Q __typename }"
            " fragment Q on Query { districts { code } __schema { queryType { name } } }"
        ),
    )
    assert same(parts.data, "{ ...Q __typename } fragment Q on Query { districts { code } }")
    assert same(
        parts.introspection, "{ ...Q } fragment Q on Query { __schema { queryType { name } } }"
    )


def test_inline_fragments_on_query_are_split_too(built):
    parts = split(
        built, parse('{ ... on Query { __type(name: "X") { name } district(code: "1") { code } } }')
    )
    assert same(parts.data, '{ ... on Query { district(code: "1") { code } } }')
    assert same(parts.introspection, '{ ... on Query { __type(name: "X") { name } } }')


def test_a_fragment_left_empty_selects_nothing(built):
    parts = split(built, parse("{ ...I } fragment I on Query { __schema { types { name } } }"))
    assert parts.data is None  # the fragment had introspection only
    assert same(parts.introspection, "{ ...I } fragment I on Query { __schema { types { name } } }")


def test_introspection_types_nested_fields_stay_in_their_part(built):
    # `name` inside __schema is not a root field: it stays with its introspection root.
    parts = split(built, parse("{ __schema { types { name fields { name } } } }"))
    assert parts.data is None
    assert same(parts.introspection, "{ __schema { types { name fields { name } } } }")


def test_the_parts_run_and_merge_as_the_whole(built):
    document = parse(
        "query { ...I a: __typename __schema { queryType { name } } b: __typename }"
        ' fragment I on Query { __type(name: "Sex") { name } }'
    )
    parts = split(built, document)
    data = execute_sync(built, parts.data)
    introspection = execute_sync(built, parts.introspection)
    assert data == ExecutionResult({"a": "Query", "b": "Query"}, None)
    whole = merged(document, operation_of(document), data, introspection)
    assert whole.errors is None
    assert list(whole.data) == ["a", "__schema", "b", "__type"]  # root order, then fragments'
    assert whole.data == execute_sync(built, document).data


# ---------------------------------------------------------------------------- merged


def test_merged_keeps_the_operations_root_order():
    document = parse("{ b: __typename __schema { x } a: __typename __type { y } }")
    data = ExecutionResult({"b": "Query", "a": "Query"})
    introspection = ExecutionResult({"__type": {"y": 1}, "__schema": {"x": 2}})
    result = merged(document, operation_of(document), data, introspection)
    assert list(result.data) == ["b", "__schema", "a", "__type"]
    assert result.data == {"b": "Query", "__schema": {"x": 2}, "a": "Query", "__type": {"y": 1}}
    assert result.errors is None


def test_merged_concatenates_errors():
    document = parse("{ districts { code } __schema { x } }")
    first, second = GraphQLError("source down"), GraphQLError("another")
    data = ExecutionResult({"districts": None}, [first])
    introspection = ExecutionResult({"__schema": {"x": 1}}, [second])
    result = merged(document, operation_of(document), data, introspection)
    assert result.errors == [first, second]
    assert result.data == {"districts": None, "__schema": {"x": 1}}


def test_merged_of_one_part():
    document = parse("{ __schema { x } }")
    only = ExecutionResult({"__schema": {"x": 1}})
    result = merged(document, operation_of(document), None, only)
    assert result == ExecutionResult({"__schema": {"x": 1}}, None)


def test_a_failed_part_is_returned_as_is():
    document = parse("query ($n: Int!) { districts { code } __schema { x } }")
    refusal = ExecutionResult(
        None, [GraphQLError("Variable '$n' of required type 'Int!' was not provided.")]
    )
    introspection = ExecutionResult({"__schema": {"x": 1}})
    assert merged(document, operation_of(document), refusal, introspection) is refusal
    assert (
        merged(document, operation_of(document), ExecutionResult({"districts": []}), refusal)
        is refusal
    )
