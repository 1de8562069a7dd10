"""The unified graph: strawberry types over the connectors."""

from __future__ import annotations

import strawberry
from graphql import GraphQLSchema

from policies.model import Policy, PolicyError
from schema.audit_keys import subject_problems
from schema.context import Connectors, Limits, RequestContext
from schema.query import Query

__all__ = [
    "Connectors",
    "Limits",
    "RequestContext",
    "build_schema",
    "check_policy",
    "graphql_schema",
]


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(query=Query)


def graphql_schema() -> GraphQLSchema:
    """The graphql-core schema strawberry builds; the gateway executes it directly so that
    parse and validation can be cached per document.

    Strawberry has no public accessor for it: ``_schema`` is the one use of its internals,
    here alone, and tests/schema/test_build.py fails loudly if an upgrade moves it."""
    built = build_schema()._schema
    if not isinstance(built, GraphQLSchema):
        raise TypeError(f"strawberry's schema is no longer at `_schema` ({type(built)!r})")
    return built


def check_policy(policy: Policy, schema: GraphQLSchema) -> None:
    """The policy against the graph, as the gateway checks it before it starts: every field
    classified (``Policy.check``) and every personal field mapped to its data subject
    (``schema.audit_keys``). Raises PolicyError listing every problem of both."""
    problems: list[str] = []
    try:
        policy.check(schema)
    except PolicyError as exc:
        problems += exc.problems
    problems += subject_problems(policy)
    if problems:
        raise PolicyError(problems)
