"""What one operation answered, ready to encode, and the HTTP status it deserves.

Every error leaves here with a stable ``extensions.code``: errors raised on purpose carry
their code (``gateway.errors``, and by class for the schema's and the connectors'); anything
else is a bug, answered as ``INTERNAL_ERROR`` with a reference, and logged with its stack on
the server only — once per operation, however many fields it broke: the fields share the
reference, and the one log line counts them.
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
    return Outcome({"errors": format_errors(refusals)}, status=status)


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
        body["errors"] = format_errors(found)
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


def format_errors(found: Sequence[GraphQLError]) -> list[dict[str, Any]]:
    """The errors as they leave; the bugs among them share one reference and one log line
    (with the first one's stack): a list of a thousand rows failing alike is one bug."""
    bugs = [e for e in found if _is_bug(e)]
    if not bugs:
        return [_formatted(e, None) for e in found]
    bug = errors.InternalError()
    first = bugs[0]
    log.error(
        "internal error %s at %d field(s), first at %s",
        bug.reference,
        len(bugs),
        first.path,
        exc_info=first.original_error,
        extra={"fields": len(bugs)},
    )
    return [_formatted(e, bug) for e in found]


def _is_bug(error: GraphQLError) -> bool:
    original = error.original_error
    return (
        original is not None
        and not isinstance(original, GraphQLError)
        and errors.code_of(original) is None
    )


def format_error(error: GraphQLError) -> dict[str, Any]:
    """One error as it leaves."""
    return format_errors([error])[0]


def _formatted(error: GraphQLError, bug: errors.InternalError | None) -> dict[str, Any]:
    """One error as it leaves: a bug answers ``bug``'s reference (logged by the caller)."""
    original = error.original_error
    message = error.message
    extensions = dict(error.extensions or {})
    if original is not None and not isinstance(original, GraphQLError):
        code = errors.code_of(original)
        if code is None:
            assert bug is not None  # format_errors made it for every bug among the errors
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
