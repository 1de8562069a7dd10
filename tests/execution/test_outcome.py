"""One operation's answer: its body, status, label, and every error leaving with a code."""

from __future__ import annotations

import logging
import re

import pytest
from graphql import ExecutionResult, GraphQLError, execute_sync, located_error, parse

import schema
from connectors.audit_log import AuditUnavailable
from connectors.base import InvalidCursor, UpstreamTimeout, UpstreamUnavailable
from connectors.cache import StaleUse
from gateway import errors
from gateway.execution.outcome import Outcome, executed, format_error, refused, with_code
from schema.errors import BadUserInput, PageSizeExceeded, UnknownDistrict

PATH = ["district", "parcels", "edges", 0, "node", "owner"]


def at_field(error: Exception, path: list | None = None) -> GraphQLError:
    """An error raised in a resolver, as graphql-core hands it to the gateway."""
    return located_error(error, None, PATH if path is None else path)


def denial_entry() -> dict:
    return {"message": "no", "path": ["a"], "extensions": {"code": "FORBIDDEN"}}


# ---------------------------------------------------------------------------- label


@pytest.mark.parametrize(
    ("outcome", "label"),
    [
        (Outcome({"data": {"a": 1}}), "ok"),
        (Outcome({"data": {"a": 1}, "errors": []}), "ok"),
        (
            Outcome({"errors": [{"message": "x", "extensions": {"code": "X"}}]}, status=503),
            "unavailable",
        ),
        (Outcome({"errors": []}, status=500), "unavailable"),
        (Outcome({"errors": [denial_entry()]}, status=403), "denied"),
        (Outcome({"errors": []}, status=400), "refused"),
        (Outcome({"errors": []}, status=413), "refused"),
        (Outcome({"errors": []}, status=401), "refused"),
        (Outcome({"data": {"a": None}, "errors": [denial_entry()]}), "denied"),
        (
            Outcome(
                {
                    "data": {"a": None},
                    "errors": [{"message": "x", "extensions": {"code": "PURPOSE_REQUIRED"}}],
                }
            ),
            "denied",
        ),
        (
            Outcome(
                {
                    "data": {"a": None},
                    "errors": [
                        {"message": "down", "extensions": {"code": "UPSTREAM_TIMEOUT"}},
                        denial_entry(),
                    ],
                }
            ),
            "denied",
        ),
        (
            Outcome(
                {
                    "data": {"a": None},
                    "errors": [{"message": "down", "extensions": {"code": "UPSTREAM_UNAVAILABLE"}}],
                }
            ),
            "partial",
        ),
        (Outcome({"data": None, "errors": [{"message": "no code"}]}), "partial"),
        # From the response cache: the bytes are the answer, and only complete ones are kept.
        (Outcome({}, cache="hit", encoded=b'{"data":{"a":1}}'), "ok"),
    ],
)
def test_label(outcome, label):
    assert outcome.label == label


def test_cacheable_only_when_complete_and_fresh():
    assert Outcome({"data": {"a": 1}}).cacheable
    assert not Outcome({"data": {"a": None}, "errors": [denial_entry()]}).cacheable
    assert not Outcome({"data": {"a": 1}, "extensions": {"stale": []}}).cacheable
    assert not Outcome({"errors": []}, status=400).cacheable
    assert not Outcome({"data": {"a": 1}}, status=503).cacheable


# ---------------------------------------------------------------------------- executed


def test_a_complete_answer():
    outcome = executed(ExecutionResult({"districts": [{"code": "1001"}]}), [])
    assert outcome.body == {"data": {"districts": [{"code": "1001"}]}}
    assert outcome.status == 200
    assert outcome.label == "ok" and outcome.cacheable


def test_variables_that_do_not_fit_are_a_400_bad_user_input():
    built = schema.graphql_schema()
    document = parse("query ($c: String!) { district(code: $c) { code } }")
    result = execute_sync(built, document, variable_values={"c": 5})
    assert result.data is None and all(e.path is None for e in result.errors)
    outcome = executed(result, [])
    assert outcome.status == 400
    assert outcome.label == "refused"
    (error,) = outcome.body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert "String cannot represent a non string value: 5" in error["message"]
    assert error["locations"] == [{"line": 1, "column": 8}]
    assert "data" not in outcome.body


