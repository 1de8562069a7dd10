"""The gateway's settings: each declared once, with its type, bounds, default and meaning.

``Settings.from_env()`` reads them from the environment (over the ``KEY=value`` lines of
``BMA_CONFIG_FILE``, if it names one: the environment wins) and checks them all at once: a
``ConfigError`` lists every missing or malformed setting, each by its variable.
``Settings(...)`` takes them as arguments (the tests, the demo) and reads no environment.
The tables of docs/configuration.md are made from these declarations
(``bma-gateway config docs``), and a test holds the two together.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from connectors import redis_client
from connectors.cache import DEFAULT_TTLS
from connectors.districts import all_districts
from connectors.pg import PgBouncerMode
from gateway.auth.issuer import EMBEDDED_ISSUER
from gateway.auth.trust import DEFAULT_AUDIENCE, MAX_LEEWAY_SECONDS, TrustedIssuer
from gateway.execution.trusted import MODES, TrustedModes
from gateway.limits.config import AudienceLimits
from gateway.ratelimit.config import RateLimits

PREFIX = "BMA_"
DISTRICT_URL = "BMA_REGISTRY_DATABASE_URL_"  # + a district code: that office's own database
CACHE_TTL_MAX = 86_400


class ConfigError(ValueError):
    """Settings missing or malformed; ``problems`` names each variable."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


# ---------------------------------------------------------------------------- JSON values


def _json(expected: type, shape: str) -> Callable[[Any], Any]:
    """A JSON setting read from its text (values given as Python objects pass as they are)."""

    def read(raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"is not valid JSON: {exc}") from None
        if not isinstance(value, expected):
            raise ValueError(f"must be a JSON {shape}")
        return value

    return read


def _rate_limits(raw: Any) -> Any:
    if isinstance(raw, str) and raw.strip().lower() == "off":
        return None
    return _json(dict, 'object like {"anonymous": ...}, or `off`')(raw)


def _cache_ttls(raw: Any) -> dict[str, float]:
    """Seconds per cache name, merged onto the defaults."""
    given = _json(dict, "object of seconds per cache")(raw)
    if not isinstance(given, Mapping):
        raise ValueError("must be a JSON object of seconds per cache")
    ttls = dict(DEFAULT_TTLS)
    for name, seconds in given.items():
        if name not in DEFAULT_TTLS:
            raise ValueError(f"unknown cache {name!r} (known: {', '.join(DEFAULT_TTLS)})")
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds <= CACHE_TTL_MAX
        ):
            raise ValueError(f"[{name!r}] must be seconds between 0 and {CACHE_TTL_MAX}")
        ttls[name] = float(seconds)
    return ttls


def _trusted_modes(raw: Any) -> Any:
    """One mode for every audience (``require``), or a JSON object of modes per audience."""
    if isinstance(raw, str) and raw.strip().lower() in MODES:
        return raw.strip().lower()
    return _json(dict, 'object like {"anonymous": "require"}, or off, allow or require')(raw)


def _one_per_issuer(issuers: tuple[TrustedIssuer, ...]) -> tuple[TrustedIssuer, ...]:
    names = [t.issuer for t in issuers]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"names an issuer twice: {', '.join(twice)}")
    return issuers


def _existing_file(path: Path | None, made_by: str = "audit keygen") -> Path | None:
    if path is None:
        return None
    path = path.expanduser()
    if not path.is_file():
        raise ValueError(
            f"no such file {str(path)!r} (create one with `bma-gateway {made_by} PATH`)"
        )
    return path


def _expanded(path: Path | None) -> Path | None:
    return path.expanduser() if path is not None else None


def _base_url(raw: str) -> str:
    """An absolute http(s) URL without query or fragment, kept without its trailing slash."""
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError("must be an absolute http(s) URL without query or fragment")
    return raw.rstrip("/")


