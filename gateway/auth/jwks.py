"""An issuer's verification keys (its JSON Web Key Set): where they come from, cached.

A key set is fetched lazily and re-read as it ages; an unknown ``kid`` may trigger a refetch
(the issuer may have rotated), at most once a minute, so tokens with made-up kids cannot make
the gateway hammer the issuer. Only public keys are kept: a private or symmetric entry in a
JWKS is skipped, never trusted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson

from gateway.errors import AuthenticationUnavailable

log = logging.getLogger("bma.gateway.auth")

MAX_JWKS_BYTES = 1024 * 1024
JWKS_MIN_REFETCH_SECONDS = 60.0  # an unknown kid refetches the JWKS at most this often
JWKS_MAX_AGE_SECONDS = 300.0  # ... and a key set is re-read at least this often

JwksFetcher = Callable[[], Awaitable[Mapping[str, Any]]]


class KeySet:
    """An issuer's verification keys by ``kid``, fetched lazily and cached.

    An unknown ``kid`` triggers a refetch (the issuer may have rotated), at most once per
    ``min_refetch`` seconds so that tokens with made-up kids cannot make the gateway hammer
    the issuer. The set is also re-read once older than ``max_age``, so a key the issuer
    retired stops verifying.
    """

    def __init__(
        self,
        name: str,
        fetch: JwksFetcher,
        *,
        min_refetch: float = JWKS_MIN_REFETCH_SECONDS,
        max_age: float = JWKS_MAX_AGE_SECONDS,
    ) -> None:
        self.name = name
        self._fetch = fetch
        self.min_refetch = min_refetch
        self.max_age = max_age
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._fetched_at = 0.0  # monotonic time of the last attempt, successful or not
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        if self._keys is None or time.monotonic() - self._fetched_at >= self.max_age:
            await self._refresh(self._fetched_at)
        if self._keys is None:  # a concurrent first fetch failed
            raise AuthenticationUnavailable(f"the keys of {self.name} cannot be read")
        keys = self._keys
        if kid not in keys and time.monotonic() - self._fetched_at >= self.min_refetch:
            await self._refresh(self._fetched_at)
            keys = self._keys or keys
        return keys.get(kid)

    async def _refresh(self, seen: float) -> None:
        async with self._lock:
            if self._fetched_at != seen:
                return  # another request refreshed while this one waited for the lock
            self._fetched_at = time.monotonic()
            try:
                self._keys = parse_jwks(await self._fetch(), self.name)
            except Exception as exc:  # any failure to fetch or read the set
                if self._keys is None:
                    raise AuthenticationUnavailable(
                        f"the keys of {self.name} cannot be read"
                    ) from exc
                log.warning("keeping the cached keys of %s: %s", self.name, exc)


def parse_jwks(document: Mapping[str, Any], name: str) -> dict[str, jwt.PyJWK]:
    """Public verification keys by kid; private, symmetric or unreadable entries are skipped."""
    entries = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise ValueError(f"the JWKS of {name} has no `keys` list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        kid = entry.get("kid") if isinstance(entry, dict) else None
        if not isinstance(kid, str) or not kid:
            continue
        if entry.get("kty") == "oct" or "d" in entry:
            log.warning("ignoring key %s of %s: not a public key", kid, name)
            continue
        try:
            keys[kid] = jwt.PyJWK(entry)
        except jwt.PyJWTError as exc:
            log.warning("ignoring key %s of %s: %s", kid, name, exc)
    return keys


def url_fetcher(url: str, timeout: float = 5.0) -> JwksFetcher:
    async def fetch() -> Mapping[str, Any]:
        # A client per fetch: fetches are rare (at most one a minute) and this needs no
        # lifecycle tied to the app.
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            response = await client.get(url, headers={"accept": "application/json"})
            response.raise_for_status()
            if len(response.content) > MAX_JWKS_BYTES:
                raise ValueError(f"the JWKS at {url} is over {MAX_JWKS_BYTES} bytes")
            document: Mapping[str, Any] = orjson.loads(response.content)
            return document

    return fetch


def file_fetcher(path: Path) -> JwksFetcher:
    async def fetch() -> Mapping[str, Any]:
        document: Mapping[str, Any] = orjson.loads(await asyncio.to_thread(path.read_bytes))
        return document

    return fetch
