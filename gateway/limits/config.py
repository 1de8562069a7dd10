"""Operation limits per audience: how much one request may ask.

Each audience (``Principal.kind``) has its own ``OperationLimits``; ``BMA_OPERATION_LIMITS``
overrides the defaults per audience as JSON, each audience's values merged onto its own
defaults: ``{"anonymous": {"max_depth": 8, "introspection": false}, "agency": {"max_cost":
500000}}``. The checks themselves are ``scan`` (tokens), ``shape`` (the parsed document) and
``cost`` (the static cost), in that order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, Field, StrictBool, StrictInt, model_validator
from pydantic.dataclasses import dataclass

from policies.principal import AudienceKind

AUDIENCES: tuple[AudienceKind, ...] = ("anonymous", "app", "partner", "agency")
MAX_DEPTH_CEILING = 100  # graphql-core's parser refuses nesting beyond 200 anyway
VARIABLE_DEPTH = 32  # this schema's deepest input (a filter object) nests 2


@dataclass(config=ConfigDict(frozen=True))
class OperationLimits:
    max_depth: StrictInt = Field(
        ge=1,
        le=MAX_DEPTH_CEILING,
        description="fields on the longest path, through fragments (`{ districts { code } }` "
        "is 2); introspection may always nest 15",
    )
    max_aliases: StrictInt = Field(ge=0, description="aliased fields in the document")
    max_tokens: StrictInt = Field(
        ge=1, description="lexical tokens in the document, and apart, comments"
    )
    max_directives: StrictInt = Field(ge=0, description="directives used in the document")
    max_root_fields: StrictInt = Field(ge=1, description="fields at the root of an operation")
    max_cost: StrictInt = Field(
        ge=1,
        description="static cost: every field 1; a list multiplies what it selects by its "
        "`first` (a connection's `edges` by its `first` or `BMA_DEFAULT_PAGE_SIZE`; other "
        "lists by an assumed size, `districts` 50); a field that reaches an upstream system "
        "adds its upstream work once per parent: 5 a batched lookup, 50 a connection's own "
        "call, a radius search 200 per km² of its bounding box (at most 5000)",
    )
    # Validation grows faster than linearly with spreads side by side (1,000 of them:
    # ~350 ms), so they are capped apart.
    max_fragment_spreads: StrictInt = Field(
        default=100,
        ge=0,
        description="`...` in the document, named and inline fragments (validation time "
        "grows faster than the number of spreads side by side)",
    )
    # None: the gateway-wide setting (BMA_MAX_BATCH, BMA_MAX_PAGE_SIZE, BMA_MAX_BODY_BYTES);
    # a value here can only lower it.
    max_batch: StrictInt | None = Field(
        default=None, ge=1, le=1000, description="operations per batch"
    )
    max_page_size: StrictInt | None = Field(default=None, ge=1, description="largest `first`")
    max_body_bytes: StrictInt | None = Field(
        default=None, ge=1024, description="largest request body"
    )
    max_variable_depth: StrictInt = Field(
        default=VARIABLE_DEPTH,
        ge=1,
        le=MAX_DEPTH_CEILING,
        description="nesting of lists and objects in a variable's value",
    )
    introspection: StrictBool = Field(
        default=True, description="`__schema` and `__type` (`__typename` is always allowed)"
    )
    suggestions: StrictBool = Field(
        default=True, description='"Did you mean …?" in validation and variable errors'
    )

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            known = [f.name for f in dataclasses.fields(cls)]
            for key in data:
                if key not in known:
                    raise ValueError(f"unknown key {key!r} (one of {', '.join(known)})")
        return data

    def batch(self, gateway_max: int) -> int:
        return min(self.max_batch or gateway_max, gateway_max)

    def page_size(self, gateway_max: int) -> int:
        return min(self.max_page_size or gateway_max, gateway_max)

    def body_bytes(self, gateway_max: int) -> int:
        return min(self.max_body_bytes or gateway_max, gateway_max)


# Anonymous callers are anyone on the internet: strictest, and no suggestions (they would
# map the schema for free). Apps, partners and agencies are known by their credentials and
# get more room in that order. Every default leaves room for the operations of the docs,
# tests and benchmarks (tests/limits/test_cost.py checks the docs' against anonymous's), and
# none for upstream fan-out: 100 parcels' 5 km nearby searches cost 510,752 (each fetches up
# to 5,000 complaints), over even the agency's limit; 1,000 complaints x 14 fields, 14,053;
# depth 8; 10 root fields;
# 319 tokens. Validation takes 10-20 µs a field, and more when one selection repeats a field
# or spreads many fragments: 1,000 tokens keep the worst anonymous document (a field repeated
# 490 times, 100 fragments spread side by side) around 30 ms of validation.
DEFAULTS: Mapping[str, OperationLimits] = {
    "anonymous": OperationLimits(
        max_depth=10,
        max_aliases=30,
        max_tokens=1_000,
        max_directives=10,
        max_root_fields=20,
        max_cost=50_000,
        max_fragment_spreads=30,
        max_body_bytes=131_072,
        suggestions=False,
    ),
    "app": OperationLimits(
        max_depth=12,
        max_aliases=50,
        max_tokens=2_000,
        max_directives=20,
        max_root_fields=30,
        max_cost=100_000,
    ),
    "partner": OperationLimits(
        max_depth=15,
        max_aliases=100,
        max_tokens=5_000,
        max_directives=30,
        max_root_fields=40,
        max_cost=200_000,
    ),
    "agency": OperationLimits(
        max_depth=20,
        max_aliases=200,
        max_tokens=10_000,
        max_directives=50,
        max_root_fields=50,
        max_cost=500_000,
    ),
}


def onto_defaults(data: Any, defaults: Mapping[str, Any]) -> Any:
    """Values given per audience (a setting's JSON), each merged onto that audience's default
    (a dataclass; None: nothing to merge onto); an unknown audience is refused by name."""
    if not isinstance(data, Mapping):
        return data
    merged: dict[str, Any] = {}
    for audience, values in data.items():
        if audience not in AUDIENCES:
            raise ValueError(f"unknown audience {audience!r} (one of {', '.join(AUDIENCES)})")
        default = defaults[audience]
        if isinstance(values, Mapping) and default is not None:
            values = {**dataclasses.asdict(default), **values}
        merged[audience] = values
    return merged


@dataclass(config=ConfigDict(frozen=True))
class AudienceLimits:
    """The operation limits of each audience; given values merge onto the audience's defaults."""

    anonymous: OperationLimits = DEFAULTS["anonymous"]
    app: OperationLimits = DEFAULTS["app"]
    partner: OperationLimits = DEFAULTS["partner"]
    agency: OperationLimits = DEFAULTS["agency"]

    @model_validator(mode="before")
    @classmethod
    def _onto_defaults(cls, data: Any) -> Any:
        return onto_defaults(data, DEFAULTS)

    def of(self, kind: str) -> OperationLimits:
        # An unknown kind cannot come from authentication; the strictest is the safe answer.
        limits: OperationLimits = getattr(self, kind) if kind in AUDIENCES else self.anonymous
        return limits

    def changes(self) -> dict[str, dict[str, Any]]:
        """The values that differ from the defaults, by audience (``BMA_OPERATION_LIMITS``)."""
        changed = {
            audience: {
                key: value
                for key, value in dataclasses.asdict(self.of(audience)).items()
                if value != getattr(DEFAULTS[audience], key)
            }
            for audience in AUDIENCES
        }
        return {audience: values for audience, values in changed.items() if values}
