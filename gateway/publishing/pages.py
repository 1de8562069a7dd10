"""The catalogue for people: server-rendered pages in Thai and English.

``/catalog`` lists the datasets, searchable (``?q=``: every word must appear in a title, the
notes or a tag) and filtered by publishing organisation (``?organization=``), with plain HTML
forms: no script runs anywhere. ``/catalog/<dataset>`` shows its thai-gdc metadata, its
classification (computed from the policy), each resource's data dictionary, download links,
the CKAN and DCAT documents and a "try it in GraphiQL" link with the resource's operation
filled in; its Schema.org ``Dataset`` JSON-LD is embedded for search engines.

The templates and the style sheet ship inside the package, so the pages work on a closed
network; the pages' Content-Security-Policy lets them load this origin's style sheet and
nothing else (the JSON-LD block is data, which browsers never run).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from gateway.publishing.dictionary import Entry
from gateway.publishing.publication import Publication
from policies.catalog import Dataset, Organisation, Resource

HERE = Path(__file__).parent
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "style-src 'self'",
        "img-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",  # the search form
        "frame-ancestors 'none'",
    )
)
MEDIA_TYPES = {
    "csv": "text/csv",
    "json": "application/json",
    "jsonl": "application/jsonl",
    "geojson": "application/geo+json",
}
BUDDHIST_ERA_OFFSET = 543  # GD-Catalog writes years in the Buddhist era
# Every dataset of the BMA is about Bangkok; thai-gdc's geo_coverage says at what level.
BANGKOK = {
    "@type": "Place",
    "name": "กรุงเทพมหานคร / Bangkok",
    "address": {"@type": "PostalAddress", "addressRegion": "Bangkok", "addressCountry": "TH"},
}
# thai-gdc's fields, in GD-Catalog's order, with their Thai and English labels.
METADATA_LABELS = (
    ("organisation", "หน่วยงานเจ้าของข้อมูล", "Publisher"),
    ("data_type", "ประเภทชุดข้อมูล", "Data type"),
    ("objective", "วัตถุประสงค์", "Objective"),
    ("update_frequency", "ความถี่ในการปรับปรุงข้อมูล", "Update frequency"),
    ("geo_coverage", "ขอบเขตเชิงภูมิศาสตร์", "Geographic coverage"),
    ("data_source", "แหล่งที่มา", "Data source"),
    ("data_format", "รูปแบบการจัดเก็บข้อมูล", "Data format"),
    ("data_category", "หมวดหมู่ข้อมูลตามธรรมาภิบาลข้อมูล", "Data category"),
    ("data_classification", "ชั้นความลับของข้อมูล", "Classification"),
    ("license_id", "สัญญาอนุญาต", "Licence"),
    ("accessible_condition", "เงื่อนไขในการเข้าถึงข้อมูล", "Access conditions"),
    ("allow_harvest", "อนุญาตให้ GD-Catalog เก็บเกี่ยว", "Harvest allowed"),
    ("first_year_of_data", "ปีข้อมูลที่เริ่มต้น", "First year of data"),
    ("last_year_of_data", "ปีข้อมูลที่สิ้นสุด", "Last year of data"),
    ("created_date", "วันที่สร้างชุดข้อมูล", "Created"),
    ("last_updated_date", "วันที่ปรับปรุงข้อมูลล่าสุด", "Last updated"),
    ("maintainer", "ผู้ติดต่อ", "Maintainer"),
    ("maintainer_email", "อีเมลผู้ติดต่อ", "Maintainer's e-mail"),
    ("tag_string", "คำสำคัญ", "Tags"),
)


class DatasetId(Convertor[str]):
    """A CKAN package name (lowercase letters, digits, ``-`` and ``_``): no dot, so
    ``/catalog/<dataset>.jsonld`` is never taken for a page, whatever the routes' order."""

    regex = "[a-z0-9_-]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("dataset_id", DatasetId())


@dataclass(frozen=True)
class Field:
    key: str  # thai-gdc's name
    label_th: str
    label_en: str
    value: str


@dataclass(frozen=True)
class Download:
    format: str
    url: str


@dataclass(frozen=True)
class ResourceView:
    resource: Resource
    downloads: list[Download]
    dictionary: list[Entry]
    graphiql: str
    ckan: str