def test_partial_errors_beside_data():
    failed = at_field(UpstreamTimeout("traffy", "no answer in 2 s"), ["complaints"])
    result = ExecutionResult({"districts": [], "complaints": None}, [failed])
    district_down = UpstreamUnavailable("registry:1039", "refused")
    district_down.district = "1039"
    partial = [at_field(district_down, ["businesses"])]
    outcome = executed(result, partial)
    assert outcome.status == 200
    assert outcome.label == "partial"
    assert not outcome.cacheable
    assert list(outcome.body) == ["errors", "data"]  # errors first, as the spec shows them
    assert outcome.body["data"] == {"districts": [], "complaints": None}
    assert outcome.body["errors"] == [
        {
            "message": "traffy: no answer in 2 s",
            "path": ["complaints"],
            "extensions": {"code": "UPSTREAM_TIMEOUT", "source": "traffy"},
        },
        {
            "message": "registry:1039: refused",
            "path": ["businesses"],
            "extensions": {
                "code": "UPSTREAM_UNAVAILABLE",
                "source": "registry:1039",
                "district": "1039",
            },
        },
    ]


def test_stale_data_is_said():
    stale = [StaleUse("traffy.stats", "traffy", 75.5), StaleUse("tax.revenue", "tax", 2.0)]
    outcome = executed(ExecutionResult({"a": 1}), [], stale)
    assert outcome.body == {
        "data": {"a": 1},
        "extensions": {
            "stale": [
                {"source": "traffy", "cache": "traffy.stats", "ageSeconds": 75.5},
                {"source": "tax", "cache": "tax.revenue", "ageSeconds": 2.0},
            ]
        },
    }
    assert outcome.label == "ok"
    assert not outcome.cacheable  # stale data is never stored as fresh


def test_data_none_with_a_path_is_an_execution_error_not_a_refusal():
    # A non-null root field that failed nulls the whole data: it still ran.
    error = at_field(UpstreamTimeout("tax", "slow"), ["parcels"])
    outcome = executed(ExecutionResult(None, [error]), [])
    assert outcome.status == 200
    assert outcome.body["data"] is None
    assert outcome.body["errors"][0]["extensions"]["code"] == "UPSTREAM_TIMEOUT"


def test_refused_with_a_status():
    outcome = refused([errors.Forbidden("no", rule="Owner.nationalId").graphql_error()], 403)
    assert outcome.status == 403
    assert outcome.label == "denied"
    assert outcome.body == {
        "errors": [
            {"message": "no", "extensions": {"code": "FORBIDDEN", "rule": "Owner.nationalId"}}
        ]
    }


def test_with_code_keeps_a_code_already_given():
    plain = with_code(GraphQLError("bad"), errors.GRAPHQL_VALIDATION_FAILED)
    assert plain.extensions == {"code": "GRAPHQL_VALIDATION_FAILED"}
    coded = with_code(GraphQLError("bad", extensions={"code": "X", "k": 1}), errors.BAD_USER_INPUT)
    assert coded.extensions == {"code": "X", "k": 1}


# ---------------------------------------------------------------------------- format_error


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (BadUserInput("radius must be positive"), "BAD_USER_INPUT"),
        (UnknownDistrict("no district 9999"), "UNKNOWN_DISTRICT"),
        (PageSizeExceeded("first is over 100"), "PAGE_SIZE_EXCEEDED"),
        (InvalidCursor("not a cursor of this API"), "INVALID_CURSOR"),
        (AuditUnavailable("the audit store is down"), "AUDIT_UNAVAILABLE"),
        (errors.Forbidden("no"), "FORBIDDEN"),
        (errors.AuditRefused(), "AUDIT_UNAVAILABLE"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value,
)
def test_codes_of_errors_raised_on_purpose(raised, code):
    formatted = format_error(at_field(raised))
    assert formatted["extensions"]["code"] == code == errors.code_of(raised).code
    assert formatted["message"] == str(raised)
    assert formatted["path"] == PATH


