"""gateway/auth/api_keys.py: API keys stored as a hash of their secret, the app principal a key
proves, its use recorded, revocation within the cache time, an unreachable key store."""

from __future__ import annotations

import hashlib

import pytest
from pgbouncer import DatabaseRoute

from gateway.auth.api_keys import ApiKeyStore, revoke_key
from gateway.auth.authenticator import Authenticator
from gateway.errors import AuthenticationUnavailable as AuthUnavailable
from gateway.errors import Unauthenticated as AuthError
from gateway.http.serving import free_port
from policies.principal import Level, Principal
from support import QUERY, Gateway, new_key, run, sql, with_conn


def test_a_valid_api_key_is_answered_and_its_use_recorded(anonymous: Gateway, db):
    record, key = new_key(db.gateway)
    response = anonymous.post(QUERY, headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]["districts"]) == 50
    [row] = sql(db.gateway, "SELECT last_used_at FROM gateway.api_keys WHERE id = $1", record.id)
    assert row["last_used_at"] is not None


def test_an_api_key_makes_an_app_principal(db, route: DatabaseRoute):
    record, key = new_key(db.gateway, "civic-dashboard", "Open Data Club")

    async def check() -> Principal:
        # Straight to PostgreSQL, and behind PgBouncer in transaction mode.
        store = ApiKeyStore(route.url(db.gateway), pgbouncer=route.mode)
        await store.start()
        try:
            return await Authenticator(api_keys=store).authenticate({"X-API-Key": key})
        finally:
            await store.stop()

    assert run(check()) == Principal(
        kind="app",
        subject=f"key:{record.id}",
        organisation="Open Data Club",
        clearance=Level.PUBLIC,
        credential_id=record.id,
    )


def test_only_a_hash_of_the_secret_is_stored(db):
    record, key = new_key(db.gateway)
    secret = key.rsplit("_", 1)[1]
    assert len(bytes.fromhex(secret)) * 8 >= 128
    [row] = sql(db.gateway, "SELECT * FROM gateway.api_keys WHERE id = $1", record.id)
    assert bytes(row["secret_sha256"]) == hashlib.sha256(secret.encode()).digest()
    assert secret not in repr(row) and key not in repr(row)


def test_revocation_takes_effect_within_the_cache_time(db):
    record, key = new_key(db.gateway)

    async def check(cache_seconds: float) -> list[str]:
        store = ApiKeyStore(db.gateway, cache_seconds=cache_seconds)
        await store.start()
        authenticator = Authenticator(api_keys=store)
        outcomes = []
        try:
            await authenticator.authenticate({"X-API-Key": key})
            outcomes.append("accepted")
            await with_conn(db.gateway, lambda conn: revoke_key(conn, record.id))
            try:
                await authenticator.authenticate({"X-API-Key": key})
                outcomes.append("accepted")
            except AuthError as exc:
                outcomes.append(exc.reason)
        finally:
            await store.stop()
        return outcomes

    # A long cache still holds the key it read before the revocation ...
    assert run(check(60)) == ["accepted", "accepted"]
    # ... and a fresh read sees the revocation at once (the gateway's default cache is 5 s).
    record, key = new_key(db.gateway)
    assert run(check(0)) == ["accepted", "revoked_api_key"]


def test_an_unreachable_key_database_is_503_not_anonymous():
    async def check() -> None:
        store = ApiKeyStore(f"postgresql://nobody@127.0.0.1:{free_port()}/none", timeout=2)
        await store.start()
        try:
            await Authenticator(api_keys=store).authenticate(
                {"X-API-Key": "bma_" + "0" * 16 + "_" + "0" * 48}
            )
        finally:
            await store.stop()

    with pytest.raises(AuthUnavailable):
        run(check())
