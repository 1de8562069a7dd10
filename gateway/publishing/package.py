"""A dataset as CKAN describes it: the package dict, its resources and its organisation.

One builder for every module that speaks CKAN: the action API (``ckan``) answers these
dicts, ``catalog export`` writes them for an offline upload, the HTML pages link to them.

The dict is CKAN's core package (id, name, title, notes, organization, resources, tags, …)
plus the thai-gdc schema's fields at the top level, as ckanext-scheming stores them (the
multiple-choice ones, ``objective`` and ``data_format``, as lists; ``allow_harvest`` as
"True"/"False"). ``data_classification`` is the policy's, never the file's.

A catalogue resource offered in several formats is one CKAN resource per format, as
GD-Catalog portals list each downloadable file: its id is the catalogue resource's id for
the first format offered (that one is ``datastore_active``: ``datastore_search`` reads the
table by it) and ``<id>-<format>`` for the others. Each of the dataset's links (its files in a
transparency standard: OCDS, OC4IDS, a Fiscal Data Package) is one more resource, a URL with
no DataStore table.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from gateway.publishing.dictionary import Entry
from gateway.publishing.publication import Publication
from policies.catalog import Dataset, Link, Organisation, Resource

# Stable ids: the same catalogue gives the same CKAN ids on every gateway, so a harvester
# that keys on ``id`` sees an update, not a new dataset, after a restart.
NAMESPACE = uuid.UUID("6f1c2d3e-0b6a-5c1e-9a51-42b3a7d0c0de")
FORMAT_LABELS = {"csv": "CSV", "json": "JSON", "jsonl": "JSONL", "geojson": "GeoJSON"}
MIMETYPES = {
    "csv": "text/csv",
    "json": "application/json",
    "jsonl": "application/jsonl",
    "geojson": "application/geo+json",
}
# thai-gdc's ``data_format`` choices (how the data is kept), by download format.
# Written by package_dict in CKAN's own shape, not taken from Dataset.gdc_fields.
CORE_FIELDS = (
    "name",
    "title",
    "notes",
    "owner_org",
    "maintainer",
    "maintainer_email",
    "tag_string",
    "license_id",
)
LICENSE_TITLES = {"Open-Data-Common": "Open Data Common"}
OPEN_LICENSES = frozenset({"Open-Data-Common", "Open Data Common"})


def package_id(dataset: Dataset) -> str:
    return str(uuid.uuid5(NAMESPACE, f"dataset:{dataset.id}"))


def organization_id(organisation: Organisation) -> str:
    return str(uuid.uuid5(NAMESPACE, f"organization:{organisation.id}"))


def timestamp(day: date) -> str:
    """CKAN's metadata times: ISO, UTC without an offset."""
    return f"{day.isoformat()}T00:00:00"


def organization_dict(
    organisation: Organisation, package_count: int | None = None
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": organization_id(organisation),
        "name": organisation.id,
        "title": organisation.title_th,
        "display_name": organisation.title_th,
        "title_translated": {"th": organisation.title_th, "en": organisation.title_en},
        "description": organisation.description,
        "email": organisation.email,
        "type": "organization",
        "is_organization": True,
        "state": "active",
        "approval_status": "approved",
        "image_url": "",
    }
    if package_count is not None:
        found["package_count"] = package_count
    return found


def package_dict(publication: Publication, dataset: Dataset, base_url: str) -> dict[str, Any]:
    """The package ``package_show`` answers; ``base_url`` makes the resources' download URLs
    absolute (a harvester copies them)."""
    organisation = publication.catalog.organisations[dataset.organisation]
    resources = [
        found
        for resource in dataset.resources
        for found in resource_dicts(publication, dataset, resource, base_url)
    ] + [link_dict(dataset, link, base_url) for link in dataset.links]
    for position, found in enumerate(resources):
        found["position"] = position
    return {
        "id": package_id(dataset),
        "name": dataset.id,
        "title": dataset.title_th,
        "title_translated": {"th": dataset.title_th, "en": dataset.title_en},
        "notes": dataset.notes_th,
        "notes_translated": {"th": dataset.notes_th, "en": dataset.notes_en},
        "type": "dataset",
        "state": "active",
        "private": False,
        "url": f"{base_url}/catalog/{dataset.id}",
        "owner_org": organization_id(organisation),
        "organization": organization_dict(organisation),
        "maintainer": dataset.maintainer,
        "maintainer_email": dataset.maintainer_email,
        "author": None,
        "author_email": None,
        "license_id": dataset.license_id,
        "license_title": LICENSE_TITLES.get(dataset.license_id, dataset.license_id),
        "isopen": dataset.license_id in OPEN_LICENSES,
        "tags": [{"name": tag, "display_name": tag, "state": "active"} for tag in dataset.tags],
        "tag_string": ",".join(dataset.tags),
        "num_tags": len(dataset.tags),
        "groups": [],
        "extras": [],
        "resources": resources,
        "num_resources": len(resources),
        "metadata_created": timestamp(dataset.created_date),
        "metadata_modified": timestamp(dataset.last_updated_date),
        **thai_gdc_fields(publication, dataset),
    }


