"""The catalogue as DCAT-AP 3, read over HTTP from a running gateway and parsed with rdflib:
the JSON-LD and Turtle documents are one graph, with one dcat:Dataset per dataset of the
catalogue and one distribution per resource and format, each carrying DCAT-AP's mandatory
properties and the catalogue's values. Cases are generated from the catalogue file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.compare import isomorphic
from rdflib.namespace import DCTERMS, FOAF, RDF
from rdflib.term import Node

from gateway.publishing.dcat import (
    EU,
    FORMATS,
    IANA,
    VCARD,
    accrual_periodicity,
    gregorian_year,
)
from gateway.settings import ConfigError, Settings
from policies.catalog import CLASSIFICATION, Dataset, load_catalog
from policies.model import load_policy
from policies.principal import Level
from schema import graphql_schema
from support import REQUIRED_ENV, Gateway, settings_for, start_gateway

# Plain namespaces: pytest's collection probes module attributes, which rdflib's closed
# namespace classes warn about.
DCAT = Namespace("http://www.w3.org/ns/dcat#")
XSD = Namespace("http://www.w3.org/2001/XMLSchema#")
CATALOG = load_catalog()
DATASETS = list(CATALOG.datasets.values())
SYNTAX = {"jsonld": ("json-ld", "application/ld+json"), "ttl": ("turtle", "text/turtle")}


def fetch(gw: Gateway, path: str, headers: dict[str, str] | None = None) -> Graph:
    """The document at ``path``, parsed in the syntax its suffix names."""
    kind = path.rsplit(".", 1)[1]
    syntax, media_type = SYNTAX[kind]
    response = gw.client.get(path, headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == media_type
    return Graph().parse(data=response.content, format=syntax)


@pytest.fixture(scope="module")
def catalog(anonymous: Gateway) -> Graph:
    return fetch(anonymous, "/catalog.ttl")


def one(graph: Graph, subject: Node, predicate: URIRef) -> Node:
    values = list(graph.objects(subject, predicate))
    assert len(values) == 1, (subject, predicate, values)
    return values[0]


def texts(graph: Graph, subject: Node, predicate: URIRef) -> dict[str | None, str]:
    """The language-tagged literals of ``predicate``, by language (one each)."""
    found: dict[str | None, str] = {}
    for value in graph.objects(subject, predicate):
        assert isinstance(value, Literal)
        assert value.language not in found, (subject, predicate, value.language)
        found[value.language] = str(value)
    return found


def dataset_node(base: str, dataset: Dataset) -> URIRef:
    return URIRef(f"{base}/catalog/{dataset.id}#dataset")


def downloads(dataset: Dataset) -> Iterator[tuple[str, str]]:
    for resource in dataset.resources:
        for fmt in resource.formats:
            yield resource.name, fmt


def test_the_json_ld_and_turtle_catalogues_are_one_graph(anonymous: Gateway, catalog: Graph):
    from_json_ld = fetch(anonymous, "/catalog.jsonld")
    assert len(catalog) > 0
    assert isomorphic(from_json_ld, catalog)
    assert list(catalog.subjects(RDF.type, DCAT.Catalog)) == [
        URIRef(f"{anonymous.url}/catalog#catalog")
    ]


def test_one_dcat_dataset_per_dataset_of_the_catalogue(anonymous: Gateway, catalog: Graph):
    expected = {dataset_node(anonymous.url, d) for d in DATASETS}
    assert set(catalog.subjects(RDF.type, DCAT.Dataset)) == expected
    listed = set(catalog.objects(URIRef(f"{anonymous.url}/catalog#catalog"), DCAT.dataset))
    assert listed == expected
    for dataset in DATASETS:
        node = dataset_node(anonymous.url, dataset)
        assert one(catalog, node, DCTERMS.identifier) == Literal(dataset.id)


@pytest.mark.parametrize("dataset", DATASETS, ids=lambda d: d.id)
def test_every_resource_and_format_has_its_distribution(
    anonymous: Gateway, catalog: Graph, dataset: Dataset
):
    base = anonymous.url
    node = dataset_node(base, dataset)
    license_ = one(catalog, node, DCTERMS.license)
    by_download = {
        one(catalog, d, DCAT.downloadURL): d
        for d in catalog.objects(node, DCAT.distribution)
        if (d, DCAT.downloadURL, None) in catalog
    }
    expected = {
        URIRef(f"{base}/download/{dataset.id}/{name}.{fmt}"): fmt
        for name, fmt in downloads(dataset)
    }
    links = {URIRef(base + link.path) for link in dataset.links}
    assert set(by_download) == set(expected) | links
    for url, fmt in expected.items():
        distribution = by_download[url]
        file_type, media_type, _label = FORMATS[fmt]
        assert (distribution, RDF.type, DCAT.Distribution) in catalog
        assert one(catalog, distribution, DCAT.accessURL) == url
        assert one(catalog, distribution, DCTERMS.license) == license_
        if media_type is not None:
            assert one(catalog, distribution, DCAT.mediaType) == URIRef(IANA + media_type)
        if file_type is not None:
            assert one(catalog, distribution, DCTERMS.format) == URIRef(
                EU + "file-type/" + file_type
            )
    # And each resource as its GraphQL query, served by the GraphQL endpoint.
    graphql = URIRef(f"{base}/catalog#graphql")
    through_graphql = [
        d
        for d in catalog.objects(node, DCAT.distribution)
        if (d, DCAT.accessService, graphql) in catalog
    ]
    assert len(through_graphql) == len(dataset.resources)
    assert all(
        str(one(catalog, d, DCAT.accessURL)).startswith(f"{base}/graphql?query=")
        for d in through_graphql
    )


@pytest.mark.parametrize("dataset", [d for d in DATASETS if d.links], ids=lambda d: d.id)
def test_each_link_is_a_distribution_conforming_to_its_standard(
    anonymous: Gateway, catalog: Graph, dataset: Dataset
):
    node = dataset_node(anonymous.url, dataset)
    by_download = {
        one(catalog, d, DCAT.downloadURL): d
        for d in catalog.objects(node, DCAT.distribution)
        if (d, DCAT.downloadURL, None) in catalog
    }
    for link in dataset.links:
        url = URIRef(anonymous.url + link.path)
        distribution = by_download[url]
        assert (distribution, RDF.type, DCAT.Distribution) in catalog
        assert one(catalog, distribution, DCAT.accessURL) == url
        assert one(catalog, distribution, DCTERMS.format) == Literal(link.format)
        assert texts(catalog, distribution, DCTERMS.title) == {
            "th": link.title_th,
            "en": link.title_en,
        }
        media_types = set(catalog.objects(distribution, DCAT.mediaType))
        registered = "/x-" not in link.media_type
        assert media_types == ({URIRef(IANA + link.media_type)} if registered else set())
        standards = set(catalog.objects(distribution, DCTERMS.conformsTo))
        assert standards == ({URIRef(link.standard)} if link.standard else set())


def test_dcat_ap_mandatory_properties(anonymous: Gateway, catalog: Graph):
    catalogue = URIRef(f"{anonymous.url}/catalog#catalog")
    assert set(texts(catalog, catalogue, DCTERMS.title)) == {"th", "en"}
    assert set(texts(catalog, catalogue, DCTERMS.description)) == {"th", "en"}
    publisher = one(catalog, catalogue, DCTERMS.publisher)
    assert (publisher, RDF.type, FOAF.Agent) in catalog
    assert set(texts(catalog, publisher, FOAF.name)) == {"th", "en"}
    for dataset in catalog.subjects(RDF.type, DCAT.Dataset):
        assert set(texts(catalog, dataset, DCTERMS.title)) == {"th", "en"}
        assert set(texts(catalog, dataset, DCTERMS.description)) == {"th", "en"}
    distributions = set(catalog.subjects(RDF.type, DCAT.Distribution))
    assert distributions
    for distribution in distributions:
        assert one(catalog, distribution, DCAT.accessURL)
    for service in catalog.subjects(RDF.type, DCAT.DataService):
        assert texts(catalog, service, DCTERMS.title)
        assert str(one(catalog, service, DCAT.endpointURL)).startswith(anonymous.url)
        assert set(catalog.objects(service, DCAT.servesDataset)) == set(
            catalog.subjects(RDF.type, DCAT.Dataset)
        )


@pytest.mark.parametrize("dataset", DATASETS, ids=lambda d: d.id)
def test_each_dataset_carries_the_catalogues_values(
    anonymous: Gateway, catalog: Graph, dataset: Dataset
):
    base = anonymous.url
    node = dataset_node(base, dataset)
    assert texts(catalog, node, DCTERMS.title) == {"th": dataset.title_th, "en": dataset.title_en}
    assert texts(catalog, node, DCTERMS.description) == {
        "th": dataset.notes_th,
        "en": dataset.notes_en,
    }
    organisation = CATALOG.organisations[dataset.organisation]
    publisher = one(catalog, node, DCTERMS.publisher)
    assert (publisher, RDF.type, FOAF.Agent) in catalog
    assert texts(catalog, publisher, FOAF.name) == {
        "th": organisation.title_th,
        "en": organisation.title_en,
    }
    contact = one(catalog, node, DCAT.contactPoint)
    assert (contact, RDF.type, VCARD.Kind) in catalog
    assert one(catalog, contact, VCARD.fn) == Literal(dataset.maintainer)
    assert one(catalog, contact, VCARD.hasEmail) == URIRef(f"mailto:{dataset.maintainer_email}")
    assert {str(k) for k in catalog.objects(node, DCAT.keyword)} == set(dataset.tags)
    assert one(catalog, node, DCTERMS.issued) == Literal(dataset.created_date, datatype=XSD.date)
    assert one(catalog, node, DCTERMS.modified) == Literal(
        dataset.last_updated_date, datatype=XSD.date
    )
    years = [dataset.first_year_of_data.strip(), dataset.last_year_of_data.strip()]
    if all(y.isdigit() for y in years):  # Buddhist era, 543 years ahead of the Gregorian
        period = one(catalog, node, DCTERMS.temporal)
        first, last = (Literal(str(int(y) - 543), datatype=XSD.gYear) for y in years)
        assert one(catalog, period, DCAT.startDate) == first
        assert one(catalog, period, DCAT.endDate) == last
    assert one(catalog, node, DCTERMS.spatial) == URIRef("https://sws.geonames.org/1609350/")
    assert one(catalog, node, DCAT.landingPage) == URIRef(f"{base}/catalog/{dataset.id}")
    frequency = accrual_periodicity(dataset)
    assert list(catalog.objects(node, DCTERMS.accrualPeriodicity)) == (
        [frequency] if frequency is not None else []
    )


def test_access_rights_follow_the_computed_classification(anonymous: Gateway, catalog: Graph):
    policy, schema = load_policy(), graphql_schema()
    for dataset in DATASETS:
        level = CATALOG.classification(dataset, policy, schema)
        assert CLASSIFICATION[level] == "เปิดเผย"  # every published dataset is open
        assert level is Level.PUBLIC
        access = one(catalog, dataset_node(anonymous.url, dataset), DCTERMS.accessRights)
        assert access == URIRef(EU + "access-right/PUBLIC")


@pytest.mark.parametrize("dataset", DATASETS, ids=lambda d: d.id)
def test_each_dataset_has_its_own_document(anonymous: Gateway, catalog: Graph, dataset: Dataset):
    turtle = fetch(anonymous, f"/catalog/{dataset.id}.ttl")
    assert isomorphic(fetch(anonymous, f"/catalog/{dataset.id}.jsonld"), turtle)
    assert list(turtle.subjects(RDF.type, DCAT.Dataset)) == [dataset_node(anonymous.url, dataset)]
    # The part of the catalogue about this dataset, whole: its distributions and agents too.
    assert set(turtle) <= set(catalog)
    node = dataset_node(anonymous.url, dataset)
    assert set(turtle.triples((node, None, None))) == set(catalog.triples((node, None, None)))
    for distribution in catalog.objects(node, DCAT.distribution):
        assert set(turtle.triples((distribution, None, None))) == set(
            catalog.triples((distribution, None, None))
        )
    assert len(list(turtle.subjects(RDF.type, DCAT.Distribution))) == len(
        list(downloads(dataset))
    ) + len(dataset.resources) + len(dataset.links)


@pytest.mark.parametrize("path", ["/catalog/no-such-dataset.jsonld", "/catalog/no-such.ttl"])
def test_an_unknown_dataset_is_not_found(anonymous: Gateway, path: str):
    response = anonymous.client.get(path)
    assert response.status_code == 404
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_links_start_from_the_host_the_request_named(anonymous: Gateway):
    graph = fetch(anonymous, "/catalog.ttl", headers={"host": "opendata.example:8080"})
    assert list(graph.subjects(RDF.type, DCAT.Catalog)) == [
        URIRef("http://opendata.example:8080/catalog#catalog")
    ]


def test_links_start_from_the_configured_public_base_url(db: Any, traffy_url: str):
    public = "https://data.bangkok.example/gateway"
    server, gw = start_gateway(settings_for(db, traffy_url, public_base_url=public + "/"))
    try:
        graph = fetch(gw, f"/catalog/{DATASETS[0].id}.jsonld")
    finally:
        gw.client.close()
        server.stop()
    subjects = {str(s) for s in graph.subjects() if isinstance(s, URIRef)}
    ours = {s for s in subjects if not s.startswith(("https://sws.geonames.org/", "http://www."))}
    assert ours and all(s.startswith(public + "/") for s in ours), ours
    assert (dataset_node(public, DATASETS[0]), RDF.type, DCAT.Dataset) in graph


@pytest.mark.parametrize("bad", ["data.bangkok.example", "ftp://host/x", "https://h/?a=1"])
def test_a_public_base_url_must_be_an_absolute_http_url(bad: str):
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**REQUIRED_ENV, "BMA_PUBLIC_BASE_URL": bad})
    assert [p.split()[0] for p in refused.value.problems] == ["BMA_PUBLIC_BASE_URL"]


@pytest.mark.parametrize(
    ("unit", "interval", "term"),
    [
        ("วัน", 1, "DAILY"),
        ("สัปดาห์", 1, "WEEKLY"),
        ("เดือน", 1, "MONTHLY"),
        ("เดือน", 3, "QUARTERLY"),
        ("ไตรมาส", 1, "QUARTERLY"),
        ("ครึ่งปี", 1, "ANNUAL_2"),
        ("ปี", 1, "ANNUAL"),
        ("ตามเวลาจริง", 0, "UPDATE_CONT"),
        ("ไม่ทราบ", 0, "UNKNOWN"),
        ("วัน", 5, None),  # every five days: no EU term fits, so none is claimed
        ("อื่นๆ", 1, None),
    ],
)
def test_update_frequency_maps_to_the_eu_vocabulary(unit: str, interval: int, term: str | None):
    changed = replace(DATASETS[0], update_frequency_unit=unit, update_frequency_interval=interval)
    expected = URIRef(EU + "frequency/" + term) if term else None
    assert accrual_periodicity(changed) == expected


def test_buddhist_era_years_become_gregorian():
    assert gregorian_year("2565") == 2022
    assert gregorian_year(" 2569 ") == 2026
    assert gregorian_year("") is None
