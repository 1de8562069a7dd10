"""The catalogue as linked data: DCAT-AP 3, in JSON-LD and in Turtle.

One RDF graph is built from the catalogue and serialised in either syntax, so the two
documents always say the same thing: ``/catalog.jsonld`` and ``/catalog.ttl`` hold the
``dcat:Catalog`` with every dataset, ``/catalog/<dataset>.jsonld`` and ``.ttl`` one dataset
(the part of the catalogue's graph about it). European-style harvesters (the EU data portal's,
ckanext-dcat's) read these; GD-Catalog harvests the CKAN API instead.

Every IRI is absolute, under the gateway's public base URL (``BMA_PUBLIC_BASE_URL``, else the
request's): the catalogue is ``<base>/catalog#catalog``, a dataset ``<base>/catalog/<id>#dataset``
(its landing page is ``<base>/catalog/<id>``), a distribution ``<base>/catalog/<id>#<resource>.<format>``,
its download ``<base>/download/<id>/<resource>.<format>``; a link of the dataset (its file in a
transparency standard) ``<base>/catalog/<id>#link<path>``, downloaded at ``<base><path>``. Controlled values come from the EU
vocabularies DCAT-AP names (frequency, file type, access right, data theme, language); a
value with no fitting term is left out rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import quote

from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS, XSD
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway import errors
from gateway.publishing.publication import Publication
from policies.catalog import Dataset, Link, Organisation, Resource
from policies.principal import Level

ADMS = Namespace("http://www.w3.org/ns/adms#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
EU = "http://publications.europa.eu/resource/authority/"
IANA = "http://www.iana.org/assignments/media-types/"

# The prefixes the JSON-LD document is compacted with (and Turtle written with).
CONTEXT = {
    "dcat": str(DCAT),
    "dct": str(DCTERMS),
    "foaf": str(FOAF),
    "vcard": str(VCARD),
    "adms": str(ADMS),
    "skos": str(SKOS),
    "rdfs": str(RDFS),
    "xsd": str(XSD),
}
MEDIA_TYPES = {"jsonld": "application/ld+json", "ttl": "text/turtle; charset=utf-8"}
SYNTAX = {"jsonld": "json-ld", "ttl": "turtle"}

CATALOG_TITLE = {
    "th": "แคตตาล็อกข้อมูลเปิดกรุงเทพมหานคร",
    "en": "Bangkok Metropolitan Administration open-data catalogue",
}
CATALOG_DESCRIPTION = {
    "th": "ชุดข้อมูลเปิดของกรุงเทพมหานครที่เผยแพร่ผ่าน BMA Data Gateway: ภาษีที่ดินและป้าย "
    "เรื่องร้องเรียน Traffy Fondue และทะเบียนของสำนักงานเขต เฉพาะข้อมูลที่นโยบายกำหนดให้เปิดเผย",
    "en": "The Bangkok Metropolitan Administration's open datasets published through the BMA "
    "Data Gateway: land-and-building and signboard tax, Traffy Fondue complaints and the "
    "district offices' registries, holding only what the access policy calls open data.",
}
BMA_NAME = {"th": "กรุงเทพมหานคร", "en": "Bangkok Metropolitan Administration"}
BMA_HOMEPAGE = URIRef("https://www.bangkok.go.th/")
LOCAL_AUTHORITY = URIRef("http://purl.org/adms/publishertype/LocalAuthority")
# Bangkok in GeoNames: every dataset covers the city (or parts of it).
BANGKOK = URIRef("https://sws.geonames.org/1609350/")
LANGUAGES = (URIRef(EU + "language/THA"), URIRef(EU + "language/ENG"))
THEMES = URIRef(EU + "data-theme")
# Every dataset is a city's: "Regions and cities".
THEME = URIRef(EU + "data-theme/REGI")

# thai-gdc (update_frequency_unit, update_frequency_interval) -> EU frequency term.
FREQUENCY = {
    ("ชั่วโมง", 1): "HOURLY",
    ("วัน", 1): "DAILY",
    ("วัน", 7): "WEEKLY",
    ("สัปดาห์", 1): "WEEKLY",
    ("สัปดาห์", 2): "BIWEEKLY",
    ("เดือน", 1): "MONTHLY",
    ("เดือน", 2): "BIMONTHLY",
    ("เดือน", 3): "QUARTERLY",
    ("เดือน", 6): "ANNUAL_2",
    ("เดือน", 12): "ANNUAL",
    ("ไตรมาส", 1): "QUARTERLY",
    ("ไตรมาส", 2): "ANNUAL_2",
    ("ครึ่งปี", 1): "ANNUAL_2",
    ("ปี", 1): "ANNUAL",
    ("ปี", 2): "BIENNIAL",
    ("ปี", 3): "TRIENNIAL",
}
# Units whose term does not depend on the interval.
FREQUENCY_UNIT = {
    "ตามเวลาจริง": "UPDATE_CONT",
    "ไม่มีการปรับปรุงหลังจากการจัดเก็บข้อมูล": "NEVER",
    "ไม่ทราบ": "UNKNOWN",
}
ACCESS_RIGHTS = {
    Level.PUBLIC: "PUBLIC",
    Level.INTERNAL: "RESTRICTED",
    Level.CONFIDENTIAL: "NON_PUBLIC",
    Level.SECRET: "NON_PUBLIC",
}
# A download format's EU file type, IANA media type and label; JSON Lines has neither a
# file type nor a registered media type, so it names the specification it conforms to.
FORMATS: dict[str, tuple[str | None, str | None, str]] = {
    "csv": ("CSV", "text/csv", "CSV"),
    "json": ("JSON", "application/json", "JSON"),
    "jsonl": (None, None, "JSON Lines"),
    "geojson": ("GEOJSON", "application/geo+json", "GeoJSON"),
}
JSON_LINES = URIRef("https://jsonlines.org/")
GRAPHQL_SPEC = URIRef("https://spec.graphql.org/")
CKAN_API_DOCS = URIRef("https://docs.ckan.org/en/latest/api/")
# Licences with a canonical document (CKAN's own licence list gives these addresses); any
# other is described by its name alone.
LICENSES = {
    "Creative Commons Attributions": "http://www.opendefinition.org/licenses/cc-by",
    "Creative Commons Attribution Share-Alike": "http://www.opendefinition.org/licenses/cc-by-sa",
    "Creative Commons Non-Commercial (Any)": "http://creativecommons.org/licenses/by-nc/2.0/",
    "GNU Free Documentation License": "http://www.opendefinition.org/licenses/gfdl",
}
THAI = re.compile("[\u0e00-\u0e7f]")


def routes(publication: Publication) -> list[BaseRoute]:
    """The four documents. Mounted before the catalogue's HTML pages: ``/catalog/{dataset}``
    would otherwise take ``/catalog/<id>.ttl`` as a dataset called ``<id>.ttl``."""
    document = _documents(publication)

    def endpoint(kind: str, whole: bool) -> Callable[[Request], Response]:
        def serve(request: Request) -> Response:
            name = None if whole else request.path_params["dataset"]
            if name is not None and name not in publication.catalog.datasets:
                return errors.NotFound(f"no dataset {name!r} in the catalogue").response()
            body = document(publication.base_url(request), name, kind)
            return Response(body, media_type=MEDIA_TYPES[kind])

        return serve

    paths = [(f"/catalog.{kind}", kind, True) for kind in SYNTAX] + [
        (f"/catalog/{{dataset}}.{kind}", kind, False) for kind in SYNTAX
    ]
    served: list[BaseRoute] = [
        Route(path, endpoint(kind, whole), methods=["GET"]) for path, kind, whole in paths
    ]
    return served


def _documents(publication: Publication) -> Callable[[str, str | None, str], bytes]:
    """The serialised documents, kept for the few base URLs the gateway is reached at (the
    catalogue does not change while it runs)."""

    @lru_cache(maxsize=32)
    def document(base: str, dataset: str | None, kind: str) -> bytes:
        if dataset is None:
            graph = catalog_graph(publication, base)
        else:
            graph = dataset_graph(publication, publication.catalog.datasets[dataset], base)
        if kind == "jsonld":
            text = graph.serialize(format="json-ld", context=CONTEXT, auto_compact=True)
        else:
            text = graph.serialize(format="turtle")
        return text.encode()

    return document


def new_graph() -> Graph:
    graph = Graph()
    for prefix, namespace in CONTEXT.items():
        graph.bind(prefix, namespace)
    return graph


def catalog_graph(publication: Publication, base: str) -> Graph:
    """The ``dcat:Catalog``, its publisher and services, and every dataset."""
    graph = new_graph()
    catalog = URIRef(f"{base}/catalog#catalog")
    datasets = list(publication.catalog.datasets.values())
    graph.add((catalog, RDF.type, DCAT.Catalog))
    _texts(graph, catalog, DCTERMS.title, CATALOG_TITLE)
    _texts(graph, catalog, DCTERMS.description, CATALOG_DESCRIPTION)
    graph.add((catalog, DCTERMS.publisher, _bma(graph, base)))
    graph.add((catalog, FOAF.homepage, URIRef(f"{base}/catalog")))
    for language in LANGUAGES:
        graph.add((catalog, DCTERMS.language, language))
    graph.add((catalog, DCTERMS.spatial, _bangkok(graph)))
    graph.add((catalog, DCAT.themeTaxonomy, THEMES))
    if datasets:
        modified = max(d.last_updated_date for d in datasets)
        graph.add((catalog, DCTERMS.modified, Literal(modified, datatype=XSD.date)))
    for service in _services(graph, base, datasets):
        graph.add((catalog, DCAT.service, service))
    for dataset in datasets:
        graph.add((catalog, DCAT.dataset, _dataset(graph, publication, dataset, base)))
    return graph


def dataset_graph(publication: Publication, dataset: Dataset, base: str) -> Graph:
    """One dataset's document: what the catalogue's graph says about it, its distributions,
    publisher and contact, and the services serving it."""
    graph = new_graph()
    _services(graph, base, [dataset])
    _dataset(graph, publication, dataset, base)
    return graph


def dataset_iri(base: str, dataset: Dataset) -> URIRef:
    return URIRef(f"{base}/catalog/{dataset.id}#dataset")


def download_url(base: str, dataset: Dataset, resource: Resource, fmt: str) -> URIRef:
    return URIRef(f"{base}/download/{dataset.id}/{resource.name}.{fmt}")


def _dataset(graph: Graph, publication: Publication, dataset: Dataset, base: str) -> URIRef:
    page = f"{base}/catalog/{dataset.id}"
    node = dataset_iri(base, dataset)
    graph.add((node, RDF.type, DCAT.Dataset))
    graph.add((node, DCTERMS.identifier, Literal(dataset.id)))
    _texts(graph, node, DCTERMS.title, {"th": dataset.title_th, "en": dataset.title_en})
    _texts(graph, node, DCTERMS.description, {"th": dataset.notes_th, "en": dataset.notes_en})
    organisation = publication.catalog.organisations[dataset.organisation]
    graph.add((node, DCTERMS.publisher, _organisation(graph, base, organisation)))
    graph.add((node, DCAT.contactPoint, _contact(graph, page, dataset)))
    for tag in dataset.tags:
        graph.add((node, DCAT.keyword, Literal(tag, lang="th" if THAI.search(tag) else "en")))
    graph.add((node, DCAT.theme, THEME))
    frequency = accrual_periodicity(dataset)
    if frequency is not None:
        graph.add((node, DCTERMS.accrualPeriodicity, frequency))
    graph.add((node, DCTERMS.spatial, _bangkok(graph)))
    period = _period(graph, page, dataset)
    if period is not None:
        graph.add((node, DCTERMS.temporal, period))
    graph.add((node, DCTERMS.issued, Literal(dataset.created_date, datatype=XSD.date)))
    graph.add((node, DCTERMS.modified, Literal(dataset.last_updated_date, datatype=XSD.date)))
    license_ = _license(graph, base, dataset.license_id)
    graph.add((node, DCTERMS.license, license_))
    access = URIRef(EU + "access-right/" + ACCESS_RIGHTS[publication.level(dataset)])
    graph.add((node, DCTERMS.accessRights, access))
    for language in LANGUAGES:
        graph.add((node, DCTERMS.language, language))
    graph.add((node, DCAT.landingPage, URIRef(page)))
    graph.add((URIRef(page), RDF.type, FOAF.Document))
    for resource in dataset.resources:
        for fmt in resource.formats:
            distribution = _download(graph, base, dataset, resource, fmt, license_)
            graph.add((node, DCAT.distribution, distribution))
        graph.add((node, DCAT.distribution, _graphql(graph, base, dataset, resource, license_)))
    for link in dataset.links:
        graph.add((node, DCAT.distribution, _link(graph, base, dataset, link, license_)))
    return node


def accrual_periodicity(dataset: Dataset) -> URIRef | None:
    """The EU frequency term for the dataset's update frequency, if one fits."""
    unit = dataset.update_frequency_unit
    term = FREQUENCY_UNIT.get(unit) or FREQUENCY.get((unit, dataset.update_frequency_interval))
    return URIRef(EU + "frequency/" + term) if term else None


