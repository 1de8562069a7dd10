"""A document from text to something that may run: limits, parse, validation, cached."""

from __future__ import annotations

import hashlib

import pytest
from graphql import GraphQLSyntaxError, print_ast
from pydantic import TypeAdapter

import schema
from gateway.execution.documents import CACHEABLE_LENGTH, Documents, Parsed, Refused
from gateway.limits.config import AudienceLimits
from gateway.limits.cost import UPSTREAM_CALL, CostModel


@pytest.fixture(scope="module")
def built():
    return schema.graphql_schema()


@pytest.fixture
def documents(built) -> Documents:
    return Documents(built, AudienceLimits(), CostModel(built, 20, 100))


def refusal(result: Parsed | Refused) -> tuple[str, str]:
    assert isinstance(result, Refused), result
    (error,) = result.errors
    return error.extensions["code"], error.message


# ---------------------------------------------------------------------------- refusals


def test_refused_by_the_scan_before_parsing(documents):
    # Over the anonymous limit of 1,000 tokens, and not GraphQL either: the scan answers.
    text = "{ " + "a " * 1001 + " ((("
    code, message = refusal(documents.prepared(text, "anonymous"))
    assert code == "TOO_MANY_TOKENS"
    assert "1000" in message
    result = documents.prepared(text, "anonymous")
    assert result.errors[0].extensions == {"code": "TOO_MANY_TOKENS", "limit": 1000}
    assert result.invalid is None


def test_the_scan_uses_the_audiences_limits(documents):
    text = "{ " + "__typename " * 1500 + "}"
    assert refusal(documents.prepared(text, "anonymous"))[0] == "TOO_MANY_TOKENS"
    # The agency's 10,000 pass the scan: the next check (root fields) answers.
    assert refusal(documents.prepared(text, "agency"))[0] == "TOO_MANY_ROOT_FIELDS"


def test_a_parse_failure(documents):
    result = documents.prepared("{ districts { code }", "anonymous")
    code, message = refusal(result)
    assert code == "GRAPHQL_PARSE_FAILED"
    assert message == "Syntax Error: Expected Name, found <EOF>."
    assert isinstance(result.errors[0], GraphQLSyntaxError)
    assert result.invalid is None


def test_refused_for_its_shape_before_validation(documents):
    # 11 deep through a fragment (each definition alone is within the scan's limit), none
    # of it in the schema.
    deep = (
        "{ "
        + "a { " * 6
        + "...F"
        + " }" * 6
        + " } fragment F on T { "
        + "b { " * 4
        + "c"
        + " }" * 4
        + " }"
    )
    code, message = refusal(documents.prepared(deep, "anonymous"))
    assert code == "QUERY_TOO_DEEP"
    assert documents.prepared(deep, "anonymous").errors[0].extensions == {
        "code": "QUERY_TOO_DEEP",
        "limit": 10,
        "actual": 11,
    }


def test_a_fragment_cycle(documents):
    text = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"
    code, message = refusal(documents.prepared(text, "agency"))
    assert code == "GRAPHQL_VALIDATION_FAILED"
    assert message == "Cannot spread fragment 'A' within itself via 'B'."


def test_static_cost_refused_before_validation(documents):
    # Invalid as well (`nope`), but its cost is what answers: validation never ran.
    text = "{ complaints(first: 100000) { edges { node { ticketId nope } } } }"
    result = documents.prepared(text, "anonymous")
    code, message = refusal(result)
    assert code == "QUERY_TOO_COSTLY"
    assert result.errors[0].extensions == {
        "code": "QUERY_TOO_COSTLY",
        "limit": 50_000,
        "actual": UPSTREAM_CALL + 1 + 1 + 100_000 * 3,
    }
    assert result.invalid is None
    # The agency's limit (500,000) lets it through to validation, which refuses `nope`.
    assert refusal(documents.prepared(text, "agency"))[0] == "GRAPHQL_VALIDATION_FAILED"


