"""Every error a client can be answered with: its ``extensions.code``, HTTP status and message.

A request refused before an operation runs is answered with its error alone, under the
code's status. An error while executing leaves the rest of the answer standing: HTTP 200,
the field ``null``, the error beside ``data`` with its ``path``. Each code is declared once,
here, and raised by name::

    GatewayError                          raised by the gateway
    ├── BadRequest                        BAD_REQUEST 400
    ├── UnsupportedMediaType              UNSUPPORTED_MEDIA_TYPE 415
    ├── NotAcceptable                     NOT_ACCEPTABLE 406
    ├── PayloadTooLarge                   PAYLOAD_TOO_LARGE 413
    ├── BatchTooLarge                     BATCH_TOO_LARGE 400
    ├── NotFound                          NOT_FOUND 404
    ├── MethodNotAllowed                  METHOD_NOT_ALLOWED 405
    ├── Unauthenticated                   UNAUTHENTICATED 401, with WWW-Authenticate
    ├── AuthenticationUnavailable         AUTHENTICATION_UNAVAILABLE 503, with Retry-After
    ├── ScopeRequired                     SCOPE_REQUIRED 403 (anonymous: 401), with WWW-Authenticate
    ├── RateLimited                       RATE_LIMITED 429, with Retry-After
    ├── OperationNotFound                 OPERATION_NOT_FOUND 400
    ├── PersistedQueryNotFound            PERSISTED_QUERY_NOT_FOUND 404
    ├── PersistedQueryNotSupported        PERSISTED_QUERY_NOT_SUPPORTED 400
    ├── DocumentHashMismatch              DOCUMENT_HASH_MISMATCH 400
    ├── DocumentNotTrusted                DOCUMENT_NOT_TRUSTED 403
    ├── TrustedDocumentsUnavailable       TRUSTED_DOCUMENTS_UNAVAILABLE 503
    ├── LimitExceeded                     an operation limit of the caller's audience, 400
    │   ├── TooManyTokens                 TOO_MANY_TOKENS
    │   ├── TooManyAliases                TOO_MANY_ALIASES
    │   ├── TooManyFragmentSpreads        TOO_MANY_FRAGMENT_SPREADS
    │   ├── TooManyDirectives             TOO_MANY_DIRECTIVES
    │   ├── QueryTooDeep                  QUERY_TOO_DEEP
    │   ├── TooManyRootFields             TOO_MANY_ROOT_FIELDS
    │   ├── QueryTooCostly                QUERY_TOO_COSTLY
    │   ├── IntrospectionDisabled         INTROSPECTION_DISABLED
    │   └── VariablesTooDeep              VARIABLES_TOO_DEEP
    ├── Denied                            a field the policy refuses (200; 403 in reject mode)
    │   ├── Forbidden                     FORBIDDEN
    │   └── PurposeRequired               PURPOSE_REQUIRED
    ├── AuditRefused                      AUDIT_UNAVAILABLE 503: restricted data not audited
    ├── DatasetUnavailable                DATASET_UNAVAILABLE 503: a published table not produced
    └── InternalError                     INTERNAL_ERROR 500 (a field's: 200), with a reference

    graphql-core's own errors, coded as they leave the executor:
      GRAPHQL_PARSE_FAILED 400, GRAPHQL_VALIDATION_FAILED 400,
      BAD_USER_INPUT 400 (a variable's value)

    Raised below the gateway, which knows no codes, and coded here by class (``code_of``):
      schema.errors.BadUserInput          BAD_USER_INPUT (an argument: 200)
      schema.errors.UnknownDistrict       UNKNOWN_DISTRICT
      schema.errors.PageSizeExceeded      PAGE_SIZE_EXCEEDED
      connectors.base.InvalidCursor       INVALID_CURSOR
      connectors.base.UpstreamUnavailable UPSTREAM_UNAVAILABLE, with the source
      connectors.base.UpstreamTimeout     UPSTREAM_TIMEOUT, with the source
      connectors.audit_log.AuditUnavailable  AUDIT_UNAVAILABLE

docs/errors.md lists the same codes and statuses (tests/test_errors.py holds them together).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from graphql import GraphQLError
from starlette.responses import Response

from connectors.audit_log import AuditUnavailable
from connectors.base import InvalidCursor, UpstreamTimeout, UpstreamUnavailable
from policies.model import Decision, Verdict
from schema.errors import BadUserInput, PageSizeExceeded, UnknownDistrict

JSON = "application/json"


@dataclass(frozen=True)
class ErrorCode:
    """One ``extensions.code``: the statuses it is answered with (a request's first, then a
    field's where it is both) and the message it carries when nothing more specific is said."""

    code: str
    statuses: tuple[int, ...]
    message: str

    @property
    def status(self) -> int:
        return self.statuses[0]


def _code(code: str, *statuses: int, message: str) -> ErrorCode:
    error = ErrorCode(code, statuses, message)
    CATALOGUE[code] = error
    return error


CATALOGUE: dict[str, ErrorCode] = {}

# The request: refused before any operation runs.
BAD_REQUEST = _code("BAD_REQUEST", 400, message="the body is not a GraphQL request")
UNSUPPORTED_MEDIA_TYPE = _code(
    "UNSUPPORTED_MEDIA_TYPE", 415, message="send the operation as application/json"
)
NOT_ACCEPTABLE = _code(
    "NOT_ACCEPTABLE", 406, message="the Accept header accepts no type this endpoint answers in"
)
PAYLOAD_TOO_LARGE = _code("PAYLOAD_TOO_LARGE", 413, message="the body is too large")
BATCH_TOO_LARGE = _code("BATCH_TOO_LARGE", 400, message="the batch holds too many operations")
NOT_FOUND = _code("NOT_FOUND", 404, message="not found")
METHOD_NOT_ALLOWED = _code("METHOD_NOT_ALLOWED", 405, message="method not allowed")
UNAUTHENTICATED = _code("UNAUTHENTICATED", 401, message="the credential proves nothing")
AUTHENTICATION_UNAVAILABLE = _code(
    "AUTHENTICATION_UNAVAILABLE", 503, message="the credential cannot be checked now"
)
SCOPE_REQUIRED = _code(
    "SCOPE_REQUIRED", 403, 401, message="this endpoint needs a scope the caller does not hold"
)
RATE_LIMITED = _code("RATE_LIMITED", 429, message="rate limit exceeded")
# The document, held to the audience's operation limits (gateway.limits).
TOO_MANY_TOKENS = _code("TOO_MANY_TOKENS", 400, message="the document holds too many tokens")
TOO_MANY_ALIASES = _code("TOO_MANY_ALIASES", 400, message="the document uses too many aliases")
TOO_MANY_FRAGMENT_SPREADS = _code(
    "TOO_MANY_FRAGMENT_SPREADS", 400, message="the document spreads fragments too many times"
)
TOO_MANY_DIRECTIVES = _code(
    "TOO_MANY_DIRECTIVES", 400, message="the document uses too many directives"
)
QUERY_TOO_DEEP = _code("QUERY_TOO_DEEP", 400, message="the query nests too deep")
TOO_MANY_ROOT_FIELDS = _code(
    "TOO_MANY_ROOT_FIELDS", 400, message="an operation selects too many root fields"
)
QUERY_TOO_COSTLY = _code("QUERY_TOO_COSTLY", 400, message="the operation costs too much")
INTROSPECTION_DISABLED = _code(
    "INTROSPECTION_DISABLED", 400, message="introspection (__schema, __type) is disabled"
)
VARIABLES_TOO_DEEP = _code("VARIABLES_TOO_DEEP", 400, message="the variables nest too deep")
# graphql-core's refusals.
GRAPHQL_PARSE_FAILED = _code("GRAPHQL_PARSE_FAILED", 400, message="the query is not GraphQL")
GRAPHQL_VALIDATION_FAILED = _code(
    "GRAPHQL_VALIDATION_FAILED", 400, message="the operation does not fit the schema"
)
OPERATION_NOT_FOUND = _code(
    "OPERATION_NOT_FOUND", 400, message="no operation of the document by that name"
)
# Trusted documents (gateway.execution.trusted): a document named by its hash. The first two
# are Apollo's automatic persisted queries' own, message and code, which its clients act on.
PERSISTED_QUERY_NOT_FOUND = _code(
    "PERSISTED_QUERY_NOT_FOUND", 404, message="PersistedQueryNotFound"
)
PERSISTED_QUERY_NOT_SUPPORTED = _code(
    "PERSISTED_QUERY_NOT_SUPPORTED", 400, message="PersistedQueryNotSupported"
)
DOCUMENT_HASH_MISMATCH = _code(
    "DOCUMENT_HASH_MISMATCH", 400, message="the document's SHA-256 is not the hash sent with it"
)
DOCUMENT_NOT_TRUSTED = _code(
    "DOCUMENT_NOT_TRUSTED", 403, message="only registered documents run for this audience"
)
TRUSTED_DOCUMENTS_UNAVAILABLE = _code(
    "TRUSTED_DOCUMENTS_UNAVAILABLE", 503, message="the registered documents cannot be read now"
)
# A value: a variable's (the request, 400) or an argument's (the field, 200).
BAD_USER_INPUT = _code("BAD_USER_INPUT", 400, 200, message="a value is not acceptable")
UNKNOWN_DISTRICT = _code("UNKNOWN_DISTRICT", 200, message="no district has that code")
INVALID_CURSOR = _code("INVALID_CURSOR", 200, message="the cursor is not one this API issued")
PAGE_SIZE_EXCEEDED = _code("PAGE_SIZE_EXCEEDED", 200, message="`first` is over the largest page")
# The policy: a field refused (filter mode), or the whole operation (reject mode).
FORBIDDEN = _code("FORBIDDEN", 200, 403, message="you may not read this field")
PURPOSE_REQUIRED = _code("PURPOSE_REQUIRED", 200, 403, message="declare a purpose to read this")
AUDIT_UNAVAILABLE = _code(
    "AUDIT_UNAVAILABLE",
    503,
    200,
    message="restricted data is not served while it cannot be audited",
)
# Publishing: a table is served whole or not at all.
DATASET_UNAVAILABLE = _code(
    "DATASET_UNAVAILABLE", 503, message="the table cannot be produced whole now; retry later"
)
# Upstream sources, each named in `extensions.source`.
UPSTREAM_UNAVAILABLE = _code("UPSTREAM_UNAVAILABLE", 200, message="a source did not answer")
UPSTREAM_TIMEOUT = _code("UPSTREAM_TIMEOUT", 200, message="a source did not answer in time")
INTERNAL_ERROR = _code("INTERNAL_ERROR", 500, 200, message="internal error")

DENIAL_CODES = frozenset({FORBIDDEN.code, PURPOSE_REQUIRED.code})


# ---------------------------------------------------------------------------- raised here


class GatewayError(Exception):
    """An error the gateway answers with its code; ``extensions`` go beside the code."""

    error: ClassVar[ErrorCode] = INTERNAL_ERROR

    def __init__(self, message: str | None = None, **extensions: Any) -> None:
        self.message = message or self.error.message
        super().__init__(self.message)
        self.extensions = extensions

    @property
    def code(self) -> str:
        return self.error.code

    @property
    def status(self) -> int:
        return self.error.status

    @property
    def headers(self) -> dict[str, str]:
        """Headers a response refused with this error carries."""
        return {}

    def entry(self) -> dict[str, Any]:
        """The error as one entry of a response's ``errors``."""
        return {"message": self.message, "extensions": {"code": self.code, **self.extensions}}

    def graphql_error(self) -> GraphQLError:
        return GraphQLError(self.message, extensions={"code": self.code, **self.extensions})

    def response(self, status: int | None = None) -> Response:
        """The whole response refusing a request with this error."""
        return json_response(
            {"errors": [self.entry()]}, status or self.status, headers=self.headers
        )


class BadRequest(GatewayError):
    error = BAD_REQUEST


class UnsupportedMediaType(GatewayError):
    error = UNSUPPORTED_MEDIA_TYPE


class NotAcceptable(GatewayError):
    error = NOT_ACCEPTABLE


class PayloadTooLarge(GatewayError):
    error = PAYLOAD_TOO_LARGE

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is over {limit} bytes", limit=limit)


class BatchTooLarge(GatewayError):
    error = BATCH_TOO_LARGE

    def __init__(self, limit: int, actual: int) -> None:
        super().__init__(f"a batch holds at most {limit} operations", limit=limit, actual=actual)


class NotFound(GatewayError):
    error = NOT_FOUND


class MethodNotAllowed(GatewayError):
    error = METHOD_NOT_ALLOWED


class Unauthenticated(GatewayError):
    """Credentials that prove nothing; ``reason`` says why (docs/authentication.md#errors)."""

    error = UNAUTHENTICATED
    # Reasons about the request's shape rather than a credential's validity, and reasons
    # about an API key rather than a bearer token: they choose the challenge's words.
    REQUEST_REASONS: ClassVar[frozenset[str]] = frozenset(
        {"ambiguous_credentials", "invalid_purpose"}
    )
    API_KEY_REASONS: ClassVar[frozenset[str]] = frozenset({"unknown_api_key", "revoked_api_key"})

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason

    @property
    def www_authenticate(self) -> str:
        """The challenge of the 401 (RFC 6750 s.3 for bearer tokens)."""
        scheme = "ApiKey" if self.reason in self.API_KEY_REASONS else "Bearer"
        error = "invalid_request" if self.reason in self.REQUEST_REASONS else "invalid_token"
        return f'{scheme} realm="bma-gateway", error="{error}", error_description="{self.reason}"'

    @property
    def headers(self) -> dict[str, str]:
        return {"www-authenticate": self.www_authenticate}


class AuthenticationUnavailable(GatewayError):
    """A credential that cannot be checked now (key database or issuer keys unreachable)."""

    error = AUTHENTICATION_UNAVAILABLE
    RETRY_AFTER_SECONDS = 5

    @property
    def headers(self) -> dict[str, str]:
        return {"retry-after": str(self.RETRY_AFTER_SECONDS)}


class ScopeRequired(GatewayError):
    """An endpoint outside GraphQL (``/metrics``) asked for without the scope it needs:
    401 with a challenge to an anonymous caller, 403 to a principal lacking the scope."""

    error = SCOPE_REQUIRED

    def __init__(self, scope: str) -> None:
        super().__init__(f"this endpoint needs a token with the scope `{scope}`", scope=scope)
        self.scope = scope

    @property
    def headers(self) -> dict[str, str]:
        # RFC 6750 s.3: the challenge names the scope that would be accepted.
        return {
            "www-authenticate": f'Bearer realm="bma-gateway", error="insufficient_scope", '
            f'scope="{self.scope}"'
        }


class RateLimited(GatewayError):
    error = RATE_LIMITED

    def __init__(self, message: str, retry_after: int, headers: Mapping[str, str]) -> None:
        super().__init__(message, retryAfter=retry_after)
        self._headers = {**headers, "retry-after": str(retry_after)}

    @property
    def headers(self) -> dict[str, str]:
        return self._headers


class LimitExceeded(GatewayError):
    """An operation limit of the caller's audience: ``limit`` it hit, ``actual`` if measured."""

    def __init__(
        self, message: str | None = None, limit: int | None = None, actual: int | None = None
    ) -> None:
        extensions = {"limit": limit, "actual": actual}
        super().__init__(message, **{k: v for k, v in extensions.items() if v is not None})
        self.limit = limit
        self.actual = actual


class TooManyTokens(LimitExceeded):
    error = TOO_MANY_TOKENS


class TooManyAliases(LimitExceeded):
    error = TOO_MANY_ALIASES


class TooManyFragmentSpreads(LimitExceeded):
    error = TOO_MANY_FRAGMENT_SPREADS


class TooManyDirectives(LimitExceeded):
    error = TOO_MANY_DIRECTIVES


class QueryTooDeep(LimitExceeded):
    error = QUERY_TOO_DEEP


class TooManyRootFields(LimitExceeded):
    error = TOO_MANY_ROOT_FIELDS


class QueryTooCostly(LimitExceeded):
    error = QUERY_TOO_COSTLY


class IntrospectionDisabled(LimitExceeded):
    error = INTROSPECTION_DISABLED


class VariablesTooDeep(LimitExceeded):
    error = VARIABLES_TOO_DEEP


class OperationNotFound(GatewayError):
    """``operationName`` names no operation of the document, or none was given to choose."""

    error = OPERATION_NOT_FOUND


class PersistedQueryNotFound(GatewayError):
    """A hash no registered (or, where the audience allows, automatically persisted)
    document has: send the document with it."""

    error = PERSISTED_QUERY_NOT_FOUND


class PersistedQueryNotSupported(GatewayError):
    """Documents by hash are off for the caller's audience: send the document itself."""

    error = PERSISTED_QUERY_NOT_SUPPORTED


class DocumentHashMismatch(GatewayError):
    error = DOCUMENT_HASH_MISMATCH


class DocumentNotTrusted(GatewayError):
    """The caller's audience runs registered documents only, and this one is not."""

    error = DOCUMENT_NOT_TRUSTED


class TrustedDocumentsUnavailable(GatewayError):
    """The registered documents' database did not answer, and this hash was not known."""

    error = TRUSTED_DOCUMENTS_UNAVAILABLE


class Denied(GatewayError):
    """A field the policy refuses: ``rule`` is its classification, ``grantedBy`` what full
    access would need."""


class Forbidden(Denied):
    error = FORBIDDEN


class PurposeRequired(Denied):
    error = PURPOSE_REQUIRED


class AuditRefused(GatewayError):
    """Restricted data read, its audit record not committed: the answer is withheld."""

    error = AUDIT_UNAVAILABLE


class DatasetUnavailable(GatewayError):
    """A published table (a download, a CKAN DataStore read) cannot be produced whole now:
    an upstream failed or answered in part, and a table is never served incomplete."""

    error = DATASET_UNAVAILABLE


class InternalError(GatewayError):
    """A bug: the client gets a reference, the server log the stack."""

    error = INTERNAL_ERROR

    def __init__(self) -> None:
        self.reference = uuid.uuid4().hex[:12]
        super().__init__(f"internal error (reference {self.reference})")


# ---------------------------------------------------------------------------- raised below

# Errors of the schema and the connectors, which know no codes: the most specific class wins.
CODED_BELOW: Mapping[type[Exception], ErrorCode] = {
    BadUserInput: BAD_USER_INPUT,
    UnknownDistrict: UNKNOWN_DISTRICT,
    PageSizeExceeded: PAGE_SIZE_EXCEEDED,
    InvalidCursor: INVALID_CURSOR,
    UpstreamTimeout: UPSTREAM_TIMEOUT,
    UpstreamUnavailable: UPSTREAM_UNAVAILABLE,
    AuditUnavailable: AUDIT_UNAVAILABLE,
}


def code_of(error: BaseException) -> ErrorCode | None:
    """The code of an error raised on purpose, here or below; None for a bug."""
    if isinstance(error, GatewayError):
        return error.error
    for kind in type(error).__mro__:
        found = CODED_BELOW.get(kind)
        if found is not None:
            return found
    return None


def denial(verdict: Verdict) -> Denied:
    """The error of a field the policy refuses: the rule, and what would grant full access."""
    rule = verdict.rule
    if verdict.decision is Decision.PURPOSE_REQUIRED:
        message = f"{rule.coordinate} is personal data: declare a purpose with the X-Purpose header"
    else:
        message = f"{rule.coordinate} is {rule.level.label} data; you may not read it"
    tags = f" {' '.join(sorted(rule.tags))}" if rule.tags else ""
    return _DENIALS[verdict.decision](
        message, rule=f"{rule.coordinate}: {rule.level.label}{tags}", grantedBy=verdict.grant
    )


def denial_code(verdict: Verdict) -> ErrorCode:
    """The code a refused field answers with."""
    return _DENIALS[verdict.decision].error


_DENIALS: Mapping[Decision, type[Denied]] = {
    Decision.DENY: Forbidden,
    Decision.PURPOSE_REQUIRED: PurposeRequired,
}


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)