def thai_gdc_fields(publication: Publication, dataset: Dataset) -> dict[str, Any]:
    """The thai-gdc schema's dataset fields (``Dataset.gdc_fields``), shaped as its CKAN
    extension stores them: ``objective`` a list, the interval text. CKAN's core fields
    (name, title, organisation …) are the package's own, above."""
    fields = dataset.gdc_fields(publication.data_classification(dataset))
    for core in CORE_FIELDS:
        fields.pop(core, None)
    return {
        **fields,
        "objective": [dataset.objective],
        "update_frequency_interval": str(dataset.update_frequency_interval),
    }


def resource_dicts(
    publication: Publication, dataset: Dataset, resource: Resource, base_url: str
) -> list[dict[str, Any]]:
    """One CKAN resource per format the catalogue resource is offered in."""
    fields = datastore_fields(publication.dictionary(resource))
    return [
        {
            "id": ckan_resource_id(resource, fmt),
            "package_id": package_id(dataset),
            "name": f"{resource.title_th} ({FORMAT_LABELS[fmt]})",
            "name_translated": {
                "th": f"{resource.title_th} ({FORMAT_LABELS[fmt]})",
                "en": f"{resource.title_en} ({FORMAT_LABELS[fmt]})",
            },
            "description": resource.description_th,
            "description_translated": {
                "th": resource.description_th,
                "en": resource.description_en,
            },
            "format": FORMAT_LABELS[fmt],
            "mimetype": MIMETYPES[fmt],
            "url": f"{base_url}/download/{dataset.id}/{resource.name}.{fmt}",
            "url_type": None,
            "state": "active",
            "created": timestamp(dataset.created_date),
            "metadata_modified": timestamp(dataset.last_updated_date),
            "last_modified": None,
            "datastore_active": fmt == resource.formats[0],
            "resource_accessible_condition": dataset.accessible_condition,
            "resource_first_year_of_data": dataset.first_year_of_data,
            "resource_last_year_of_data": dataset.last_year_of_data,
            "resource_created_date": dataset.created_date.isoformat(),
            "resource_last_updated_date": dataset.last_updated_date.isoformat(),
            "data_dictionary": fields,
        }
        for fmt in resource.formats
    ]


def link_dict(dataset: Dataset, link: Link, base_url: str) -> dict[str, Any]:
    """A standard's file as a CKAN resource: a link to download, with no DataStore table."""
    return {
        "id": str(uuid.uuid5(NAMESPACE, f"link:{dataset.id}:{link.path}")),
        "package_id": package_id(dataset),
        "name": link.title_th,
        "name_translated": {"th": link.title_th, "en": link.title_en},
        "description": link.description_th or link.description_en,
        "description_translated": {"th": link.description_th, "en": link.description_en},
        "format": link.format,
        "mimetype": link.media_type,
        "url": f"{base_url}{link.path}",
        "url_type": None,
        "state": "active",
        "created": timestamp(dataset.created_date),
        "metadata_modified": timestamp(dataset.last_updated_date),
        "last_modified": None,
        "datastore_active": False,
        "conforms_to": [link.standard] if link.standard else [],
        "resource_accessible_condition": dataset.accessible_condition,
        "resource_first_year_of_data": dataset.first_year_of_data,
        "resource_last_year_of_data": dataset.last_year_of_data,
        "resource_created_date": dataset.created_date.isoformat(),
        "resource_last_updated_date": dataset.last_updated_date.isoformat(),
    }


def ckan_resource_id(resource: Resource, fmt: str) -> str:
    return resource.id if fmt == resource.formats[0] else f"{resource.id}-{fmt}"


def datastore_fields(entries: list[Entry]) -> list[dict[str, Any]]:
    """The data dictionary as CKAN DataStore's fields: ``info.label`` the Thai description,
    ``info.notes`` the English one."""
    return [
        {
            "id": entry.column,
            "type": entry.type,
            "info": {
                "label": entry.description_th,
                "notes": entry.description_en,
                "unit": entry.unit,
            },
        }
        for entry in entries
    ]
