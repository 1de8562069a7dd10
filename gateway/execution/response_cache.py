"""Whole responses of open-data operations, cached (memory, or Redis when REDIS_URL is set).

Only an operation whose policy plan reaches open fields only may be answered from here: every
field of such a plan is allowed, unmasked, to every principal whatever its clearance, scopes
or purpose, so no verdict of the plan can differ between the callers who share an entry. Two
things about the caller still change such an answer, and they are part of the key
(``answer_scope``): its row scope (a district officer's lists hold her district's rows only,
and a row of another district is null) and its audience's page sizes (a list without `first`
is as long as the audience's default page). Introspection (answered per principal's visible
schema), responses with errors, and responses that used stale upstream data are never stored.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import orjson

from connectors.cache import CacheStore
from policies.principal import Principal
from schema import Limits

NAME = "response"


def answer_scope(principal: Principal, pages: Limits) -> dict[str, Any]:
    """What, besides the document and its variables, an open-data answer depends on: the
    principal's row scope and the page sizes of its audience."""
    districts = sorted(principal.districts) if principal.districts is not None else None
    return {"districts": districts, "pages": dataclasses.astuple(pages)}


class ResponseCache:
    def __init__(self, store: CacheStore | None) -> None:
        self.store = store
        self.ttl = store.ttl(NAME) if store is not None else 0.0

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
        digest = hashlib.sha256(document_hash.encode())
        digest.update(b"\0" + (operation_name or "").encode() + b"\0")
        digest.update(orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS) + b"\0")
        digest.update(orjson.dumps(scope, option=orjson.OPT_SORT_KEYS))
        return digest.hexdigest()

    async def get(self, key: str) -> bytes | None:
        assert self.store is not None
        [found] = await self.store.get_many(NAME, [key], text=True)
        return found.encode() if isinstance(found, str) else found

    async def put(self, key: str, encoded: bytes) -> None:
        assert self.store is not None
        await self.store.set_many(NAME, [(key, encoded.decode())], self.ttl, text=True)