def gregorian_year(buddhist_era: str) -> int | None:
    """A Buddhist-era year (GD-Catalog's ``2565``) as the Gregorian one (2022)."""
    year = buddhist_era.strip()
    return int(year) - 543 if year.isdigit() else None


def _download(
    graph: Graph, base: str, dataset: Dataset, resource: Resource, fmt: str, license_: URIRef
) -> URIRef:
    file_type, media_type, label = FORMATS[fmt]
    node = URIRef(f"{base}/catalog/{dataset.id}#{resource.name}.{fmt}")
    url = download_url(base, dataset, resource, fmt)
    graph.add((node, RDF.type, DCAT.Distribution))
    titles = {"th": f"{resource.title_th} ({label})", "en": f"{resource.title_en} ({label})"}
    _texts(graph, node, DCTERMS.title, titles)
    _describe_resource(graph, node, resource)
    graph.add((node, DCAT.accessURL, url))
    graph.add((node, DCAT.downloadURL, url))
    if media_type is not None:
        graph.add((node, DCAT.mediaType, URIRef(IANA + media_type)))
    if file_type is not None:
        graph.add((node, DCTERMS.format, URIRef(EU + "file-type/" + file_type)))
    else:
        graph.add((node, DCTERMS.conformsTo, JSON_LINES))
    graph.add((node, DCTERMS.license, license_))
    graph.add((node, DCTERMS.modified, Literal(dataset.last_updated_date, datatype=XSD.date)))
    return node


