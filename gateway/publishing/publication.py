"""What every publishing module works from: the catalogue, checked against the policy and the
schema once at start, with each dataset's computed classification, each resource's data
dictionary, and the tables."""

from __future__ import annotations

from dataclasses import dataclass, field

from graphql import GraphQLSchema
from starlette.requests import Request

from gateway.publishing.dictionary import Entry, data_dictionary
from gateway.publishing.tables import Tables
from policies.catalog import CLASSIFICATION, Catalog, Dataset, Resource
from policies.model import Policy
from policies.principal import Level


@dataclass
class Publication:
    catalog: Catalog
    policy: Policy
    schema: GraphQLSchema
    tables: Tables
    # BMA_PUBLIC_BASE_URL: where the gateway is reached; empty: each request's own base.
    public_base_url: str = ""
    _levels: dict[str, Level] = field(default_factory=dict, repr=False)
    _dictionaries: dict[str, list[Entry]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # Refuses a resource reaching anything but open data, naming dataset and field.
        self.catalog.check(self.policy, self.schema)
        for dataset in self.catalog.datasets.values():
            self._levels[dataset.id] = self.catalog.classification(
                dataset, self.policy, self.schema
            )
        for _dataset, resource in self.catalog.resources():
            self._dictionaries[resource.id] = data_dictionary(resource, self.schema)

    def level(self, dataset: Dataset) -> Level:
        return self._levels[dataset.id]

    def data_classification(self, dataset: Dataset) -> str:
        """thai-gdc's ``data_classification``, from the policy's tiers (never hand-written)."""
        return CLASSIFICATION[self.level(dataset)]

    def dictionary(self, resource: Resource) -> list[Entry]:
        return self._dictionaries[resource.id]

    def base_url(self, request: Request) -> str:
        """The absolute address links in published documents start from, without a trailing
        slash: the configured public one, else the request's scheme, host and root path."""
        return self.public_base_url or str(request.base_url).rstrip("/")


def requester(request: Request, default: str) -> tuple[str, str | None]:
    """The request id the gateway's middleware gave ``request`` (``default`` outside it) and
    the client's address: what a publication's reads of the graph are logged under."""
    request_id = str(request.scope.get("bma.request_id", default))
    return request_id, request.client.host if request.client else None