class Pages:
    def __init__(self, publication: Publication) -> None:
        self.publication = publication
        self.catalog = publication.catalog
        environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,  # every value is escaped unless a template says otherwise
            undefined=jinja2.StrictUndefined,
        )
        self.templates = Jinja2Templates(env=environment)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/catalog", self.index, methods=["GET"], name="catalog"),
            Route(
                "/catalog/{dataset:dataset_id}",
                self.dataset,
                methods=["GET"],
                name="catalog_dataset",
            ),
            Mount(
                "/catalog/static",
                StaticFiles(directory=HERE / "static"),
                name="catalog_static",
            ),
        ]

    async def index(self, request: Request) -> Response:
        query = request.query_params.get("q", "").strip()
        organisation = request.query_params.get("organization", "")
        found = search(self.catalog.datasets.values(), query, organisation)
        counts = Counter(d.organisation for d in self.catalog.datasets.values())
        return self._page(
            request,
            "catalog.html",
            {
                "datasets": found,
                "total": len(self.catalog.datasets),
                "query": query,
                "organisation": organisation,
                "organisations": [(o, counts[o.id]) for o in self.catalog.organisations.values()],
                "organisation_of": self.catalog.organisations,
            },
        )

    async def dataset(self, request: Request) -> Response:
        dataset = self.catalog.datasets.get(request.path_params["dataset"])
        if dataset is None:
            return self._page(
                request, "not_found.html", {"dataset": request.path_params["dataset"]}, 404
            )
        organisation = self.catalog.organisations[dataset.organisation]
        return self._page(
            request,
            "dataset.html",
            {
                "dataset": dataset,
                "organisation": organisation,
                "classification": self.publication.data_classification(dataset),
                "metadata": metadata(dataset, organisation, self.publication),
                "resources": [self._resource_view(dataset, r) for r in dataset.resources],
                "links": links(dataset),
                "jsonld": schema_org(dataset, organisation, self.publication, _base(request)),
            },
        )

    def _resource_view(self, dataset: Dataset, resource: Resource) -> ResourceView:
        return ResourceView(
            resource=resource,
            downloads=[Download(f, download_path(dataset, resource, f)) for f in resource.formats],
            dictionary=self.publication.dictionary(resource),
            graphiql=graphiql_path(resource),
            ckan=f"/api/3/action/resource_show?id={quote(resource.id, safe='')}",
        )

    def _page(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        return self.templates.TemplateResponse(
            request,
            name,
            context,
            status_code=status,
            headers={"content-security-policy": CONTENT_SECURITY_POLICY},
        )


def search(datasets: Any, query: str, organisation: str = "") -> list[Dataset]:
    """The datasets of ``organisation`` (any, when empty) whose titles, notes or tags hold
    every word of ``query``, ignoring case."""
    words = query.casefold().split()
    return [
        d
        for d in datasets
        if (not organisation or d.organisation == organisation)
        and all(word in _searchable(d) for word in words)
    ]


def _searchable(dataset: Dataset) -> str:
    return "\n".join(
        (dataset.title_th, dataset.title_en, dataset.notes_th, dataset.notes_en, *dataset.tags)
    ).casefold()


def metadata(dataset: Dataset, organisation: Organisation, publication: Publication) -> list[Field]:
    """thai-gdc's fields of ``dataset`` as GD-Catalog shows them, then its extras."""
    values = {
        "organisation": f"{organisation.title_th} / {organisation.title_en}",
        "update_frequency": f"{dataset.update_frequency_interval} {dataset.update_frequency_unit}",
        "data_format": ", ".join(f.upper() for f in dataset.data_format),
        "data_classification": publication.data_classification(dataset),
        "allow_harvest": "ใช่ / yes" if dataset.allow_harvest else "ไม่ / no",
        "tag_string": ", ".join(dataset.tags),
    }
    fields = [
        Field(key, th, en, values.get(key, str(getattr(dataset, key, ""))))
        for key, th, en in METADATA_LABELS
    ]
    return fields + [Field(k, k, k, v) for k, v in dataset.extras.items()]


def links(dataset: Dataset) -> dict[str, str]:
    name = quote(dataset.id, safe="")
    return {
        "ckan": f"/api/3/action/package_show?id={name}",
        "jsonld": f"/catalog/{name}.jsonld",
        "ttl": f"/catalog/{name}.ttl",
    }


def download_path(dataset: Dataset, resource: Resource, fmt: str) -> str:
    return f"/download/{quote(dataset.id, safe='')}/{quote(resource.name, safe='')}.{fmt}"


def graphiql_path(resource: Resource) -> str:
    """GraphiQL with the resource's operation in its editor."""
    return f"/graphql?query={quote(resource.query.strip(), safe='')}"


def schema_org(
    dataset: Dataset, organisation: Organisation, publication: Publication, base: str
) -> dict[str, Any]:
    """The dataset as a Schema.org ``Dataset`` (what search engines read)."""
    publisher = {
        "@type": "Organization",
        "name": organisation.title_th,
        "alternateName": organisation.title_en,
        **({"email": organisation.email} if organisation.email else {}),
        "url": f"{base}/catalog?organization={quote(organisation.id, safe='')}",
    }
    return {
        "@context": "https://schema.org/",
        "@type": "Dataset",
        "@id": f"{base}/catalog/{dataset.id}",
        "url": f"{base}/catalog/{dataset.id}",
        "identifier": dataset.id,
        "name": dataset.title_th,
        "alternateName": dataset.title_en,
        "description": f"{dataset.notes_th}\n\n{dataset.notes_en}",
        "inLanguage": ["th", "en"],
        "keywords": list(dataset.tags),
        "license": {"@type": "CreativeWork", "name": dataset.license_id},
        "conditionsOfAccess": dataset.accessible_condition,
        "isAccessibleForFree": True,
        "creator": publisher,
        "publisher": publisher,
        "spatialCoverage": BANGKOK,
        "temporalCoverage": temporal_coverage(dataset),
        "dateCreated": dataset.created_date.isoformat(),
        "dateModified": dataset.last_updated_date.isoformat(),
        "variableMeasured": sorted(
            {e.column for r in dataset.resources for e in publication.dictionary(r)}
        ),
        "distribution": [
            {
                "@type": "DataDownload",
                "name": f"{resource.title_en} ({fmt.upper()})",
                "encodingFormat": MEDIA_TYPES[fmt],
                "contentUrl": base + download_path(dataset, resource, fmt),
            }
            for resource in dataset.resources
            for fmt in resource.formats
        ]
        + [
            {
                "@type": "DataDownload",
                "name": link.title_en,
                "encodingFormat": link.media_type,
                "contentUrl": base + link.path,
            }
            for link in dataset.links
        ],
    }


def temporal_coverage(dataset: Dataset) -> str:
    """The years of data as an ISO 8601 interval of Gregorian years ("2022/2026")."""
    years = [_gregorian(dataset.first_year_of_data), _gregorian(dataset.last_year_of_data)]
    return "/".join(years)


def _gregorian(year: str) -> str:
    match = re.fullmatch(r"\s*(\d{4})\s*", year)
    if match is None:
        return year.strip()
    value = int(match.group(1))
    return str(value - BUDDHIST_ERA_OFFSET if value > 2400 else value)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")
