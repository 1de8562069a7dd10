"""The rate limit of each audience: ``burst`` requests in a row, then ``rate`` a second.

``BMA_RATE_LIMITS`` is unset for the defaults, ``off`` for no rate limiting, or a JSON object
overriding some audiences, e.g. ``{"anonymous": {"rate": 2, "burst": 10}, "agency": null}``:
a missing audience or key keeps its default, ``null`` is unlimited.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, Field, StrictFloat, StrictInt, model_validator
from pydantic.dataclasses import dataclass

from gateway.limits.config import onto_defaults
from policies.principal import AudienceKind

MIN_RATE = 0.001  # one request per ~17 minutes
MAX_RATE = 1_000_000.0
MAX_BURST = 1_000_000


@dataclass(config=ConfigDict(frozen=True))
class RateLimit:
    """``burst`` requests at once, then ``rate`` a second."""

    rate: StrictFloat = Field(ge=MIN_RATE, le=MAX_RATE)  # tokens added per second
    burst: StrictInt = Field(ge=1, le=MAX_BURST)  # bucket size: the most requests in a row

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - {"rate", "burst"})
            if unknown:
                raise ValueError(f"unknown keys: {', '.join(unknown)} (rate, burst)")
        return data

    @property
    def window(self) -> int:
        """Seconds for an empty bucket to fill: the ``w`` of ``RateLimit-Policy``."""
        return max(1, math.ceil(self.burst / self.rate))


DEFAULTS: Mapping[str, RateLimit | None] = {
    "anonymous": RateLimit(rate=5.0, burst=20),
    "app": RateLimit(rate=20.0, burst=60),
    "partner": RateLimit(rate=50.0, burst=100),
    "agency": RateLimit(rate=100.0, burst=200),
}


@dataclass(config=ConfigDict(frozen=True))
class RateLimits:
    """The limit of each audience; ``None`` is unlimited. Given values merge onto the
    audience's defaults."""

    anonymous: RateLimit | None = DEFAULTS["anonymous"]
    app: RateLimit | None = DEFAULTS["app"]
    partner: RateLimit | None = DEFAULTS["partner"]
    agency: RateLimit | None = DEFAULTS["agency"]

    @model_validator(mode="before")
    @classmethod
    def _onto_defaults(cls, data: Any) -> Any:
        return onto_defaults(data, DEFAULTS)

    def of(self, kind: AudienceKind) -> RateLimit | None:
        limit: RateLimit | None = getattr(self, kind)
        return limit
