"""Trusted documents: operations named by the SHA-256 of their text, and each audience's mode.

A request names a document by hash in either of two ways: ``documentId`` (the
GraphQL-over-HTTP persisted-documents appendix: ``"sha256:<64 hex>"``, or the bare hex) or
Apollo's ``extensions.persistedQuery`` (``{"version": 1, "sha256Hash": "<64 hex>"}``:
automatic persisted queries, APQ). The hash is looked up among the documents an operator
registered (``document_registry``) and, where the mode allows, those clients persisted
themselves (the APQ cache). Each audience has a mode (``BMA_TRUSTED_DOCUMENTS``):

- ``off``: documents are sent in full, as before; a hash alone answers
  ``PERSISTED_QUERY_NOT_SUPPORTED`` (Apollo's clients then send the document in full);
- ``allow``: a hash alone runs a registered or automatically persisted document, else answers
  ``PERSISTED_QUERY_NOT_FOUND``, after which a client sends hash and document: the hash is
  checked, the document runs and, once valid, is persisted for the next time. Documents sent
  in full run as before;
- ``require``: only registered documents run, named by hash or sent in full; anything else
  answers ``DOCUMENT_NOT_TRUSTED`` (an unknown hash alone ``PERSISTED_QUERY_NOT_FOUND``)
  before it is parsed, so it reaches no upstream system. Clients cannot persist documents.

A document found by hash is the same text as the one sent in full: the same limits, policy
plan, response cache entry and audit record apply to it (they all key on the text's
SHA-256). What it saves is the text on the wire and, since its parsed and validated form is
kept by hash (``Documents``), the text's lookup.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import ConfigDict, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from connectors.cache import CacheStore
from gateway import errors
from gateway.execution.document_registry import DocumentStoreUnavailable
from gateway.limits.config import AUDIENCES
from gateway.observability import metrics

Mode = Literal["off", "allow", "require"]
MODES: tuple[Mode, ...] = ("off", "allow", "require")
APQ_CACHE = "apq"  # the cache store's name for automatically persisted documents
# Automatically persisted documents longer than this are run but not kept (``documents``
# keeps no parsed form of longer ones either): a client cannot fill the store with large ones.
APQ_MAX_LENGTH = 20_000
APQ_MEMORY_ENTRIES = 2_000  # without Redis: at most ~40 MB of text in each process

_HEX = re.compile(r"[0-9a-f]{64}")


@pydantic_dataclass(config=ConfigDict(frozen=True, extra="forbid"))
class TrustedModes:
    """The mode of each audience; ``BMA_TRUSTED_DOCUMENTS``."""

    anonymous: Mode = "off"
    app: Mode = "off"
    partner: Mode = "off"
    agency: Mode = "off"

    @model_validator(mode="before")
    @classmethod
    def _one_for_all(cls, data: Any) -> Any:
        """A single mode (``require``) is every audience's."""
        if isinstance(data, str):
            return dict.fromkeys(AUDIENCES, data.strip().lower())
        return data

    def of(self, audience: str) -> Mode:
        mode: Mode = getattr(self, audience if audience in AUDIENCES else "anonymous")
        return mode

    @property
    def any_require(self) -> bool:
        return "require" in (self.of(a) for a in AUDIENCES)


@dataclass(frozen=True)
class DocumentRef:
    """A document named by hash: ``apq`` when by Apollo's ``extensions.persistedQuery``."""

    sha256: str
    apq: bool = False


def document_reference(document_id: Any, extensions: Any) -> DocumentRef | None:
    """The hash a request names its document by, if any; ``BAD_REQUEST`` when malformed."""
    apq = None
    if extensions is not None:
        if not isinstance(extensions, Mapping):
            raise errors.BadRequest("`extensions` must be a JSON object")
        persisted = extensions.get("persistedQuery")
        if persisted is not None:
            apq = _apq_hash(persisted)
    named = None
    if document_id is not None:
        if not isinstance(document_id, str):
            raise errors.BadRequest("`documentId` must be a string")
        text = document_id.removeprefix("sha256:")
        if not _HEX.fullmatch(text):
            raise errors.BadRequest(
                "`documentId` must be sha256:<64 lower-case hex digits>, the SHA-256 of the "
                "document's text"
            )
        named = text
    if named and apq and named != apq:
        raise errors.BadRequest("`documentId` and `extensions.persistedQuery` name two documents")
    if named:
        return DocumentRef(named)
    return DocumentRef(apq, apq=True) if apq else None