def redacted_url(url: str) -> str:
    """A database URL for printing: no password, in the user part or in the query."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostinfo = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostinfo}"
    query = "&".join(
        f"{key}=***" if key.lower() in ("password", "sslpassword") else f"{key}={value}"
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


POSTGRESQL_SCHEMES = ("postgresql", "postgres")


def _postgresql_url(raw: str | None) -> str | None:
    """A PostgreSQL URL: every database the gateway reads speaks PostgreSQL (asyncpg)."""
    if raw is None:
        return None
    scheme = urlsplit(raw).scheme.lower()
    if scheme not in POSTGRESQL_SCHEMES:
        given = f"a {scheme}:// URL" if scheme else f"{redacted_url(raw)!r}"
        raise ValueError(
            f"must be a PostgreSQL URL (postgresql://user:password@host:port/database), not {given}"
        )
    return raw


PostgresqlUrl = Annotated[str, AfterValidator(_postgresql_url)]


def _redis_url(raw: str | None) -> str | None:
    return redis_client.checked_url(raw) if raw else None


def _proxies(raw: str) -> str:
    """``BMA_TRUSTED_PROXIES``: addresses and networks, comma-separated, or ``*``."""
    entries = [entry.strip() for entry in raw.split(",") if entry.strip()]
    for entry in entries:
        if entry != "*":
            ipaddress.ip_network(entry, strict=False)  # ValueError names the bad entry
    return ",".join(entries)


# Generation 0's threshold (Python's default: 700); measured in docs/operations.md.
GC_THRESHOLD = 10_000


def _section(name: str, default: str | None = None) -> dict[str, Any]:
    """Where a setting is documented, and its default as the docs say it when the value
    alone would not tell."""
    extra: dict[str, Any] = {"section": name}
    if default is not None:
        extra["default_text"] = default
    return extra


# ---------------------------------------------------------------------------- the settings

# The environment (and config file) being read by ``Settings.from_env``; None otherwise.
_reading: ContextVar[Mapping[str, str] | None] = ContextVar("settings_environment", default=None)

SECTIONS = (
    "general",
    "authentication",
    "audit",
    "limits",
    "trusted documents",
    "caches",
    "rate limits",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        case_sensitive=False,
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
    )

    # --- the sources, and the process
    tax_database_url: PostgresqlUrl = Field(
        min_length=1,
        description="PostgreSQL URL of BMA TAX (schema `tax`: owners, parcels, assessments, "
        "signboards)",
        json_schema_extra=_section("general"),
    )
    registry_database_url: PostgresqlUrl = Field(
        min_length=1,
        description="PostgreSQL URL hosting the district registries as schemas `d1001` … `d1050`",
        json_schema_extra=_section("general"),
    )
    finance_database_url: PostgresqlUrl = Field(
        min_length=1,
        description="PostgreSQL URL of the finance and procurement system (schema `finance`: "
        "budget lines, procurement processes, contracts, suppliers, infrastructure projects)",
        json_schema_extra=_section("general"),
    )
    # District code -> database URL, for district offices that run their own database.
    registry_district_urls: Mapping[str, PostgresqlUrl] = Field(
        default_factory=dict,
        description="a district office that runs its own database, e.g. "
        "`BMA_REGISTRY_DATABASE_URL_1039`; its schema is still `d<code>`",
        json_schema_extra={**_section("general", "—"), "variable": f"{DISTRICT_URL}<code>"},
    )
    traffy_base_url: str = Field(
        min_length=1,
        description="base URL of the Traffy Fondue API; the gateway calls "
        "`/share/teamchadchart/search` and `/share/teamchadchart/stats` under it",
        json_schema_extra=_section("general"),
    )
    host: str = Field(
        "127.0.0.1", description="listen address", json_schema_extra=_section("general")
    )
    port: int = Field(
        8000, ge=1, le=65535, description="listen port", json_schema_extra=_section("general")
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="uvicorn worker processes; with more than one, set `REDIS_URL` so that "
        "rate limits and caches are shared, and note that `/metrics` shows the worker that "
        "answered",
        json_schema_extra=_section("general"),
    )
    startup_wait_seconds: float = Field(
        10.0,
        ge=0,
        le=600,
        description="how long start waits for every source to answer; then the gateway starts "
        "anyway, logging `starting without N source(s): …` (partial results, not no gateway)",
        json_schema_extra=_section("general"),
    )
    gc_threshold: int = Field(
        GC_THRESHOLD,
        ge=0,
        le=1_000_000,
        description="generation-0 threshold of Python's cyclic garbage collector, set as the "
        "gateway starts, when what start-up built is frozen out of the collector's walks "
        "(`gc.freeze`); higher means fewer collections per request for some more memory "
        "(figures in docs/operations.md); `0` leaves the collector as Python sets it",
        json_schema_extra=_section("general"),
    )
    tracing: bool = Field(
        False,
        description="`1`: OpenTelemetry spans — one per `/graphql` request, one per upstream "
        "call attempt (`upstream <source>`), never one per field — exported over OTLP/HTTP to "
        "`OTEL_EXPORTER_OTLP_ENDPOINT` (the standard `OTEL_*` variables apply); needs "
        "`pip install 'bma-gateway[otel]'`",
        json_schema_extra=_section("general"),
    )
    drain_seconds: float = Field(
        5.0,
        ge=0,
        le=600,
        description="on SIGTERM, first this long with `/readyz` answering 503 `draining` while "
        "requests are still served, so the load balancer takes the replica out of rotation "
        "before it stops accepting (a closing listener resets connections still waiting to be "
        "accepted); then the grace period below. Single-worker processes (one per container); "
        "with `BMA_WORKERS` > 1 uvicorn's supervisor stops the workers without a drain",
        json_schema_extra=_section("general"),
    )
    shutdown_grace_seconds: float = Field(
        30.0,
        gt=0,
        le=600,
        description="on SIGTERM: stop accepting, let in-flight requests finish for this long, "
        "then commit the audit queue and close the pools",
        json_schema_extra=_section("general"),
    )
    upstream_timeout: float = Field(
        5.0,
        gt=0,
        le=300,
        description="seconds one upstream call may take, connecting included",
        json_schema_extra=_section("general"),
    )
    upstream_retries: int = Field(
        2,
        ge=0,
        le=5,
        description="extra attempts of a read whose source was unavailable (refused, reset, "
        "HTTP 5xx), after a jittered backoff (0.05 s base, capped at 1 s); a timeout is never "
        "retried",
        json_schema_extra=_section("general"),
    )
    upstream_concurrency: int = Field(
        20,
        ge=1,
        le=1000,
        description="calls in flight per source (the tax database, each district registry, "
        "Traffy); further calls queue while the calls ahead of them keep ending (under load "
        "answers come later, not as errors), and fail as `UPSTREAM_TIMEOUT` without reaching "
        "the source when none has ended for the source's timeout (it is stuck)",
        json_schema_extra=_section("general"),
    )
    breaker_failures: int = Field(
        5,
        ge=1,
        le=1000,
        description="consecutive failures of a source that open its circuit breaker: calls "
        'then fail at once (`UPSTREAM_UNAVAILABLE`, "circuit open") without reaching it',
        json_schema_extra=_section("general"),
    )
    breaker_reset_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="how long a breaker stays open before one probe call is let through; "
        "success closes it, failure opens it again",
        json_schema_extra=_section("general"),
    )
    db_pool_max: int = Field(
        10,
        ge=1,
        le=500,
        description="connections per PostgreSQL pool; district sources on the same URL share "
        "one pool",
        json_schema_extra=_section("general"),
    )
    pgbouncer: PgBouncerMode = Field(
        "off",
        description="`transaction` when the gateway reaches PostgreSQL through PgBouncer in "
        "transaction pooling mode: no prepared statement outlives its transaction and no "
        "session state is kept (the audit writer takes its role per transaction). `off`: "
        "direct connections, or PgBouncer in session mode. Not detected: PgBouncer does not "
        "tell a client it is there",
        json_schema_extra=_section("general"),
    )
    default_page_size: int = Field(
        20,
        ge=1,
        description="page size when a list field has no `first`; at most `BMA_MAX_PAGE_SIZE`",
        json_schema_extra=_section("general"),
    )
    max_page_size: int = Field(
        1000,
        ge=1,
        description="largest `first` accepted, for every audience (an audience's own "
        "`max_page_size` can only lower it); above it `PAGE_SIZE_EXCEEDED`",
        json_schema_extra=_section("general"),
    )
    max_body_bytes: int = Field(
        1_000_000,
        ge=1024,
        description="largest request body for every audience (anonymous callers: 131072 by "
        "default, see Operation limits); above it HTTP 413 `PAYLOAD_TOO_LARGE`",
        json_schema_extra=_section("general"),
    )
    max_batch: int = Field(
        10,
        ge=1,
        le=1000,
        description="operations in one batched POST (a JSON array), for every audience unless "
        "lowered per audience; above it `BATCH_TOO_LARGE`",
        json_schema_extra=_section("general"),
    )
    trusted_proxies: Annotated[str, AfterValidator(_proxies)] = Field(
        "",
        description="the proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` name the "
        "client (rate-limit buckets, the audit log's client address): addresses or networks, "
        "comma-separated (`10.0.0.5,10.1.0.0/16`), or `*` for any peer (only where nothing but "
        "the proxy can reach the gateway); empty trusts no proxy: the client is the TCP peer",
        json_schema_extra=_section("general", "— (none)"),
    )
    graphiql: bool = Field(
        True,
        description="serve GraphiQL to browsers at `GET /graphql`",
        json_schema_extra=_section("general"),
    )
    policy_file: str = Field(
        "",
        description="the access policy; the gateway refuses to start if it leaves a schema "
        "field unclassified, names a field the schema lacks, or classifies a non-nullable "
        "field above public",
        json_schema_extra=_section("general", "the shipped `policies/policy.toml`"),
    )
    catalog_file: str = Field(
        "",
        description="the open-data catalogue; the gateway refuses to start if a dataset lacks "
        "the metadata GD-Catalog requires or a resource reads a field that is not open data, "
        "naming the dataset and the field",
        json_schema_extra=_section("general", "the shipped `policies/catalog.toml`"),
    )
    public_base_url: Annotated[str, AfterValidator(_base_url)] = Field(
        "",
        description="the address people and harvesters reach the gateway at (`https://data."
        "bangkok.go.th` or with a path, `https://host/gateway`), written in the absolute links "
        "of the published metadata (DCAT); empty: each request's own scheme, host and root "
        "path (behind a proxy, set this unless the proxy passes `Host` on and "
        "`BMA_TRUSTED_PROXIES` trusts its `X-Forwarded-Proto`)",
        json_schema_extra=_section("general", "— (the request's)"),
    )
    policy_mode: Literal["filter", "reject"] = Field(
        "filter",
        description="`filter`: a denied field answers `null` with a `FORBIDDEN` (or "
        "`PURPOSE_REQUIRED`) error; `reject`: an operation reaching any denied field is "
        "refused whole (HTTP 403) before any upstream call",
        json_schema_extra=_section("general"),
    )
    compiled_execution: bool = Field(
        True,
        description="`true`: each planned operation is compiled once into code made for it "
        "(gateway/execution/compiler.py) and run by it; `false`: every operation runs on "
        "graphql-core's generic executor, the reference the compiled code is tested against. "
        "Operations the compiler does not cover run on the reference either way, counted in "
        '`bma_executions_total{path="reference"}`',
        json_schema_extra=_section("general"),
    )

    # --- authentication
    gateway_database_url: PostgresqlUrl | None = Field(
        None,
        description="PostgreSQL URL of the gateway's own database; API keys live in its schema "
        "`gateway`, created at start if missing",
        json_schema_extra=_section("authentication", "— (API keys off)"),
    )
    api_key_cache_seconds: float = Field(
        5.0,
        ge=0,
        le=60,
        description="how long a replica trusts what it read about an API key; a revocation "
        "takes effect within this time",
        json_schema_extra=_section("authentication"),
    )
    jwt_audience: str = Field(
        DEFAULT_AUDIENCE,
        description="the `aud` every token must carry, exactly (a list of audiences is refused)",
        json_schema_extra=_section("authentication"),
    )
    jwt_leeway: int = Field(
        30,
        ge=0,
        le=MAX_LEEWAY_SECONDS,
        description="seconds of clock skew tolerated on `exp`, `nbf` and `iat`",
        json_schema_extra=_section("authentication"),
    )
    trusted_issuers: Annotated[
        tuple[TrustedIssuer, ...],
        NoDecode,
        BeforeValidator(_json(list, "list of objects")),
        AfterValidator(_one_per_issuer),
    ] = Field(
        (),
        description="JSON list of identity providers whose tokens are accepted, see below",
        json_schema_extra=_section("authentication", "`[]`"),
    )
    issuer_key_file: Annotated[Path | None, AfterValidator(_expanded)] = Field(
        None,
        description="PEM file of the embedded issuer's ES256 keys; created with a first key if "
        "missing (mode 0600). When set, the issuer `bma-gateway-embedded` is trusted (up to "
        "`secret`) and its JWKS served at `/.well-known/jwks.json`",
        json_schema_extra=_section("authentication", "— (embedded issuer off)"),
    )

    # --- audit
    audit_database_url: PostgresqlUrl | None = Field(
        None,
        description="PostgreSQL URL of the audit store (schema `audit`, created by `bma-gateway "
        "audit init`, or at first start by a superuser login); the login must be able to `SET "
        "ROLE bma_audit_writer`, checked at start",
        json_schema_extra=_section("audit", "`BMA_GATEWAY_DATABASE_URL`"),
    )
    audit_key_file: Annotated[Path | None, AfterValidator(_existing_file)] = Field(
        None,
        description="the chain's HMAC key: a file of at least 32 random bytes in hex, the same "
        "for every replica; must exist at start (`bma-gateway audit keygen PATH` writes one)",
        json_schema_extra=_section("audit", "— (restricted data off)"),
    )
    audit_batch_max: int = Field(
        256,
        ge=1,
        le=10_000,
        description="most records committed in one transaction",
        json_schema_extra=_section("audit"),
    )
    audit_queue_max: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="records waiting for a commit; when full, restricted operations are "
        "refused with `AUDIT_UNAVAILABLE`",
        json_schema_extra=_section("audit"),
    )
    audit_timeout: float = Field(
        5.0,
        gt=0,
        le=60,
        description="seconds for one audit store call (connecting, committing); a batch of "
        "records not committed within twice this is refused, so a request waits at most four "
        "times this (the batch ahead of it, then its own)",
        json_schema_extra=_section("audit"),
    )
    audit_checkpoint_key_file: Annotated[
        Path | None, AfterValidator(partial(_existing_file, made_by="audit checkpoint-keygen"))
    ] = Field(
        None,
        description="Ed25519 private key (PEM) that signs checkpoints of the chain's head; keep "
        "it where the database's owner cannot read it (`bma-gateway audit checkpoint-keygen PATH` "
        "writes one, and `PATH.pub` to verify with)",
        json_schema_extra=_section("audit", "— (checkpoints off)"),
    )
    audit_checkpoint_file: Annotated[Path | None, AfterValidator(_expanded)] = Field(
        None,
        description="file the signed checkpoints are appended to (one JSON line each), on storage "
        "the database's owner cannot rewrite; they go to the JSON log stream either way",
        json_schema_extra=_section("audit", "— (log stream only)"),
    )
    audit_checkpoint_interval: float = Field(
        300.0,
        ge=1,
        le=86_400,
        description="seconds between checkpoints (a head that has not moved is not signed "
        "again); one more is written at shutdown",
        json_schema_extra=_section("audit"),
    )

    # --- operation limits
    operation_limits: Annotated[
        AudienceLimits, NoDecode, BeforeValidator(_json(dict, "object of audiences"))
    ] = Field(
        AudienceLimits(),
        description="JSON object per audience overriding some limits, e.g. "
        '`{"anonymous": {"max_depth": 8, "introspection": false}, "agency": {"max_cost": '
        "500000}}`; audiences and keys not given keep their defaults; `null` for `max_batch`, "
        "`max_page_size` or `max_body_bytes` means the gateway-wide `BMA_MAX_*` value, which "
        "an audience's value can only lower. An unknown audience or key, or a malformed "
        "value, stops the gateway naming it",
        json_schema_extra=_section("limits", "the table below"),
    )

    # --- trusted documents
    trusted_documents: Annotated[TrustedModes, NoDecode, BeforeValidator(_trusted_modes)] = Field(
        TrustedModes(),
        description="which documents run, per audience: `off` (sent in full, as always; a "
        "hash alone answers `PERSISTED_QUERY_NOT_SUPPORTED`), `allow` (registered documents "
        "and automatically persisted ones run by hash, without being parsed or validated "
        "again; documents sent in full run as always) or `require` (registered documents "
        "only, by hash or in full; anything else answers `DOCUMENT_NOT_TRUSTED` before it is "
        'parsed). One mode for every audience, or a JSON object, e.g. `{"anonymous": '
        '"require", "app": "require", "partner": "allow"}`; audiences not given keep `off`. '
        "`require` needs `BMA_GATEWAY_DATABASE_URL`, where the registered documents are",
        json_schema_extra=_section("trusted documents", "`off` for every audience"),
    )
    trusted_documents_cache_seconds: float = Field(
        5.0,
        ge=0,
        le=300,
        description="how long a replica trusts what it read about a registered document's "
        "hash; a removal (`bma-gateway documents remove`) takes effect within this time",
        json_schema_extra=_section("trusted documents"),
    )

    # --- caches
    redis_url: Annotated[str | None, AfterValidator(_redis_url)] = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "redis_url"),
        description="Redis shared by the replicas for caches (and rate limits): "
        "`redis://host:port/db`, `rediss://` (TLS), `unix:///path/to/socket?db=0`, or, through "
        "Redis Sentinel, `redis+sentinel://[:password@]host:26379[,host2:26379]/master-name/db` "
        "(the password is the master's; each new connection asks the Sentinels for the current "
        "master). If Redis fails, restarts or fails over, each process falls back to memory for "
        "5 s at a time, with one warning per outage and a line when it answers again; no "
        "request fails",
        json_schema_extra={**_section("caches", "— (memory)"), "variable": "REDIS_URL"},
    )
    cache_ttls: Annotated[Mapping[str, float], NoDecode, BeforeValidator(_cache_ttls)] = Field(
        default_factory=lambda: dict(DEFAULT_TTLS),
        description="JSON object of seconds an entry stays fresh, per cache; `0` turns a cache "
        "off. Names not given keep their default",
        json_schema_extra=_section("caches", "see below"),
    )
    cache_stale_seconds: float = Field(
        600.0,
        ge=0,
        le=CACHE_TTL_MAX,
        description="how long past its TTL an entry may stand in for an upstream that fails "
        "(stale-if-error; the response says so in `extensions.stale`)",
        json_schema_extra=_section("caches"),
    )

    # --- rate limits
    rate_limits: Annotated[RateLimits | None, NoDecode, BeforeValidator(_rate_limits)] = Field(
        RateLimits(),
        description="`off` (no rate limiting), or a JSON object per audience, e.g. "
        '`{"anonymous": {"rate": 2, "burst": 10}, "agency": null}`: `rate` requests a second '
        "(0.001–1000000), `burst` requests in a row (1–1000000); `null` makes an audience "
        "unlimited; audiences and keys not given keep their defaults",
        json_schema_extra=_section(
            "rate limits",
            "anonymous 5/s burst 20, app 20/s burst 60, partner 50/s burst 100, agency 100/s "
            "burst 200",
        ),
    )

    def __init__(self, **values: Any) -> None:
        # Keywords only: BaseSettings would take positional values as its own options.
        super().__init__(**values)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.default_page_size > self.max_page_size:
            raise ValueError("BMA_DEFAULT_PAGE_SIZE must not exceed BMA_MAX_PAGE_SIZE")
        if self.trusted_documents.any_require and not self.gateway_database_url:
            raise ValueError(
                "BMA_TRUSTED_DOCUMENTS `require` needs BMA_GATEWAY_DATABASE_URL, where the "
                "registered documents are"
            )
        if self.issuer_key_file and any(t.issuer == EMBEDDED_ISSUER for t in self.trusted_issuers):
            raise ValueError(
                f"BMA_TRUSTED_ISSUERS must not name {EMBEDDED_ISSUER!r}: it is the embedded "
                "issuer (BMA_ISSUER_KEY_FILE)"
            )
        return self

    @property
    def audit_store_url(self) -> str | None:
        return self.audit_database_url or self.gateway_database_url

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments only, unless ``from_env`` is reading an environment."""
        environment = _reading.get()
        if environment is None:
            return (init_settings,)
        source = EnvSettingsSource(settings_cls)
        source.env_vars = {name.lower(): value for name, value in environment.items()}
        return (init_settings, source)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings of ``env`` (default: the process's environment), over those of
        ``BMA_CONFIG_FILE`` if it names one; ``ConfigError`` names every bad one."""
        given = dict(os.environ if env is None else env)
        config_file = given.get("BMA_CONFIG_FILE", "").strip()
        if config_file:
            given = {**read_config_file(Path(config_file)), **given}
        # Empty means unset, as in a shell: `BMA_X=` keeps the default.
        values = {name: value.strip() for name, value in given.items() if value.strip()}
        token = _reading.set(values)
        try:
            return cls(registry_district_urls=_district_urls(values))
        except ValidationError as exc:
            raise ConfigError(list(problems(exc))) from None
        finally:
            _reading.reset(token)

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings (for worker processes)."""
        env: dict[str, str] = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if name == "registry_district_urls":
                env.update({f"{DISTRICT_URL}{code}": url for code, url in value.items()})
            else:
                env[variable(name, field)] = _env_text(name, field, value)
        return env


def _env_text(name: str, field: FieldInfo, value: Any) -> str:
    if value is None:
        return "off" if name == "rate_limits" else ""
    if name == "operation_limits":
        changed = value.changes()  # only what differs from the defaults
        return json.dumps(changed, sort_keys=True) if changed else ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str | int | float | Path):
        return str(value)
    return json.dumps(TypeAdapter(type(value)).dump_python(value, mode="json"))


