"""The graphql-core schema strawberry builds: the one use of its private ``_schema``."""

from __future__ import annotations

import pytest
import strawberry
from graphql import GraphQLObjectType, GraphQLSchema

import schema
from schema.query import Query


def test_graphql_schema_is_graphql_cores_with_resolvers():
    built = schema.graphql_schema()
    # If a strawberry upgrade moves `_schema`, graphql_schema() raises TypeError (or
    # AttributeError) here, loudly, rather than the gateway executing something else.
    assert type(built) is GraphQLSchema
    query = built.query_type
    assert isinstance(query, GraphQLObjectType)
    assert query.name == "Query"
    assert built.mutation_type is None and built.subscription_type is None
    expected = {"district", "districts", "complaint", "complaints", "parcel", "parcels"}
    assert expected <= set(query.fields)
    for name, field in query.fields.items():
        assert callable(field.resolve), f"Query.{name} has no resolver"


def test_it_is_the_schema_strawberry_built():
    built = schema.build_schema()
    assert isinstance(built, strawberry.Schema)
    assert built.query is Query
    assert built._schema.query_type.name == "Query"


def test_two_calls_build_two_distinct_schemas():
    first, second = schema.graphql_schema(), schema.graphql_schema()
    assert first is not second
    assert first.query_type is not second.query_type
    # Wrapping a resolver of one (as enforcement does) leaves the other as it was.
    original = second.query_type.fields["districts"].resolve
    first.query_type.fields["districts"].resolve = lambda *_args, **_kwargs: []
    assert second.query_type.fields["districts"].resolve is original


def test_the_same_shape_each_time():
    first, second = schema.graphql_schema(), schema.graphql_schema()
    assert set(first.type_map) == set(second.type_map)
    assert set(first.query_type.fields) == set(second.query_type.fields)


def test_a_moved_private_schema_fails_loudly(monkeypatch):
    class UpgradedStrawberrySchema:
        """What a strawberry that moved its graphql-core schema elsewhere would build."""

        _schema = None
        graphql_core_schema = schema.build_schema()._schema

    monkeypatch.setattr(schema, "build_schema", UpgradedStrawberrySchema)
    with pytest.raises(TypeError, match="no longer at `_schema`"):
        schema.graphql_schema()
