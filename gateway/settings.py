"""Settings of the gateway process, read from the environment and checked at start.

Every variable is listed, with its default, in docs/configuration.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from connectors.districts import all_districts


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


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
    upstream_timeout: float = 5.0
    db_pool_max: int = 10
    default_page_size: int = 20
    max_page_size: int = 1000
    max_body_bytes: int = 1_000_000
    max_batch: int = 10
    graphiql: bool = True
    expose_restricted: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
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
            upstream_timeout=reader.number("BMA_UPSTREAM_TIMEOUT", cls.upstream_timeout),
            db_pool_max=reader.integer("BMA_DB_POOL_MAX", cls.db_pool_max, 1, 500),
            default_page_size=reader.integer("BMA_DEFAULT_PAGE_SIZE", cls.default_page_size, 1),
            max_page_size=reader.integer("BMA_MAX_PAGE_SIZE", cls.max_page_size, 1),
            max_body_bytes=reader.integer("BMA_MAX_BODY_BYTES", cls.max_body_bytes, 1024),
            max_batch=reader.integer("BMA_MAX_BATCH", cls.max_batch, 1, 1000),
            graphiql=reader.flag("BMA_GRAPHIQL", cls.graphiql),
            expose_restricted=reader.flag("BMA_EXPOSE_RESTRICTED", cls.expose_restricted),
        )
        if settings.default_page_size > settings.max_page_size:
            raise ConfigError("BMA_DEFAULT_PAGE_SIZE must not exceed BMA_MAX_PAGE_SIZE")
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
            "BMA_UPSTREAM_TIMEOUT": str(self.upstream_timeout),
            "BMA_DB_POOL_MAX": str(self.db_pool_max),
            "BMA_DEFAULT_PAGE_SIZE": str(self.default_page_size),
            "BMA_MAX_PAGE_SIZE": str(self.max_page_size),
            "BMA_MAX_BODY_BYTES": str(self.max_body_bytes),
            "BMA_MAX_BATCH": str(self.max_batch),
            "BMA_GRAPHIQL": "1" if self.graphiql else "0",
            "BMA_EXPOSE_RESTRICTED": "1" if self.expose_restricted else "0",
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

    def number(self, name: str, default: float) -> float:
        raw = self.env.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
        if not 0 < value <= 300:
            raise ConfigError(f"{name} must be between 0 and 300 seconds, got {value}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.env.get(name)
        if raw is None or raw == "":
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")