def link_iri(base: str, dataset: Dataset, link: Link) -> URIRef:
    return URIRef(f"{base}/catalog/{dataset.id}#link{link.path}")


def _link(graph: Graph, base: str, dataset: Dataset, link: Link, license_: URIRef) -> URIRef:
    """A file of the dataset in a transparency standard, which it ``dct:conformsTo``."""
    node = link_iri(base, dataset, link)
    url = URIRef(base + link.path)
    graph.add((node, RDF.type, DCAT.Distribution))
    _texts(graph, node, DCTERMS.title, {"th": link.title_th, "en": link.title_en})
    descriptions = {"th": link.description_th, "en": link.description_en}
    _texts(graph, node, DCTERMS.description, descriptions)
    graph.add((node, DCAT.accessURL, url))
    graph.add((node, DCAT.downloadURL, url))
    if "/x-" not in link.media_type:  # an unregistered type has no IANA page
        graph.add((node, DCAT.mediaType, URIRef(IANA + link.media_type)))
    graph.add((node, DCTERMS.format, Literal(link.format)))
    if link.standard:
        graph.add((node, DCTERMS.conformsTo, URIRef(link.standard)))
    graph.add((node, DCTERMS.license, license_))
    graph.add((node, DCTERMS.modified, Literal(dataset.last_updated_date, datatype=XSD.date)))
    return node