def test_static_cost_refuses_only_when_every_operation_is_over(documents):
    text = (
        "query Costly { complaints(first: 100000) { edges { node { ticketId } } } }"
        " query Cheap { districts { code } }"
    )
    result = documents.prepared(text, "anonymous")
    assert isinstance(result, Parsed)  # the operation that runs is held to its cost later
    assert result.static_costs == {"Costly": UPSTREAM_CALL + 200_002, "Cheap": 51}


def test_validation_errors_keep_the_document(documents):
    text = '{ district(code: "1039") { nameT } }'
    result = documents.prepared(text, "agency")
    code, message = refusal(result)
    assert code == "GRAPHQL_VALIDATION_FAILED"
    assert (
        message
        == "Cannot query field 'nameT' on type 'District'. Did you mean 'nameTh' or 'nameEn'?"
    )
    assert result.invalid is not None
    assert print_ast(result.invalid) == print_ast(
        documents.prepared('{ district(code: "1039") { nameTh } }', "agency").document
    ).replace("nameTh", "nameT")


def test_no_suggestions_for_anonymous_callers(documents):
    text = '{ district(code: "1039") { nameT } }'
    assert refusal(documents.prepared(text, "anonymous"))[1] == (
        "Cannot query field 'nameT' on type 'District'."
    )


# ---------------------------------------------------------------------------- prepared


def test_a_document_prepared(documents):
    text = "{ districts { code nameTh } }"
    result = documents.prepared(text, "anonymous")
    assert isinstance(result, Parsed)
    assert print_ast(result.document) == "{\n  districts {\n    code\n    nameTh\n  }\n}"
    assert result.introspects is False
    assert result.parts is None
    assert result.static_costs == {None: 1 + 50 * 2}
    assert result.digest == hashlib.sha256(text.encode()).hexdigest()


def test_a_variable_cost_is_not_static(documents):
    text = "query Q($n: Int) { complaints(first: $n) { edges { node { ticketId } } } }"
    result = documents.prepared(text, "anonymous")
    assert isinstance(result, Parsed)
    assert result.static_costs == {}


def test_an_introspecting_document_is_split(documents):
    text = '{ __typename __type(name: "District") { name } }'
    result = documents.prepared(text, "anonymous")
    assert isinstance(result, Parsed)
    assert result.introspects is True
    assert result.parts is not None
    assert print_ast(result.parts.data) == "{\n  __typename\n}"
    assert "__type" in print_ast(result.parts.introspection)


def test_introspection_refused_where_disabled(built):
    limits = TypeAdapter(AudienceLimits).validate_python({"anonymous": {"introspection": False}})
    documents = Documents(built, limits, CostModel(built, 20, 100))
    code, _ = refusal(documents.prepared("{ __schema { queryType { name } } }", "anonymous"))
    assert code == "INTROSPECTION_DISABLED"
    assert isinstance(documents.prepared("{ __schema { queryType { name } } }", "app"), Parsed)


# ---------------------------------------------------------------------------- the cache


def test_cached_per_text_and_audience(documents):
    text = "{ districts { code } }"
    first = documents.prepared(text, "anonymous")
    assert documents.prepared(text, "anonymous") is first
    other = documents.prepared(text, "agency")
    assert other is not first
    assert documents.prepared(text, "agency") is other
    assert documents.prepared(text + " ", "anonymous") is not first


def test_refusals_are_cached_too(documents):
    text = '{ district(code: "1039") { nameT } }'
    assert documents.prepared(text, "anonymous") is documents.prepared(text, "anonymous")


def test_long_documents_are_not_cached(documents):
    text = "{ __typename } # " + "x" * CACHEABLE_LENGTH
    assert len(text) > CACHEABLE_LENGTH
    first = documents.prepared(text, "agency")
    second = documents.prepared(text, "agency")
    assert isinstance(first, Parsed) and isinstance(second, Parsed)
    assert first is not second
    assert first.digest == second.digest == hashlib.sha256(text.encode()).hexdigest()
    at_the_limit = "{ __typename } #" + "x" * (CACHEABLE_LENGTH - 16)
    assert len(at_the_limit) == CACHEABLE_LENGTH
    assert documents.prepared(at_the_limit, "agency") is documents.prepared(at_the_limit, "agency")
