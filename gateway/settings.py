"""Settings of the gateway process, read from the environment and checked at start.

Every variable is listed, with its default, in docs/configuration.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.cache import DEFAULT_TTLS
from connectors.districts import all_districts
from gateway.limits import AudienceLimits
from gateway.rate_limit import RateLimits, parse_rate_limits
from policies.principal import Level

EMBEDDED_ISSUER = "bma-gateway-embedded"
DEFAULT_AUDIENCE = "bma-gateway"
MAX_LEEWAY_SECONDS = 60
# Only public-key algorithms: a JWKS is public, so an HMAC "key" from it would be a secret
# everyone knows. "none" is never accepted.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class TrustedIssuer:
    """An identity provider whose tokens the gateway accepts."""

    issuer: str  # the exact `iss` of its tokens
    jwks: str  # an https/http URL or a file path of its JSON Web Key Set
    algorithms: tuple[str, ...] = ("ES256",)
    # The highest clearance its tokens may claim; anything above is lowered to this.
    max_clearance: Level = Level.PUBLIC

    @property
    def jwks_is_url(self) -> bool:
        return self.jwks.startswith(("https://", "http://"))

    def to_json(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks": self.jwks,
            "algorithms": list(self.algorithms),
            "max_clearance": self.max_clearance.label,
        }


@dataclass(frozen=True)
class Settings:
    tax_database_url: str
    registry_database_url: str
    traffy_base_url: str
    # District code -> database URL, for district offices that run their own database.
    registry_district_urls: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # Lifecycle: how long start waits for every source to answer (then starts with what is
    # up, naming what is not), and how long SIGTERM lets in-flight requests finish.
    startup_wait_seconds: float = 10.0
    tracing: bool = False  # OpenTelemetry spans per request and upstream call (gateway/tracing.py)
    shutdown_grace_seconds: float = 30.0
    drain_seconds: float = 5.0  # after SIGTERM, /readyz fails and requests are still served
    upstream_timeout: float = 5.0
    # Upstream resilience per source (connectors/resilience.py).
    upstream_retries: int = 2
    upstream_concurrency: int = 20
    breaker_failures: int = 5
    breaker_reset_seconds: float = 10.0
    db_pool_max: int = 10
    default_page_size: int = 20
    max_page_size: int = 1000
    max_body_bytes: int = 1_000_000
    max_batch: int = 10
    graphiql: bool = True
    policy_mode: str = "filter"  # denied fields: "filter" (null + error) or "reject"
    policy_file: str = ""  # empty: the policy shipped in policies/policy.toml
    # The gateway's own database (API keys); None: API keys are not accepted.
    gateway_database_url: str | None = None
    api_key_cache_seconds: float = 5.0
    jwt_audience: str = DEFAULT_AUDIENCE
    jwt_leeway: int = 30
    trusted_issuers: tuple[TrustedIssuer, ...] = ()
    # The embedded issuer's signing keys (PEM); None disables the embedded issuer.
    issuer_key_file: Path | None = None
    # The audit store (default: the gateway's own database) and the key its chain is HMACed
    # with. Without both, restricted data is refused with AUDIT_UNAVAILABLE.
    audit_database_url: str | None = None
    audit_key_file: Path | None = None
    audit_batch_max: int = 256
    audit_queue_max: int = 10_000
    audit_timeout: float = 5.0
    # Caches (connectors/cache.py): Redis shared by replicas, else each process's memory.
    redis_url: str | None = None
    cache_ttls: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TTLS))
    cache_stale_seconds: float = 600.0
    # Operation limits per audience (gateway/limits.py), overridden by BMA_OPERATION_LIMITS.
    operation_limits: AudienceLimits = AudienceLimits()
    # Requests per principal (gateway/rate_limit.py), in Redis when redis_url is set;
    # BMA_RATE_LIMITS overrides them, None (`off`) turns rate limiting off.
    rate_limits: RateLimits | None = RateLimits()

    @property
    def audit_store_url(self) -> str | None:
        return self.audit_database_url or self.gateway_database_url

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from the environment, over those of ``BMA_CONFIG_FILE`` if it names
        one (the environment wins, so one variable can override a shared file)."""
        env = os.environ if env is None else env
        if env.get("BMA_CONFIG_FILE", "").strip():
            env = {**read_config_file(Path(env["BMA_CONFIG_FILE"].strip())), **env}
        reader = _Reader(env)
        settings = cls(
            tax_database_url=reader.required("BMA_TAX_DATABASE_URL"),
            registry_database_url=reader.required("BMA_REGISTRY_DATABASE_URL"),
            traffy_base_url=reader.required("BMA_TRAFFY_BASE_URL"),
            registry_district_urls={
                d.code: env[f"BMA_REGISTRY_DATABASE_URL_{d.code}"]
                for d in all_districts()
                if env.get(f"BMA_REGISTRY_DATABASE_URL_{d.code}")
            },
            host=env.get("BMA_HOST", cls.host),
            port=reader.integer("BMA_PORT", cls.port, 1, 65535),
            workers=reader.integer("BMA_WORKERS", cls.workers, 1, 64),
            tracing=reader.flag("BMA_TRACING", cls.tracing),
            startup_wait_seconds=reader.number(
                "BMA_STARTUP_WAIT_SECONDS", cls.startup_wait_seconds, high=600, allow_zero=True
            ),
            drain_seconds=reader.number(
                "BMA_DRAIN_SECONDS", cls.drain_seconds, high=600, allow_zero=True
            ),
            shutdown_grace_seconds=reader.number(
                "BMA_SHUTDOWN_GRACE_SECONDS", cls.shutdown_grace_seconds, high=600
            ),
            upstream_timeout=reader.number("BMA_UPSTREAM_TIMEOUT", cls.upstream_timeout),
            upstream_retries=reader.integer("BMA_UPSTREAM_RETRIES", cls.upstream_retries, 0, 5),
            upstream_concurrency=reader.integer(
                "BMA_UPSTREAM_CONCURRENCY", cls.upstream_concurrency, 1, 1000
            ),
            breaker_failures=reader.integer("BMA_BREAKER_FAILURES", cls.breaker_failures, 1, 1000),
            breaker_reset_seconds=reader.number(
                "BMA_BREAKER_RESET_SECONDS", cls.breaker_reset_seconds, high=3600
            ),
            db_pool_max=reader.integer("BMA_DB_POOL_MAX", cls.db_pool_max, 1, 500),
            default_page_size=reader.integer("BMA_DEFAULT_PAGE_SIZE", cls.default_page_size, 1),
            max_page_size=reader.integer("BMA_MAX_PAGE_SIZE", cls.max_page_size, 1),
            max_body_bytes=reader.integer("BMA_MAX_BODY_BYTES", cls.max_body_bytes, 1024),
            max_batch=reader.integer("BMA_MAX_BATCH", cls.max_batch, 1, 1000),
            graphiql=reader.flag("BMA_GRAPHIQL", cls.graphiql),
            policy_mode=reader.choice("BMA_POLICY_MODE", cls.policy_mode, ("filter", "reject")),
            policy_file=env.get("BMA_POLICY_FILE", cls.policy_file),
            gateway_database_url=reader.optional("BMA_GATEWAY_DATABASE_URL"),
            api_key_cache_seconds=reader.number(
                "BMA_API_KEY_CACHE_SECONDS", cls.api_key_cache_seconds, high=60, allow_zero=True
            ),
            jwt_audience=reader.optional("BMA_JWT_AUDIENCE") or cls.jwt_audience,
            jwt_leeway=reader.integer("BMA_JWT_LEEWAY", cls.jwt_leeway, 0, MAX_LEEWAY_SECONDS),
            trusted_issuers=_trusted_issuers(env.get("BMA_TRUSTED_ISSUERS", "")),
            issuer_key_file=_path_or_none(reader.optional("BMA_ISSUER_KEY_FILE")),
            audit_database_url=reader.optional("BMA_AUDIT_DATABASE_URL"),
            audit_key_file=_path_or_none(reader.optional("BMA_AUDIT_KEY_FILE")),
            audit_batch_max=reader.integer("BMA_AUDIT_BATCH_MAX", cls.audit_batch_max, 1, 10_000),
            audit_queue_max=reader.integer(
                "BMA_AUDIT_QUEUE_MAX", cls.audit_queue_max, 1, 1_000_000
            ),
            audit_timeout=reader.number("BMA_AUDIT_TIMEOUT", cls.audit_timeout, high=60),
            redis_url=reader.optional("REDIS_URL"),
            cache_ttls=_cache_ttls(env.get("BMA_CACHE_TTLS", "")),
            cache_stale_seconds=reader.number(
                "BMA_CACHE_STALE_SECONDS", cls.cache_stale_seconds, high=86_400, allow_zero=True
            ),
            operation_limits=AudienceLimits.from_env(env),
            rate_limits=parse_rate_limits(env.get("BMA_RATE_LIMITS")),
        )
        if settings.audit_key_file and not settings.audit_key_file.is_file():
            raise ConfigError(
                f"BMA_AUDIT_KEY_FILE: no such file {str(settings.audit_key_file)!r} "
                "(create one with `bma-gateway audit keygen PATH`)"
            )
        if settings.default_page_size > settings.max_page_size:
            raise ConfigError("BMA_DEFAULT_PAGE_SIZE must not exceed BMA_MAX_PAGE_SIZE")
        if settings.issuer_key_file and any(
            t.issuer == EMBEDDED_ISSUER for t in settings.trusted_issuers
        ):
            raise ConfigError(
                f"BMA_TRUSTED_ISSUERS must not name {EMBEDDED_ISSUER!r}: it is the embedded "
                "issuer (BMA_ISSUER_KEY_FILE)"
            )
        return settings

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings (for worker processes)."""
        env = {
            "BMA_TAX_DATABASE_URL": self.tax_database_url,
            "BMA_REGISTRY_DATABASE_URL": self.registry_database_url,
            "BMA_TRAFFY_BASE_URL": self.traffy_base_url,
            "BMA_HOST": self.host,
            "BMA_PORT": str(self.port),
            "BMA_WORKERS": str(self.workers),
            "BMA_TRACING": "1" if self.tracing else "0",
            "BMA_STARTUP_WAIT_SECONDS": str(self.startup_wait_seconds),
            "BMA_SHUTDOWN_GRACE_SECONDS": str(self.shutdown_grace_seconds),
            "BMA_DRAIN_SECONDS": str(self.drain_seconds),
            "BMA_UPSTREAM_TIMEOUT": str(self.upstream_timeout),
            "BMA_UPSTREAM_RETRIES": str(self.upstream_retries),
            "BMA_UPSTREAM_CONCURRENCY": str(self.upstream_concurrency),
            "BMA_BREAKER_FAILURES": str(self.breaker_failures),
            "BMA_BREAKER_RESET_SECONDS": str(self.breaker_reset_seconds),
            "BMA_DB_POOL_MAX": str(self.db_pool_max),
            "BMA_DEFAULT_PAGE_SIZE": str(self.default_page_size),
            "BMA_MAX_PAGE_SIZE": str(self.max_page_size),
            "BMA_MAX_BODY_BYTES": str(self.max_body_bytes),
            "BMA_MAX_BATCH": str(self.max_batch),
            "BMA_GRAPHIQL": "1" if self.graphiql else "0",
            "BMA_POLICY_MODE": self.policy_mode,
            "BMA_POLICY_FILE": self.policy_file,
            "BMA_GATEWAY_DATABASE_URL": self.gateway_database_url or "",
            "BMA_API_KEY_CACHE_SECONDS": str(self.api_key_cache_seconds),
            "BMA_JWT_AUDIENCE": self.jwt_audience,
            "BMA_JWT_LEEWAY": str(self.jwt_leeway),
            "BMA_TRUSTED_ISSUERS": json.dumps([t.to_json() for t in self.trusted_issuers]),
            "BMA_ISSUER_KEY_FILE": str(self.issuer_key_file or ""),
            "BMA_AUDIT_DATABASE_URL": self.audit_database_url or "",
            "BMA_AUDIT_KEY_FILE": str(self.audit_key_file or ""),
            "BMA_AUDIT_BATCH_MAX": str(self.audit_batch_max),
            "BMA_AUDIT_QUEUE_MAX": str(self.audit_queue_max),
            "BMA_AUDIT_TIMEOUT": str(self.audit_timeout),
            "REDIS_URL": self.redis_url or "",
            "BMA_CACHE_TTLS": json.dumps(dict(self.cache_ttls)),
            "BMA_CACHE_STALE_SECONDS": str(self.cache_stale_seconds),
            "BMA_OPERATION_LIMITS": self.operation_limits.to_env(),
            "BMA_RATE_LIMITS": self.rate_limits.to_env() if self.rate_limits else "off",
        }
        env.update(
            {f"BMA_REGISTRY_DATABASE_URL_{c}": u for c, u in self.registry_district_urls.items()}
        )
        return env


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def required(self, name: str) -> str:
        value = self.env.get(name, "").strip()
        if not value:
            raise ConfigError(f"{name} is required (see docs/configuration.md)")
        return value

    def integer(self, name: str, default: int, low: int = 0, high: int | None = None) -> int:
        raw = self.env.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise ConfigError(f"{name} must be {bound}, got {value}")
        return value

    def optional(self, name: str) -> str | None:
        return self.env.get(name, "").strip() or None

    def number(
        self, name: str, default: float, high: float = 300, *, allow_zero: bool = False
    ) -> float:
        raw = self.env.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
        if not (0 <= value if allow_zero else 0 < value) or value > high:
            raise ConfigError(f"{name} must be between 0 and {high:g} seconds, got {value}")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self.env.get(name)
        if raw is None or raw == "":
            return default
        if raw not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
        return raw

    def flag(self, name: str, default: bool) -> bool:
        raw = self.env.get(name)
        if raw is None or raw == "":
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


def read_config_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (``#`` comments, blank lines, optional quotes around the value):
    the same variables as the environment. A line that is not one names its place."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"BMA_CONFIG_FILE: cannot read {str(path)!r}: {exc.strerror}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key, sep, value = text.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not (key.startswith(("BMA_", "OTEL_")) or key == "REDIS_URL"):
            raise ConfigError(
                f"BMA_CONFIG_FILE {path}:{number}: expected BMA_*=value, REDIS_URL=… or OTEL_*=…"
            )
        if key == "BMA_CONFIG_FILE":
            raise ConfigError(f"BMA_CONFIG_FILE {path}:{number}: a file cannot name another")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def _cache_ttls(raw: str) -> dict[str, float]:
    """BMA_CACHE_TTLS: a JSON object of seconds per cache name, merged onto the defaults."""
    ttls = dict(DEFAULT_TTLS)
    if not raw.strip():
        return ttls
    try:
        given = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"BMA_CACHE_TTLS is not valid JSON: {exc}") from None
    if not isinstance(given, dict):
        raise ConfigError("BMA_CACHE_TTLS must be a JSON object of seconds per cache")
    for name, seconds in given.items():
        if name not in DEFAULT_TTLS:
            raise ConfigError(
                f"BMA_CACHE_TTLS names an unknown cache {name!r} (known: {', '.join(DEFAULT_TTLS)})"
            )
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds <= 86_400
        ):
            raise ConfigError(f"BMA_CACHE_TTLS[{name!r}] must be seconds between 0 and 86400")
        ttls[name] = float(seconds)
    return ttls


def _path_or_none(raw: str | None) -> Path | None:
    return Path(raw).expanduser() if raw else None


_ISSUER_KEYS = {"issuer", "jwks", "algorithms", "max_clearance"}


def _trusted_issuers(raw: str) -> tuple[TrustedIssuer, ...]:
    """BMA_TRUSTED_ISSUERS: a JSON list of {"issuer", "jwks", "algorithms", "max_clearance"}."""
    if not raw.strip():
        return ()
    try:
        entries = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"BMA_TRUSTED_ISSUERS is not valid JSON: {exc}") from None
    if not isinstance(entries, list):
        raise ConfigError("BMA_TRUSTED_ISSUERS must be a JSON list of objects")
    issuers = tuple(_trusted_issuer(i, entry) for i, entry in enumerate(entries))
    names = [t.issuer for t in issuers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"BMA_TRUSTED_ISSUERS names an issuer twice: {', '.join(duplicates)}")
    return issuers


def _trusted_issuer(index: int, entry: Any) -> TrustedIssuer:
    where = f"BMA_TRUSTED_ISSUERS[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be an object")
    unknown = set(entry) - _ISSUER_KEYS
    if unknown:
        raise ConfigError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    issuer, jwks = entry.get("issuer"), entry.get("jwks")
    if not isinstance(issuer, str) or not issuer.strip():
        raise ConfigError(f"{where}.issuer must be a non-empty string (the tokens' `iss`)")
    if not isinstance(jwks, str) or not jwks.strip():
        raise ConfigError(f"{where}.jwks must be a URL or the path of a JWKS file")
    trusted = TrustedIssuer(
        issuer=issuer,
        jwks=jwks.strip(),
        algorithms=_algorithms(where, entry.get("algorithms", ["ES256"])),
        max_clearance=_level(where, entry.get("max_clearance", "public")),
    )
    if not trusted.jwks_is_url and not Path(trusted.jwks).expanduser().is_file():
        raise ConfigError(f"{where}.jwks: no such file {trusted.jwks!r}")
    return trusted


def _algorithms(where: str, raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(a, str) for a in raw):
        raise ConfigError(f"{where}.algorithms must be a non-empty list of names")
    refused = [a for a in raw if a not in ASYMMETRIC_ALGORITHMS]
    if refused:
        allowed = ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
        raise ConfigError(
            f"{where}.algorithms: {', '.join(refused)} not allowed (public-key only: {allowed})"
        )
    return tuple(raw)


def _level(where: str, raw: Any) -> Level:
    if not isinstance(raw, str):
        raise ConfigError(f"{where}.max_clearance must be public, internal, confidential or secret")
    try:
        return Level.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{where}.max_clearance: {exc}") from None
