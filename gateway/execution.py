"""Running one GraphQL operation: cached parse and validation, execution, error shaping.

Every error leaves here with a stable ``extensions.code``. Errors raised on purpose carry
their code (``schema.errors``, ``connectors.base``); anything else is a bug, answered as
``INTERNAL_ERROR`` with a reference, and logged with its stack on the server only.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    execute,
    parse,
    specified_rules,
    validate,
)

from connectors.base import UpstreamError
from policies.restricted import RestrictedFieldsRule

log = logging.getLogger("bma.gateway")

CACHE_SIZE = 1024


@dataclass
class Outcome:
    """What one operation answered, ready to encode; ``request_error`` means HTTP 400."""

    body: dict[str, Any]
    request_error: bool = False


class Executor:
    def __init__(self, schema: GraphQLSchema, *, expose_restricted: bool = False) -> None:
        self.schema = schema
        rules = list(specified_rules)
        if not expose_restricted:
            rules.append(RestrictedFieldsRule)
        self._rules = tuple(rules)
        # Parse and validation depend only on the document text: do each once per text.
        self._document = lru_cache(maxsize=CACHE_SIZE)(self._parse_and_validate)

    def _parse_and_validate(self, query: str) -> DocumentNode | list[GraphQLError]:
        try:
            document = parse(query)
        except GraphQLSyntaxError as exc:
            return [_with_code(exc, "GRAPHQL_PARSE_FAILED")]
        errors = validate(self.schema, document, self._rules)
        if errors:
            return [_with_code(e, "GRAPHQL_VALIDATION_FAILED") for e in errors]
        return document

    async def run(
        self,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Any,
    ) -> Outcome:
        document = self._document(query)
        if isinstance(document, list):
            return Outcome({"errors": [format_error(e) for e in document]}, request_error=True)
        result = execute(
            self.schema,
            document,
            context_value=context,
            variable_values=variables,
            operation_name=operation_name,
        )
        if inspect.isawaitable(result):
            result = await result
        return _outcome(result, getattr(context, "partial_errors", ()))


def _outcome(result: ExecutionResult, partial: Sequence[GraphQLError]) -> Outcome:
    if result.data is None and result.errors and all(e.path is None for e in result.errors):
        # Execution never started: bad variables or an unknown operation name.
        errors = [format_error(_request_error(e)) for e in result.errors]
        return Outcome({"errors": errors}, request_error=True)
    body: dict[str, Any] = {}
    errors = [*(result.errors or ()), *partial]
    if errors:
        body["errors"] = [format_error(e) for e in errors]
    body["data"] = result.data
    return Outcome(body)


def _request_error(error: GraphQLError) -> GraphQLError:
    if "operation" in error.message.lower():
        return _with_code(error, "OPERATION_NOT_FOUND")
    return _with_code(error, "BAD_USER_INPUT")


def _with_code(error: GraphQLError, code: str) -> GraphQLError:
    if not (error.extensions or {}).get("code"):
        error.extensions = {**(error.extensions or {}), "code": code}
    return error


def format_error(error: GraphQLError) -> dict[str, Any]:
    original = error.original_error
    message = error.message
    extensions = dict(error.extensions or {})
    if original is not None and not isinstance(original, GraphQLError):
        code = getattr(original, "code", None)
        if code is None:
            reference = uuid.uuid4().hex[:12]
            log.error("internal error %s at %s", reference, error.path, exc_info=original)
            message = f"internal error (reference {reference})"
            code = "INTERNAL_ERROR"
        extensions.update(getattr(original, "extensions", None) or {})
        if isinstance(original, UpstreamError):
            extensions["source"] = original.source
            if original.district:
                extensions["district"] = original.district
        extensions["code"] = code
    extensions.setdefault("code", "INTERNAL_ERROR")
    formatted: dict[str, Any] = {"message": message}
    if error.locations:
        formatted["locations"] = [
            {"line": loc.line, "column": loc.column} for loc in error.locations
        ]
    if error.path is not None:
        formatted["path"] = error.path
    formatted["extensions"] = extensions
    return formatted
