"""What one operation answered, ready to encode, and the HTTP status it deserves.

Every error leaves here with a stable ``extensions.code``: errors raised on purpose carry
their code (``gateway.errors``, and by class for the schema's and the connectors'); anything
else is a bug, answered as ``INTERNAL_ERROR`` with a reference, and logged with its stack on
the server only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import ExecutionResult, GraphQLError, OperationDefinitionNode

from connectors.base import UpstreamError
from connectors.cache import StaleUse
from gateway import errors
from schema.errors import ResolverError

log = logging.getLogger("bma.gateway")


@dataclass
class Outcome:
    """One operation's answer: the body (or, from the response cache, its bytes) and status."""

    body: dict[str, Any]
    status: int = 200
    # From the response cache: "hit" (``encoded`` is the answer) or "miss" (stored now).
    cache: str | None = None
    encoded: bytes | None = None
    # The operation that ran, for the metrics: None when none did (refused, or not found).
    operation: OperationDefinitionNode | None = field(default=None, repr=False)
    # SHA-256 of the document, once it parsed: the audit record's, the log line's.
    document_hash: str | None = None

    @property
    def label(self) -> str:
        """ok, partial, denied, refused or unavailable (gateway.observability.metrics)."""
        if self.status >= 500:
            return "unavailable"
        if self.status == 403:
            return "denied"
        if self.status >= 400:
            return "refused"
        found = self.body.get("errors") if self.cache != "hit" else None
        if not found:
            return "ok"
        if any(e.get("extensions", {}).get("code") in errors.DENIAL_CODES for e in found):
            return "denied"
        return "partial"

    @property
    def cacheable(self) -> bool:
        """A complete, fresh answer: no errors (partial results), no stale data."""
        return self.status == 200 and self.body.keys() == {"data"}


def refused(refusals: Sequence[GraphQLError], status: int = 400) -> Outcome:
    return Outcome({"errors": [format_error(e) for e in refusals]}, status=status)


def executed(
    result: ExecutionResult, partial: Sequence[GraphQLError], stale: Sequence[StaleUse] = ()
) -> Outcome:
    """The outcome of an execution: ``partial`` are the sources that failed beside data,
    ``stale`` the cached values served in place of failed sources."""
    if result.data is None and result.errors and all(e.path is None for e in result.errors):
        # Execution never started: the variables' values do not fit (the operation was
        # picked, and found, before execution).
        return refused([with_code(e, errors.BAD_USER_INPUT) for e in result.errors])
    body: dict[str, Any] = {}
    found = [*(result.errors or ()), *partial]
    if found:
        body["errors"] = [format_error(e) for e in found]
    body["data"] = result.data
    if stale:
        body["extensions"] = {
            "stale": [
                {"source": u.source, "cache": u.cache, "ageSeconds": u.age_seconds} for u in stale
            ]
        }
    return Outcome(body)


def with_code(error: GraphQLError, code: errors.ErrorCode) -> GraphQLError:
    """graphql-core's own error, given the code it leaves with (unless it has one)."""
    if not (error.extensions or {}).get("code"):
        error.extensions = {**(error.extensions or {}), "code": code.code}
    return error


def format_error(error: GraphQLError) -> dict[str, Any]:
    original = error.original_error
    message = error.message
    extensions = dict(error.extensions or {})
    if original is not None and not isinstance(original, GraphQLError):
        code = errors.code_of(original)
        if code is None:
            bug = errors.InternalError()
            log.error("internal error %s at %s", bug.reference, error.path, exc_info=original)
            message, code = bug.message, bug.error
        given = (
            original.extensions if isinstance(original, ResolverError | errors.GatewayError) else {}
        )
        extensions = {"code": code.code, **{k: v for k, v in given.items() if k != "code"}}
        if isinstance(original, UpstreamError):
            extensions["source"] = original.source
            if original.district:
                extensions["district"] = original.district
    extensions.setdefault("code", errors.INTERNAL_ERROR.code)
    formatted: dict[str, Any] = {"message": message}
    if error.locations:
        formatted["locations"] = [
            {"line": loc.line, "column": loc.column} for loc in error.locations
        ]
    if error.path is not None:
        formatted["path"] = error.path
    formatted["extensions"] = extensions
    return formatted