def _apq_hash(persisted: Any) -> str:
    if not isinstance(persisted, Mapping):
        raise errors.BadRequest("`extensions.persistedQuery` must be a JSON object")
    if persisted.get("version") != 1:
        raise errors.BadRequest("Unsupported persisted query version: use version 1")
    sha = persisted.get("sha256Hash")
    if not isinstance(sha, str) or not _HEX.fullmatch(sha):
        raise errors.BadRequest(
            "`extensions.persistedQuery.sha256Hash` must be 64 lower-case hex digits"
        )
    return sha


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Source:
    """The text an operation runs, and — when it is a registered or persisted document —
    its hash, by which its prepared form is kept."""

    text: str
    known: str | None = None  # the SHA-256 of ``text``, when found or checked by hash
    registered: bool = False  # an operator registered it
    persist: bool = False  # sent with its hash where the mode allows persisting it

    @property
    def kept_by(self) -> str | None:
        """The hash its prepared form is kept by: any registered document's, and that of a
        persisted one no longer than an automatically persisted document may be."""
        if self.known is None or not (self.registered or len(self.text) <= APQ_MAX_LENGTH):
            return None
        return self.known


class Registry(Protocol):
    async def lookup(self, sha256: str) -> str | None: ...


class ApqCache:
    """Automatically persisted documents: in Redis through the cache store when it has one
    (shared by the replicas), else in a bounded map in this process."""

    def __init__(self, store: CacheStore | None, *, clock: Any = time.monotonic) -> None:
        self.ttl = store.ttl(APQ_CACHE) if store is not None else 0.0
        self.store = store if store is not None and store.settings.redis_url else None
        self.clock = clock
        self._memory: OrderedDict[str, tuple[float, str]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    async def get(self, sha256: str) -> str | None:
        if not self.enabled:
            return None
        if self.store is not None:
            [found] = await self.store.get_many(APQ_CACHE, [sha256], text=True)
            return found if isinstance(found, str) else None
        entry = self._memory.get(sha256)
        if entry is None or self.clock() - entry[0] >= self.ttl:
            return None
        return entry[1]

    async def put(self, sha256: str, text: str) -> None:
        if not self.enabled or len(text) > APQ_MAX_LENGTH:
            return
        if self.store is not None:
            await self.store.set_many(APQ_CACHE, [(sha256, text)], self.ttl, text=True)
            return
        self._memory[sha256] = (self.clock(), text)
        self._memory.move_to_end(sha256)
        while len(self._memory) > APQ_MEMORY_ENTRIES:
            self._memory.popitem(last=False)


class TrustedDocuments:
    """Which text an operation runs, by its audience's mode; refusals raise coded errors."""

    def __init__(
        self,
        modes: TrustedModes | None = None,
        registry: Registry | None = None,
        apq: ApqCache | None = None,
    ) -> None:
        self.modes = modes or TrustedModes()
        self.registry = registry
        self.apq = apq or ApqCache(None)

    async def source(self, query: str, ref: DocumentRef | None, audience: str) -> Source:
        mode = self.modes.of(audience)
        if ref is None:
            if mode != "require":
                return Source(query)  # as before: the text's own caches apply
            digest = sha256_of(query)
            if await self._registered(digest, mode) is None:
                raise errors.DocumentNotTrusted()
            return Source(query, digest, registered=True)
        if mode == "off":
            if query:  # a hash beside the document: the document runs, as before
                return Source(query)
            raise errors.PersistedQueryNotSupported()
        if query:
            if sha256_of(query) != ref.sha256:
                raise errors.DocumentHashMismatch(
                    f"the SHA-256 of the document is not {ref.sha256}", sha256=ref.sha256
                )
            if await self._registered(ref.sha256, mode) is not None:
                return Source(query, ref.sha256, registered=True)
            if mode == "require":
                raise errors.DocumentNotTrusted()
            return Source(query, ref.sha256, persist=True)
        text = await self._registered(ref.sha256, mode)
        if text is not None:
            return Source(text, ref.sha256, registered=True)
        if mode == "allow" and self.apq.enabled:
            text = await self.apq.get(ref.sha256)
            metrics.observe_cache(APQ_CACHE, "miss" if text is None else "hit")
        if text is None:
            raise errors.PersistedQueryNotFound()
        return Source(text, ref.sha256)

    async def persist(self, source: Source) -> None:
        """Keep a document its client sent with its hash, once it proved valid."""
        if source.persist and source.known is not None:
            await self.apq.put(source.known, source.text)

    async def _registered(self, sha256: str, mode: Mode) -> str | None:
        if self.registry is None:
            return None
        try:
            return await self.registry.lookup(sha256)
        except DocumentStoreUnavailable as exc:
            if mode == "allow":  # the document, sent in full, runs as any other would
                return None
            raise errors.TrustedDocumentsUnavailable(
                f"the registered documents cannot be read now ({exc}); retry later"
            ) from None