def test_a_resolver_errors_extensions_go_beside_its_code():
    raised = PageSizeExceeded("first is over 100", limit=100, actual=500)
    formatted = format_error(at_field(raised))
    assert formatted["extensions"] == {"code": "PAGE_SIZE_EXCEEDED", "limit": 100, "actual": 500}


def test_a_resolver_error_cannot_choose_its_own_code():
    raised = BadUserInput("negative radius", code="INTERNAL_ERROR", field="radiusMeters")
    formatted = format_error(at_field(raised))
    assert formatted["extensions"] == {"code": "BAD_USER_INPUT", "field": "radiusMeters"}
    sneaky = UnknownDistrict("no such district", code="FORBIDDEN")
    assert format_error(at_field(sneaky))["extensions"] == {"code": "UNKNOWN_DISTRICT"}


def test_a_bug_is_an_internal_error_with_a_reference_and_no_detail(caplog):
    secret = "password=hunter2 at /srv/app/connectors/tax.py line 42"
    with caplog.at_level(logging.ERROR, logger="bma.gateway"):
        formatted = format_error(at_field(KeyError(secret)))
    assert set(formatted) == {"message", "path", "extensions"}
    assert formatted["extensions"] == {"code": "INTERNAL_ERROR"}
    found = re.fullmatch(r"internal error \(reference ([0-9a-f]{12})\)", formatted["message"])
    assert found, formatted["message"]
    assert "hunter2" not in str(formatted)
    # The server log has the reference and the stack.
    (record,) = [r for r in caplog.records if found.group(1) in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is KeyError


def test_a_bug_never_shows_the_extensions_graphql_core_attached():
    error = GraphQLError(
        "boom", path=["a"], original_error=RuntimeError("detail"), extensions={"code": "OK", "x": 1}
    )
    formatted = format_error(error)
    assert formatted["extensions"] == {"code": "INTERNAL_ERROR"}
    assert "detail" not in formatted["message"]


def test_graphql_cores_own_errors_keep_their_message():
    error = GraphQLError(
        "Cannot query field 'nope' on type 'Query'.",
        extensions={"code": "GRAPHQL_VALIDATION_FAILED"},
    )
    assert format_error(error) == {
        "message": "Cannot query field 'nope' on type 'Query'.",
        "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
    }
    uncoded = format_error(GraphQLError("Cannot return null for non-nullable field.", path=["a"]))
    assert uncoded["extensions"] == {"code": "INTERNAL_ERROR"}
    assert uncoded["message"] == "Cannot return null for non-nullable field."


def test_a_gateway_error_raised_in_a_resolver_keeps_its_extensions():
    raised = errors.Forbidden("Owner.nationalId is confidential data", rule="r", grantedBy="g")
    formatted = format_error(at_field(raised))
    assert formatted["extensions"] == {"code": "FORBIDDEN", "rule": "r", "grantedBy": "g"}


def test_an_upstream_error_without_a_district_names_only_its_source():
    formatted = format_error(at_field(UpstreamUnavailable("tax", "connection refused")))
    assert formatted["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "source": "tax"}


def test_bugs_at_many_fields_share_one_reference_and_one_log_line(caplog):
    """A list whose every row breaks alike is one bug: one reference for all its fields, one
    log line (with the first stack) counting them, not a stack per field."""
    broken = [at_field(KeyError("OTHER"), ["complaints", i, "state"]) for i in range(500)]
    on_purpose = at_field(BadUserInput("negative radius"), ["parcel", "nearbyComplaints"])
    result = ExecutionResult(data={"complaints": None}, errors=[*broken, on_purpose])
    with caplog.at_level(logging.INFO):
        body = executed(result, []).body
    references = {
        e["message"] for e in body["errors"] if e["extensions"]["code"] == "INTERNAL_ERROR"
    }
    (message,) = references
    reference = re.fullmatch(r"internal error \(reference ([0-9a-f]{12})\)", message).group(1)
    assert len(body["errors"]) == 501 and body["errors"][-1]["message"] == "negative radius"
    (record,) = caplog.records
    assert reference in record.getMessage() and "500 field(s)" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is KeyError
