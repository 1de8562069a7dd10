"""Whole responses of open-data operations, cached (memory, or Redis when REDIS_URL is set).

Only an operation whose policy plan reaches open fields only may be answered from here: every
field of such a plan is allowed, unmasked, to every principal whatever its clearance, scopes
or purpose, so no verdict of the plan can differ between the callers who share an entry. Two
things about the caller still change such an answer, and they are part of the key
(``answer_scope``): its row scope (a district officer's lists hold her district's rows only,
and a row of another district is null) and its audience's page sizes (a list without `first`
is as long as the audience's default page). Introspection (answered per principal's visible
schema), responses with errors, and responses that used stale upstream data are never stored.

A hit should cost what a hand-written endpoint serving saved bytes costs. So what depends only
on the document, the operation and the caller's grants — the document's hash, the operation
picked, its limits and plan checked, the key's hashed prefix and the caller's scope — is
worked out once, on the first request of each such triple, and kept (``OpenOperation``);
later requests of the triple go from it straight to the lookup, checking per request only
what their variables change. Nothing of an answer is kept there: entries expire and are
cleared in the store alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import orjson
from graphql import DocumentNode, OperationDefinitionNode

from connectors.cache import CacheStore
from policies.principal import Grants, Principal
from schema import Limits

NAME = "response"
# Operations kept as known open (document text, operation name, grants): beyond this the
# table starts afresh (a flood of one-off documents costs each of them one slower request).
KNOWN_SIZE = 1024


def answer_scope(principal: Principal, pages: Limits) -> dict[str, Any]:
    """What, besides the document and its variables, an open-data answer depends on: the
    principal's row scope and the page sizes of its audience."""
    districts = sorted(principal.districts) if principal.districts is not None else None
    return {"districts": districts, "pages": dataclasses.astuple(pages)}


@dataclasses.dataclass(frozen=True)
class OpenOperation:
    """An operation of a document whose plan, for principals of one grant set, reaches open
    fields only, and which passed every check that depends on nothing but the document, the
    operation and the grants (document limits, validation, a cost no variable changes)."""

    digest: str  # SHA-256 of the document
    document: DocumentNode
    operation: OperationDefinitionNode
    static_cost: int | None  # None: a variable changes the cost, checked per request
    prefix: Any  # hashlib's state after the document and operation (``ResponseCache.key``)
    scope: bytes  # the grants' ``answer_scope``, encoded
    key: str  # the cache key when no variables are given

    @property
    def takes_variables(self) -> bool:
        return bool(self.operation.variable_definitions)

    def key_for(self, variables: dict[str, Any] | None) -> str:
        """The cache key of a request of this operation with ``variables``."""
        return _finished(self.prefix, variables, self.scope) if variables else self.key


class ResponseCache:
    def __init__(self, store: CacheStore | None) -> None:
        self.store = store
        self.ttl = store.ttl(NAME) if store is not None else 0.0
        self._known: dict[tuple[str, str | None, Grants], OpenOperation] = {}

    @property
    def enabled(self) -> bool:
        return self.store is not None and self.ttl > 0

    @staticmethod
    def key(
        document_hash: str,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        scope: dict[str, Any],
    ) -> str:
        """The document (by its hash), the operation, the variables and the caller's
        ``answer_scope``: everything the answer depends on."""
        return _finished(_prefix(document_hash, operation_name), variables, _encoded(scope))

    def open_operation(
        self,
        digest: str,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        name: str | None,
        static_cost: int | None,
        scope: dict[str, Any],
    ) -> OpenOperation:
        """What the keys of ``operation`` (asked for by ``name``) share, for callers whose
        ``answer_scope`` is ``scope``."""
        prefix = _prefix(digest, name)
        encoded = _encoded(scope)
        key = _finished(prefix, None, encoded)
        return OpenOperation(digest, document, operation, static_cost, prefix, encoded, key)

    def known(self, query: str, name: str | None, grants: Grants) -> OpenOperation | None:
        """The open operation ``name`` of ``query`` for principals with ``grants``, once a
        request of theirs went the whole way to the cache (``remember``)."""
        return self._known.get((query, name, grants))

    def remember(
        self, query: str, name: str | None, grants: Grants, operation: OpenOperation
    ) -> None:
        if len(self._known) >= KNOWN_SIZE:
            self._known.clear()
        self._known[(query, name, grants)] = operation

    async def get(self, key: str) -> bytes | None:
        assert self.store is not None
        found = await self.store.get(NAME, key)
        return found.encode() if isinstance(found, str) else found

    async def put(self, key: str, encoded: bytes) -> None:
        assert self.store is not None
        await self.store.set_many(NAME, [(key, encoded)], self.ttl, text=True)


def _prefix(document_hash: str, operation_name: str | None) -> Any:
    digest = hashlib.sha256(document_hash.encode())
    digest.update(b"\0" + (operation_name or "").encode() + b"\0")
    return digest


def _encoded(scope: dict[str, Any]) -> bytes:
    return orjson.dumps(scope, option=orjson.OPT_SORT_KEYS)


def _finished(prefix: Any, variables: dict[str, Any] | None, scope: bytes) -> str:
    digest = prefix.copy()
    digest.update(orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS) + b"\0")
    digest.update(scope)
    return str(digest.hexdigest())
