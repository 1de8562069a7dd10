"""Whole responses of open-data operations, cached (memory, or Redis when REDIS_URL is set).

Only an operation whose policy plan reaches open fields only may be answered from here: its
answer is the same bytes for every principal, so nobody can be handed data they may not see.
Introspection (answered per principal's visible schema), responses with errors, and
responses that used stale upstream data are never stored.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from connectors.cache import CacheStore

NAME = "response"


class ResponseCache:
    def __init__(self, store: CacheStore | None) -> None:
        self.store = store
        self.ttl = store.ttl(NAME) if store is not None else 0.0

    @property
    def enabled(self) -> bool:
        return self.store is not None and self.ttl > 0

    @staticmethod
    def key(
        document_hash: str, operation_name: str | None, variables: dict[str, Any] | None
    ) -> str:
        """The document (by its hash), the operation and the variables: everything the
        answer depends on."""
        digest = hashlib.sha256(document_hash.encode())
        digest.update(b"\0" + (operation_name or "").encode() + b"\0")
        digest.update(orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS))
        return digest.hexdigest()

    async def get(self, key: str) -> bytes | None:
        assert self.store is not None
        [found] = await self.store.get_many(NAME, [key], text=True)
        return found.encode() if isinstance(found, str) else found

    async def put(self, key: str, encoded: bytes) -> None:
        assert self.store is not None
        await self.store.set_many(NAME, [(key, encoded.decode())], self.ttl, text=True)
