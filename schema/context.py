"""What one GraphQL request carries: the connectors, per-request DataLoaders, limits, and the
errors of partial results (a source failed but the field still answers with the rest)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from graphql import GraphQLError
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from connectors.audit_log import AuditLogConnector
from connectors.base import Record, UpstreamError
from connectors.cache import CacheStore, cached_batch
from connectors.registry import RegistryConnector
from connectors.tax import TaxConnector
from connectors.traffy import ComplaintCounts, NearbyKey, TraffyConnector, near
from policies.principal import ANONYMOUS, Principal

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class Connectors:
    tax: TaxConnector
    registry: RegistryConnector
    traffy: TraffyConnector
    # The gateway's own audit log, read by `accessLog`; None when no audit store is set.
    audit_log: AuditLogConnector | None = None
    # Caches of public upstream answers (connectors/cache.py); None: nothing is cached.
    cache: CacheStore | None = None

    def all(self) -> list[Any]:
        upstream: list[Any] = [self.tax, self.registry, self.traffy]
        return upstream + ([self.audit_log] if self.audit_log else [])


@dataclass(frozen=True)
class Limits:
    default_page_size: int = 20
    max_page_size: int = 1000
    max_radius_m: int = 5000
    max_nearby: int = 100


def _loader(
    fetch: Callable[[list[K]], Awaitable[Mapping[K, V | UpstreamError]]],
    default: Any = None,
    *,
    cache: tuple[CacheStore | None, str] | None = None,
) -> DataLoader[K, V]:
    """A DataLoader over a connector batch method that answers a mapping by key; through the
    named cache when ``cache`` is given (public answers only: see connectors/cache.py)."""

    async def load(keys: list[K]) -> Sequence[V | BaseException]:
        found = await (cached_batch(*cache, fetch, keys) if cache else fetch(keys))
        return [found.get(k, default) for k in keys]

    return DataLoader(load_fn=load)


class Loaders:
    """One DataLoader per batch read; created per request so nothing leaks between users."""

    def __init__(self, c: Connectors) -> None:
        self.parcel: DataLoader[int, Record | None] = _loader(c.tax.parcels_by_ids)
        self.owner: DataLoader[int, Record | None] = _loader(c.tax.owners_by_ids)
        self.assessments: DataLoader[int, list[Record]] = _loader(
            c.tax.assessments_by_parcels, default=[]
        )
        self.parcel_signboards: DataLoader[int, list[Record]] = _loader(
            c.tax.signboards_by_parcels, default=[]
        )
        self.business_signboards: DataLoader[str, list[Record]] = _loader(
            c.tax.signboards_by_businesses, default=[]
        )
        self.revenue: DataLoader[tuple[str, int], Record] = _loader(
            c.tax.revenue, cache=(c.cache, "tax.revenue")
        )
        self.registry_summary: DataLoader[str, Record] = _loader(
            c.registry.summaries, cache=(c.cache, "registry.summaries")
        )
        self.population: DataLoader[str, list[Record]] = _loader(
            c.registry.population, cache=(c.cache, "registry.population")
        )
        self.business: DataLoader[str, Record | None] = _loader(c.registry.businesses_by_numbers)
        self.licences: DataLoader[str, list[Record]] = _loader(
            c.registry.licences_by_numbers, default=[]
        )
        self.complaint: DataLoader[str, Record | None] = _loader(c.traffy.by_ids)
        self.complaint_stats: DataLoader[str, ComplaintCounts] = _loader(
            c.traffy.stats, cache=(c.cache, "traffy.stats")
        )
        # At most 50 points per upstream call: each adds a bbox parameter to the URL.
        self.nearby: DataLoader[NearbyKey, list[Record]] = DataLoader(
            load_fn=lambda keys: near(c.traffy, keys), max_batch_size=50
        )


@dataclass
class RequestContext:
    connectors: Connectors
    limits: Limits
    loaders: Loaders = field(init=False)
    partial_errors: list[GraphQLError] = field(default_factory=list)
    principal: Principal = ANONYMOUS
    request_id: str = ""  # the X-Request-Id answered, recorded in the audit log
    client: str | None = None  # the caller's address, recorded in the audit log

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.connectors)

    def add_partial_error(self, info: Info, error: UpstreamError) -> None:
        """Report a failed source beside a field that still answers with the other sources."""
        self.partial_errors.append(
            GraphQLError(
                f"{error.source} did not answer ({error.reason}); its rows are missing",
                path=info.path.as_list(),
                original_error=error,
            )
        )


def context_of(info: Info) -> RequestContext:
    return info.context