def _graphql(
    graph: Graph, base: str, dataset: Dataset, resource: Resource, license_: URIRef
) -> URIRef:
    """The resource as the GraphQL query it is made from, opened in GraphiQL."""
    node = URIRef(f"{base}/catalog/{dataset.id}#{resource.name}.graphql")
    graph.add((node, RDF.type, DCAT.Distribution))
    titles = {"th": f"{resource.title_th} (GraphQL)", "en": f"{resource.title_en} (GraphQL)"}
    _texts(graph, node, DCTERMS.title, titles)
    _describe_resource(graph, node, resource)
    query = quote(resource.query.strip(), safe="")
    graph.add((node, DCAT.accessURL, URIRef(f"{base}/graphql?query={query}")))
    graph.add((node, DCAT.accessService, URIRef(f"{base}/catalog#graphql")))
    graph.add((node, DCTERMS.license, license_))
    return node


def _describe_resource(graph: Graph, node: URIRef, resource: Resource) -> None:
    descriptions = {"th": resource.description_th, "en": resource.description_en}
    _texts(graph, node, DCTERMS.description, descriptions)


def _services(graph: Graph, base: str, datasets: list[Dataset]) -> list[URIRef]:
    """The GraphQL endpoint and the CKAN-compatible API, each serving ``datasets``."""
    services = [
        (
            "graphql",
            {"th": "GraphQL API ของ BMA Data Gateway", "en": "BMA Data Gateway GraphQL API"},
            f"{base}/graphql",
            GRAPHQL_SPEC,
        ),
        (
            "ckan-api",
            {"th": "API แบบ CKAN ของแคตตาล็อก", "en": "The catalogue's CKAN-compatible API"},
            f"{base}/api/3/action/",
            CKAN_API_DOCS,
        ),
    ]
    nodes = []
    for name, titles, endpoint, conforms_to in services:
        node = URIRef(f"{base}/catalog#{name}")
        graph.add((node, RDF.type, DCAT.DataService))
        _texts(graph, node, DCTERMS.title, titles)
        graph.add((node, DCAT.endpointURL, URIRef(endpoint)))
        graph.add((node, DCTERMS.conformsTo, conforms_to))
        graph.add((node, DCTERMS.accessRights, URIRef(EU + "access-right/PUBLIC")))
        for dataset in datasets:
            graph.add((node, DCAT.servesDataset, dataset_iri(base, dataset)))
        nodes.append(node)
    return nodes


