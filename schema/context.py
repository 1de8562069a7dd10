"""What one GraphQL request carries: the connectors, per-request DataLoaders, limits, and the
errors of partial results (a source failed but the field still answers with the rest)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

from graphql import GraphQLError
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from connectors.audit_log import AuditLogConnector
from connectors.base import Connector, Record, UpstreamError
from connectors.cache import CacheStore, cached_batch
from connectors.finance import FinanceConnector
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
    finance: FinanceConnector
    # The gateway's own audit log, read by `accessLog`; None when no audit store is set.
    audit_log: AuditLogConnector | None = None
    # Caches of public upstream answers (connectors/cache.py); None: nothing is cached.
    cache: CacheStore | None = None

    def all(self) -> list[Connector]:
        upstream: list[Connector] = [self.tax, self.registry, self.traffy, self.finance]
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


def _page_loader(
    fetch: Callable[[list[K]], Awaitable[Mapping[K, V]]],
) -> DataLoader[tuple[K, ...], Mapping[K, V]]:
    """A DataLoader whose key is every key of one page (a tuple): the pages that ask in the
    same turn of the loop are read in one upstream call, and each gets the found records
    by key. One future per page, not one per row."""

    async def load(pages: list[tuple[K, ...]]) -> Sequence[Mapping[K, V]]:
        found = await fetch(list(dict.fromkeys(k for page in pages for k in page)))
        return [found] * len(pages)

    return DataLoader(load_fn=load)


def _no_field(type_name: str, field_name: str) -> bool:
    return False


class Loaders:
    """One DataLoader per batch read; created per request so nothing leaks between users,
    and each only when a resolver first asks for it (most operations use two or three)."""

    def __init__(self, c: Connectors) -> None:
        self._c = c

    @cached_property
    def parcel(self) -> DataLoader[int, Record | None]:
        return _loader(self._c.tax.parcels_by_ids)

    @cached_property
    def owner(self) -> DataLoader[int, Record | None]:
        return _loader(self._c.tax.owners_by_ids)

    @cached_property
    def owners_of_page(self) -> DataLoader[tuple[int, ...], Mapping[int, Record]]:
        return _page_loader(self._c.tax.owners_by_ids)

    @cached_property
    def assessments_of_page(self) -> DataLoader[tuple[int, ...], Mapping[int, list[Record]]]:
        return _page_loader(self._c.tax.assessments_by_parcels)

    @cached_property
    def signboards_of_page(self) -> DataLoader[tuple[int, ...], Mapping[int, list[Record]]]:
        return _page_loader(self._c.tax.signboards_by_parcels)

    @cached_property
    def licences_of_page(self) -> DataLoader[tuple[str, ...], Mapping[str, Any]]:
        return _page_loader(self._c.registry.licences_by_numbers)

    @cached_property
    def business_signboards_of_page(
        self,
    ) -> DataLoader[tuple[str, ...], Mapping[str, list[Record]]]:
        return _page_loader(self._c.tax.signboards_by_businesses)

    @cached_property
    def assessments(self) -> DataLoader[int, list[Record]]:
        return _loader(self._c.tax.assessments_by_parcels, default=[])

    @cached_property
    def parcel_signboards(self) -> DataLoader[int, list[Record]]:
        return _loader(self._c.tax.signboards_by_parcels, default=[])

    @cached_property
    def business_signboards(self) -> DataLoader[str, list[Record]]:
        return _loader(self._c.tax.signboards_by_businesses, default=[])

    @cached_property
    def revenue(self) -> DataLoader[tuple[str, int], Record]:
        return _loader(self._c.tax.revenue, cache=(self._c.cache, "tax.revenue"))

    @cached_property
    def revenue_by_month(self) -> DataLoader[tuple[str, int], list[Record]]:
        return _loader(
            self._c.tax.revenue_by_month, default=[], cache=(self._c.cache, "tax.revenue_by_month")
        )

    @cached_property
    def registry_summary(self) -> DataLoader[str, Record]:
        return _loader(self._c.registry.summaries, cache=(self._c.cache, "registry.summaries"))

    @cached_property
    def population(self) -> DataLoader[str, list[Record]]:
        return _loader(self._c.registry.population, cache=(self._c.cache, "registry.population"))

    @cached_property
    def business(self) -> DataLoader[str, Record | None]:
        return _loader(self._c.registry.businesses_by_numbers)

    @cached_property
    def licences(self) -> DataLoader[str, list[Record]]:
        return _loader(self._c.registry.licences_by_numbers, default=[])

    @cached_property
    def process(self) -> DataLoader[str, Record | None]:
        return _loader(self._c.finance.processes_by_ids)

    @cached_property
    def business_contracts(self) -> DataLoader[str, list[Record]]:
        return _loader(self._c.finance.contracts_by_registrations, default=[])

    @cached_property
    def spending(self) -> DataLoader[tuple[str, int], Record]:
        return _loader(self._c.finance.spending, cache=(self._c.cache, "finance.spending"))

    @cached_property
    def complaint(self) -> DataLoader[str, Record | None]:
        return _loader(self._c.traffy.by_ids)

    @cached_property
    def complaint_stats(self) -> DataLoader[str, ComplaintCounts]:
        return _loader(self._c.traffy.stats, cache=(self._c.cache, "traffy.stats"))

    @cached_property
    def nearby(self) -> DataLoader[NearbyKey, list[Record]]:
        # At most 50 points per upstream call: each adds a bbox parameter to the URL.
        traffy = self._c.traffy
        return DataLoader(load_fn=lambda keys: near(traffy, keys), max_batch_size=50)


@dataclass
class RequestContext:
    connectors: Connectors
    limits: Limits
    loaders: Loaders = field(init=False)
    partial_errors: list[GraphQLError] = field(default_factory=list)
    principal: Principal = ANONYMOUS
    request_id: str = ""  # the X-Request-Id answered, recorded in the audit log
    client: str | None = None  # the caller's address, recorded in the audit log
    # What each list field of the document selects (schema.selection), by its field nodes.
    selections: dict[tuple[int, ...], Any] = field(default_factory=dict)
    # Whether a field's resolver runs in this operation (open, or allowed or masked by its
    # plan): a list loads a related record for its whole page only for such a field, never
    # for one the policy refuses. Without a plan, none: each field loads its own.
    resolves: Callable[[str, str], bool] = _no_field

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
    context: RequestContext = info.context
    return context