def _district_urls(env: Mapping[str, str]) -> dict[str, str]:
    return {
        d.code: env[DISTRICT_URL + d.code] for d in all_districts() if DISTRICT_URL + d.code in env
    }


def variable(name: str, field: FieldInfo) -> str:
    """The environment variable of a setting."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("variable"), str):
        return str(extra["variable"])
    return PREFIX + name.upper()


def read_config_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (``#`` comments, blank lines, optional quotes around the value):
    the same variables as the environment. A line that is not one names its place."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError([f"BMA_CONFIG_FILE: cannot read {str(path)!r}: {exc.strerror}"]) from None
    values: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key, sep, value = text.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not (key.startswith((PREFIX, "OTEL_")) or key == "REDIS_URL"):
            raise ConfigError(
                [f"BMA_CONFIG_FILE {path}:{number}: expected BMA_*=value, REDIS_URL=… or OTEL_*=…"]
            )
        if key == "BMA_CONFIG_FILE":
            raise ConfigError([f"BMA_CONFIG_FILE {path}:{number}: a file cannot name another"])
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


# ---------------------------------------------------------------------------- the messages


def problems(error: ValidationError) -> Iterator[str]:
    """One line per bad setting, beginning with its variable (and the place inside a JSON
    value, e.g. ``BMA_RATE_LIMITS.app.burst``)."""
    fields = Settings.model_fields
    for e in error.errors():
        loc = e["loc"]
        if not loc:  # the settings as a whole (_consistent)
            yield _plain(e["msg"])
            continue
        name = str(loc[0])
        found = [(n, f) for n, f in fields.items() if name in (n, variable(n, f))]
        where = variable(*found[0]) if found else name
        if name == "registry_district_urls" and len(loc) > 1:  # one variable per district
            where, loc = f"{DISTRICT_URL}{loc[1]}", loc[1:]
        where += "".join(f".{part}" for part in loc[1:])
        declared = _declared(found[0][1], loc[1:]) if found else None
        yield f"{where} {_what(e, declared)}"


def _declared(field: FieldInfo, path: tuple[Any, ...]) -> FieldInfo | None:
    """The declaration of the value at ``path`` inside a setting (a field of a nested
    dataclass), for its bounds; None where the path leaves declared fields."""
    for part in path:
        nested = None
        for kind in _types_in(field.annotation):
            nested = getattr(kind, "__pydantic_fields__", {}).get(part)
            if nested is not None:
                break
        if nested is None:
            return None
        field = nested
    return field


def _types_in(annotation: Any) -> Iterator[Any]:
    yield annotation
    for argument in get_args(annotation):
        yield from _types_in(argument)


def _what(e: Any, field: FieldInfo | None) -> str:
    kind, given = e["type"], e.get("input")
    if kind == "missing":
        return "is required (see docs/configuration.md)"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"must be a whole number, got {given!r}"
    if kind in ("float_parsing", "float_type", "finite_number"):
        return f"must be a number, got {given!r}"
    if kind in ("bool_parsing", "bool_type"):
        return f"must be 1 or 0 (true or false), got {given!r}"
    if kind == "literal_error":
        return f"must be one of {e['ctx']['expected']}, got {given!r}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"must be {bounds(field) if field else _ctx_bounds(e)}, got {given!r}"
    if kind in ("dataclass_type", "model_type", "dict_type"):
        return "must be a JSON object"
    if kind in ("tuple_type", "list_type"):
        return "must be a JSON list"
    if kind == "string_too_short":
        return "must not be empty"
    return _plain(e["msg"])


def bounds(field: FieldInfo) -> str:
    """The range a declared number must lie in, as the messages and the docs say it:
    ``1..65535``, ``0..600``, ``more than 0, at most 300``, ``at least 1024``."""
    low = high = None
    open_low = False
    for constraint in field.metadata:
        if getattr(constraint, "ge", None) is not None:
            low = constraint.ge
        if getattr(constraint, "gt", None) is not None:
            low, open_low = constraint.gt, True
        if getattr(constraint, "le", None) is not None:
            high = constraint.le
    if low is not None and high is not None and not open_low:
        return f"{_number(low)}..{_number(high)}"
    parts = []
    if low is not None:
        parts.append(f"more than {_number(low)}" if open_low else f"at least {_number(low)}")
    if high is not None:
        parts.append(f"at most {_number(high)}")
    return ", ".join(parts)


def _ctx_bounds(e: Any) -> str:
    ctx = e.get("ctx", {})
    words = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}
    return ", ".join(f"{w} {_number(ctx[k])}" for k, w in words.items() if k in ctx)


def _number(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def _plain(message: str) -> str:
    return message.removeprefix("Value error, ")
