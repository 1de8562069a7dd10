"""The demo's credentials: one per audience, made at start and printed ready to paste.

The scope and purpose names below are the ones the demo's tokens carry; the policy file
(``policies/``) must use the same names for the demo to show each audience its view. They
are collected here so there is one place to align.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

import asyncpg

from gateway.auth.api_keys import create_key, ensure_schema, find_key, parse_api_key
from gateway.auth.issuer import EmbeddedIssuer
from policies.principal import Level

# Scopes: "<dataset>:read" reads a dataset's non-personal restricted fields,
# "<dataset>:personal" its personal fields (PDPA), "audit:read" the audit trail.
TAX_READ = "tax:read"
TAX_PERSONAL = "tax:personal"
REGISTRY_READ = "registry:read"
REGISTRY_PERSONAL = "registry:personal"
TRAFFY_PERSONAL = "traffy:personal"
AUDIT_READ = "audit:read"
PROCUREMENT_READ = "procurement:read"
PROCUREMENT_PERSONAL = "procurement:personal"
SCOPES = (
    TAX_READ,
    TAX_PERSONAL,
    REGISTRY_READ,
    REGISTRY_PERSONAL,
    TRAFFY_PERSONAL,
    AUDIT_READ,
    PROCUREMENT_READ,
    PROCUREMENT_PERSONAL,
)

# Declared purposes (the `purpose` claim or the X-Purpose header).
PURPOSE_RESEARCH = "research"
PURPOSE_TAX_COLLECTION = "tax-collection"
PURPOSE_DISTRICT_SERVICE = "district-service"
PURPOSE_PDPA_AUDIT = "pdpa-audit"

TOKEN_TTL = timedelta(hours=12)
DEMO_KEY_NAME = "demo"
DEMO_KEY_ORGANISATION = "demo-app"


@dataclass(frozen=True)
class TokenProfile:
    """Who a demo token stands for."""

    label: str
    variable: str  # the shell variable the banner exports it as
    audience: Literal["partner", "agency"]
    org: str
    scopes: tuple[str, ...]
    clearance: Level
    district: str | None = None
    purpose: str | None = None

    def describe(self) -> str:
        parts = [self.org, self.clearance.label, " ".join(self.scopes)]
        if self.district:
            parts.append(f"district {self.district} only")
        if self.purpose:
            parts.append(f"purpose {self.purpose}")
        return f"{self.label} ({'; '.join(parts)})"


DEMO_PROFILES: tuple[TokenProfile, ...] = (
    TokenProfile(
        "partner",
        "BMA_PARTNER_TOKEN",
        "partner",
        "utility-partner",
        (TAX_READ,),
        Level.INTERNAL,
        purpose=PURPOSE_RESEARCH,
    ),
    TokenProfile(
        "district officer",
        "BMA_DISTRICT_OFFICER_TOKEN",
        "agency",
        "bma-district-1039",
        (TAX_READ, REGISTRY_READ, REGISTRY_PERSONAL),
        Level.CONFIDENTIAL,
        district="1039",
        purpose=PURPOSE_DISTRICT_SERVICE,
    ),
    TokenProfile(
        "finance officer",
        "BMA_FINANCE_OFFICER_TOKEN",
        "agency",
        "bma-finance",
        (TAX_READ, TAX_PERSONAL),
        Level.CONFIDENTIAL,
        purpose=PURPOSE_TAX_COLLECTION,
    ),
    TokenProfile(
        "data protection officer",
        "BMA_DPO_TOKEN",
        "agency",
        "bma-dpo",
        (AUDIT_READ, TAX_READ, TAX_PERSONAL, REGISTRY_READ, REGISTRY_PERSONAL, TRAFFY_PERSONAL),
        Level.SECRET,
        purpose=PURPOSE_PDPA_AUDIT,
    ),
)


@dataclass(frozen=True)
class Credential:
    label: str
    variable: str
    header: str  # the header with a shell reference to the variable, for curl
    value: str


def demo_tokens(issuer: EmbeddedIssuer, ttl: timedelta = TOKEN_TTL) -> list[Credential]:
    return [
        Credential(
            profile.describe(),
            profile.variable,
            f"Authorization: Bearer ${profile.variable}",
            issuer.issue(
                profile.audience,
                profile.org,
                profile.scopes,
                profile.clearance,
                district=profile.district,
                purpose=profile.purpose,
                ttl=ttl,
                subject=f"demo:{profile.variable.removeprefix('BMA_').removesuffix('_TOKEN')}",
            ),
        )
        for profile in DEMO_PROFILES
    ]


def api_key_credential(key: str) -> Credential:
    return Credential(
        "app developer (API key; public fields, its own quota)",
        "BMA_API_KEY",
        "X-API-Key: $BMA_API_KEY",
        key,
    )


def ensure_demo_key(database_url: str, path: Path) -> str:
    """The demo's API key: the one saved in ``path`` while the database still honours it,
    else a new key named "demo" (its secret can only be shown when created, hence the file).
    """
    saved = path.read_text("ascii").strip() if path.exists() else ""
    key = asyncio.run(_valid_or_new_key(database_url, saved))
    if key != saved:
        write_private(path, key + "\n")
    return key


async def _valid_or_new_key(database_url: str, saved: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        await ensure_schema(conn)
        parsed = parse_api_key(saved)
        if parsed is not None:
            record = await find_key(conn, parsed.key_id)
            if record is not None and record.matches(parsed.secret) and not record.revoked:
                return saved
        _, key = await create_key(conn, DEMO_KEY_NAME, DEMO_KEY_ORGANISATION)
        return key
    finally:
        await conn.close()


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".demo-key-")  # mode 0600
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(text)
    os.replace(name, path)