def _bma(graph: Graph, base: str) -> URIRef:
    node = URIRef(f"{base}/catalog#bma")
    graph.add((node, RDF.type, FOAF.Agent))
    _texts(graph, node, FOAF.name, BMA_NAME)
    graph.add((node, DCTERMS.type, LOCAL_AUTHORITY))
    graph.add((node, FOAF.homepage, BMA_HOMEPAGE))
    return node


def _organisation(graph: Graph, base: str, organisation: Organisation) -> URIRef:
    node = URIRef(f"{base}/catalog#organisation-{organisation.id}")
    graph.add((node, RDF.type, FOAF.Agent))
    names = {"th": organisation.title_th, "en": organisation.title_en}
    _texts(graph, node, FOAF.name, names)
    graph.add((node, DCTERMS.type, LOCAL_AUTHORITY))
    if organisation.email:
        graph.add((node, FOAF.mbox, URIRef(f"mailto:{organisation.email}")))
    return node


def _contact(graph: Graph, page: str, dataset: Dataset) -> URIRef:
    node = URIRef(f"{page}#contact")
    graph.add((node, RDF.type, VCARD.Kind))
    graph.add((node, VCARD.fn, Literal(dataset.maintainer)))
    graph.add((node, VCARD.hasEmail, URIRef(f"mailto:{dataset.maintainer_email}")))
    return node


def _period(graph: Graph, page: str, dataset: Dataset) -> URIRef | None:
    first = gregorian_year(dataset.first_year_of_data)
    last = gregorian_year(dataset.last_year_of_data)
    if first is None and last is None:
        return None
    node = URIRef(f"{page}#period")
    graph.add((node, RDF.type, DCTERMS.PeriodOfTime))
    if first is not None:
        graph.add((node, DCAT.startDate, Literal(str(first), datatype=XSD.gYear)))
    if last is not None:
        graph.add((node, DCAT.endDate, Literal(str(last), datatype=XSD.gYear)))
    return node


def _bangkok(graph: Graph) -> URIRef:
    graph.add((BANGKOK, RDF.type, DCTERMS.Location))
    _texts(graph, BANGKOK, SKOS.prefLabel, {"th": "กรุงเทพมหานคร", "en": "Bangkok"})
    return BANGKOK


def _license(graph: Graph, base: str, license_id: str) -> URIRef:
    """The licence's canonical document where it has one, else a node naming it."""
    known = LICENSES.get(license_id)
    slug = re.sub(r"[^a-z0-9]+", "-", license_id.lower()).strip("-") or "license"
    node = URIRef(known) if known else URIRef(f"{base}/catalog#license-{slug}")
    graph.add((node, RDF.type, DCTERMS.LicenseDocument))
    graph.add((node, RDFS.label, Literal(license_id)))
    return node


def _texts(graph: Graph, node: URIRef, predicate: URIRef, texts: dict[str, str]) -> None:
    """One language-tagged literal per language that has a text."""
    for language, text in texts.items():
        if text.strip():
            graph.add((node, predicate, Literal(text, lang=language)))
