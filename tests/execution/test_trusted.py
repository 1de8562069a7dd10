"""gateway/execution/trusted.py and its neighbours: references, modes, the APQ cache, the
registry's cache, documents kept by hash, manifests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

import schema
from connectors.cache import CacheSettings, CacheStore
from gateway import errors
from gateway.execution.document_registry import DocumentRegistry, DocumentStoreUnavailable
from gateway.execution.documents import Documents, Parsed
from gateway.execution.manifests import ManifestError, read_manifest
from gateway.execution.trusted import (
    APQ_MEMORY_ENTRIES,
    ApqCache,
    DocumentRef,
    TrustedDocuments,
    TrustedModes,
    document_reference,
)
from gateway.limits.config import AudienceLimits
from gateway.limits.cost import CostModel
from gateway.settings import ConfigError, Settings
from support import REQUIRED_ENV, ManualClock, run

QUERY = "{ districts { code } }"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def built():
    return schema.graphql_schema()


# ---------------------------------------------------------------------------- references


def test_references_by_document_id_and_by_apollos_extension():
    h = sha(QUERY)
    assert document_reference(f"sha256:{h}", None) == DocumentRef(h)
    assert document_reference(h, None) == DocumentRef(h)  # the bare hex, as Hive's clients
    apq = {"persistedQuery": {"version": 1, "sha256Hash": h}}
    assert document_reference(None, apq) == DocumentRef(h, apq=True)
    assert document_reference(f"sha256:{h}", apq) == DocumentRef(h)
    assert document_reference(None, {"other": 1}) is None
    assert document_reference(None, None) is None


@pytest.mark.parametrize(
    ("document_id", "extensions"),
    [
        ("sha256:" + "A" * 64, None),  # upper case is not the spec's form
        ("md5:" + "a" * 32, None),
        (None, {"persistedQuery": {"version": 2, "sha256Hash": "a" * 64}}),
        (None, {"persistedQuery": {"sha256Hash": "a" * 64}}),
        (None, {"persistedQuery": "a" * 64}),
        (None, []),
        ("sha256:" + "a" * 64, {"persistedQuery": {"version": 1, "sha256Hash": "b" * 64}}),
    ],
)
def test_malformed_references_are_bad_requests(document_id, extensions):
    with pytest.raises(errors.BadRequest):
        document_reference(document_id, extensions)


# ---------------------------------------------------------------------------- modes


def test_modes_from_the_environment():
    def read(value: str) -> TrustedModes:
        env = {**REQUIRED_ENV, "BMA_GATEWAY_DATABASE_URL": "postgresql://x/gw"}
        return Settings.from_env({**env, "BMA_TRUSTED_DOCUMENTS": value}).trusted_documents

    assert read("allow") == TrustedModes("allow", "allow", "allow", "allow")
    assert read('{"anonymous": "require", "partner": "allow"}') == TrustedModes(
        anonymous="require", partner="allow"
    )
    assert Settings.from_env(REQUIRED_ENV).trusted_documents == TrustedModes()  # all off
    for bad in ("always", '{"anonymous": "maybe"}', '{"robots": "require"}', "[1]"):
        with pytest.raises(ConfigError) as refused:
            read(bad)
        assert any("BMA_TRUSTED_DOCUMENTS" in p for p in refused.value.problems), bad


def test_require_needs_the_gateway_database():
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**REQUIRED_ENV, "BMA_TRUSTED_DOCUMENTS": '{"app": "require"}'})
    assert "BMA_GATEWAY_DATABASE_URL" in str(refused.value)


def test_settings_round_trip_through_the_environment():
    env = {**REQUIRED_ENV, "BMA_GATEWAY_DATABASE_URL": "postgresql://x/gw"}
    settings = Settings.from_env({**env, "BMA_TRUSTED_DOCUMENTS": '{"agency": "require"}'})
    again = Settings.from_env(settings.to_env())
    assert again.trusted_documents == settings.trusted_documents


# ---------------------------------------------------------------------------- resolution


class Registry:
    """Registered documents in a dict; ``down`` raises as an unreachable database does."""

    def __init__(self, *texts: str) -> None:
        self.texts = {sha(t): t for t in texts}
        self.down = False

    async def lookup(self, sha256: str) -> str | None:
        if self.down:
            raise DocumentStoreUnavailable("ConnectionRefusedError")
        return self.texts.get(sha256)


def source(trusted: TrustedDocuments, query: str, ref: DocumentRef | None, who="anonymous"):
    return run(trusted.source(query, ref, who))


def code_of(trusted: TrustedDocuments, query: str, ref: DocumentRef | None) -> str:
    with pytest.raises(errors.GatewayError) as refused:
        source(trusted, query, ref)
    return refused.value.code


def test_a_store_outage_refuses_in_require_and_falls_back_in_allow():
    registry = Registry(QUERY)
    registry.down = True
    ref = DocumentRef(sha(QUERY))
    strict = TrustedDocuments(TrustedModes("require"), registry)
    assert code_of(strict, "", ref) == "TRUSTED_DOCUMENTS_UNAVAILABLE"
    assert code_of(strict, QUERY, None) == "TRUSTED_DOCUMENTS_UNAVAILABLE"
    lenient = TrustedDocuments(TrustedModes("allow"), registry)
    # The client is told to send the document, which then runs as any other would.
    assert code_of(lenient, "", ref) == "PERSISTED_QUERY_NOT_FOUND"
    assert source(lenient, QUERY, DocumentRef(sha(QUERY), apq=True)).text == QUERY


def test_each_audience_has_its_own_mode():
    trusted = TrustedDocuments(TrustedModes(anonymous="require", agency="allow"), Registry())
    other = "{ districts { nameEn } }"
    with pytest.raises(errors.DocumentNotTrusted):
        source(trusted, other, None, "anonymous")
    assert source(trusted, other, None, "agency").known is None  # runs as before
    with pytest.raises(errors.PersistedQueryNotSupported):
        source(trusted, "", DocumentRef(sha(other)), "partner")


def test_only_a_document_sent_with_its_hash_in_allow_mode_is_persisted():
    apq = ApqCache(None)
    apq.ttl = 60.0  # on, in memory
    trusted = TrustedDocuments(TrustedModes("allow"), Registry(), apq)
    found = source(trusted, QUERY, DocumentRef(sha(QUERY), apq=True))
    assert found.persist and found.known == sha(QUERY)
    run(trusted.persist(found))
    assert source(trusted, "", DocumentRef(sha(QUERY), apq=True)).text == QUERY
    registered = TrustedDocuments(TrustedModes("allow"), Registry(QUERY), ApqCache(None))
    assert not source(registered, QUERY, DocumentRef(sha(QUERY))).persist


# ---------------------------------------------------------------------------- the APQ cache


def test_the_memory_apq_cache_expires_and_is_bounded():
    clock = ManualClock()
    store = CacheStore(CacheSettings(ttls={"apq": 60}))  # no Redis: the bounded map is used
    apq = ApqCache(store, clock=clock)
    assert apq.store is None and apq.enabled
    run(apq.put("a" * 64, QUERY))
    assert run(apq.get("a" * 64)) == QUERY
    clock.advance(60)
    assert run(apq.get("a" * 64)) is None
    for n in range(APQ_MEMORY_ENTRIES + 1):
        run(apq.put(f"{n:064x}", QUERY))
    assert run(apq.get(f"{0:064x}")) is None  # the oldest went
    assert run(apq.get(f"{APQ_MEMORY_ENTRIES:064x}")) == QUERY
    run(apq.put("b" * 64, "{ __typename }" + " " * 20_000))  # too long to keep
    assert run(apq.get("b" * 64)) is None


def test_the_apq_cache_is_shared_in_redis(redis_url_or_skip: str):
    async def share() -> str | None:
        # Two replicas' stores.
        stores = [
            CacheStore(CacheSettings(redis_url=redis_url_or_skip, ttls={"apq": 60}))
            for _ in range(2)
        ]
        try:
            first, second = ApqCache(stores[0]), ApqCache(stores[1])
            assert first.store is stores[0]  # Redis, not the bounded map
            key = sha(f"{QUERY} # shared")
            await first.put(key, QUERY)
            return await second.get(key)
        finally:
            await stores[0].clear(["apq"])
            for store in stores:
                await store.close()

    assert run(share()) == QUERY


@pytest.fixture
def redis_url_or_skip() -> str:
    import os

    url = os.environ.get("REDIS_URL", "").strip()
    if not url:
        pytest.skip("REDIS_URL is not set")
    return url


# ---------------------------------------------------------------------------- kept by hash


def test_a_known_document_is_prepared_once_by_hash(built):
    documents = Documents(built, AudienceLimits(), CostModel(built, 20, 100))
    first = documents.prepared(QUERY, "anonymous", known=sha(QUERY))
    assert isinstance(first, Parsed) and first.digest == sha(QUERY)
    # Found by hash: the text is not read again (not even parsed: this one is not GraphQL).
    assert documents.prepared("not graphql", "anonymous", known=sha(QUERY)) is first
    # Per audience: each audience's limits apply.
    assert documents.prepared(QUERY, "agency", known=sha(QUERY)) is not first


# ---------------------------------------------------------------------------- the registry


def test_the_registry_serves_a_known_hash_through_an_outage_but_not_an_unknown_one():
    registry = DocumentRegistry("postgresql://127.0.0.1:1/none", cache_seconds=0, timeout=1)
    h = sha(QUERY)
    registry._recent.put(h, 0.0, QUERY)  # read before the outage (long expired)
    with pytest.raises(DocumentStoreUnavailable):
        run(registry.lookup(sha("{ __typename }")))  # never started: no pool, no database
    assert run(registry.lookup(h)) == QUERY


# ---------------------------------------------------------------------------- manifests

MULTI = """query A { districts { code } }
query B { districts { ...names } }
fragment names on District { nameEn }
"""


def test_a_graphql_file_registers_the_file_and_each_of_its_operations(tmp_path: Path, built):
    path = tmp_path / "ops.graphql"
    path.write_text(MULTI, encoding="utf-8")
    documents = {d.sha256: d for d in read_manifest(path, built)}
    assert documents[sha(MULTI)].operations == ("A", "B")
    alone = [d for d in documents.values() if d.operations == ("B",)]
    assert len(documents) == 3 and len(alone) == 1
    assert "fragment names on District" in alone[0].body


def test_codegen_and_apollo_manifests(tmp_path: Path, built):
    codegen = tmp_path / "persisted-documents.json"
    codegen.write_bytes(orjson.dumps({sha(QUERY): QUERY}))
    assert [d.sha256 for d in read_manifest(codegen, built)] == [sha(QUERY)]
    apollo = tmp_path / "persisted-query-manifest.json"
    body = "query Names { districts { nameTh } }"
    manifest = {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [{"id": sha(body), "name": "Names", "type": "query", "body": body}],
    }
    apollo.write_bytes(orjson.dumps(manifest))
    [document] = read_manifest(apollo, built)
    assert (document.sha256, document.operations) == (sha(body), ("Names",))


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("m.json", {"a" * 64: QUERY}, "does not match"),
        ("m.json", {hashlib.md5(QUERY.encode()).hexdigest(): QUERY}, "not a SHA-256"),
        ("m.json", {sha("{ nope }"): "{ nope }"}, "does not fit the gateway's schema"),
        ("m.json", {sha("{ districts {"): "{ districts {"}, "is not GraphQL"),
        ("m.json", [QUERY], "expected a JSON object"),
        ("m.txt", QUERY, ".graphql file or a .json manifest"),
    ],
)
def test_bad_manifests_are_refused_naming_the_problem(tmp_path: Path, built, name, content, says):
    path = tmp_path / name
    path.write_bytes(orjson.dumps(content) if name.endswith(".json") else content.encode())
    with pytest.raises(ManifestError) as refused:
        read_manifest(path, built)
    assert says in str(refused.value)
