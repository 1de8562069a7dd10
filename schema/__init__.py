"""The unified graph: strawberry types over the connectors."""

from __future__ import annotations

import strawberry
from graphql import GraphQLSchema

from schema.context import Connectors, Limits, RequestContext
from schema.query import Query

__all__ = ["Connectors", "Limits", "RequestContext", "build_schema", "graphql_schema"]


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(query=Query)


def graphql_schema() -> GraphQLSchema:
    """The graphql-core schema strawberry builds; the gateway executes it directly so that
    parse and validation can be cached per document (strawberry exposes it as ``_schema``)."""
    return build_schema()._schema
