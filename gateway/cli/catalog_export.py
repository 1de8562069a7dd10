"""``bma-gateway catalog export --output DIR``: every resource file and the metadata, for an
offline upload to a CKAN portal.

The files are produced exactly as ``/download/…`` serves them (the same rows, through the
anonymous principal's plan, and the same encoders), from the upstream systems the ``BMA_*``
settings name. Written to DIR::

    catalog.json                        the organisations and every dataset's package
    <dataset>/package.json              one CKAN-style package (thai-gdc fields at top level)
    <dataset>/<resource>.<format>       every format of every resource

A resource that cannot be produced whole stops the export (exit status 1) and leaves no file
of it: an offline upload never carries a short table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from gateway import errors
from gateway.publishing import package
from gateway.publishing.downloads import encode
from gateway.publishing.publication import Publication
from policies.catalog import Dataset, Resource


def add_command(actions: Any) -> None:
    """``export`` under the ``catalog`` command's actions."""
    export = actions.add_parser(
        "export", help="write every resource file and the CKAN metadata into a directory"
    )
    export.add_argument("--output", type=Path, required=True, metavar="DIR")
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from gateway.http import preflight
    from gateway.http.app import create_app

    app = create_app(preflight.checked().settings)  # ConfigError: every problem, exit 2
    try:
        written = export(app.state.publication, app.state.connectors, args.output)
    except errors.DatasetUnavailable as exc:
        print(f"bma-gateway: export stopped: {exc.message}", file=sys.stderr)
        return 1
    print(f"exported {written} files to {args.output}")
    return 0


def export(publication: Publication, connectors: Any, output: Path) -> int:
    """Write the catalogue into ``output`` (the connectors started for it); the number of
    files written."""
    catalog = publication.catalog
    for dataset in catalog.datasets.values():
        (output / dataset.id).mkdir(parents=True, exist_ok=True)
    count = asyncio.run(_files(publication, connectors, output))
    packages = [package_dict(publication, d) for d in catalog.datasets.values()]
    for found in packages:
        _write_json(output / found["name"] / "package.json", found)
    organisations = [package.organization_dict(o) for o in catalog.organisations.values()]
    _write_json(output / "catalog.json", {"organizations": organisations, "packages": packages})
    return count + len(packages) + 1


async def _files(publication: Publication, connectors: Any, output: Path) -> int:
    await asyncio.gather(*(c.start() for c in connectors.all()))
    try:
        count = 0
        for dataset, resource in publication.catalog.resources():
            for fmt in resource.formats:
                path = output / dataset.id / f"{resource.name}.{fmt}"
                await write_file(publication, resource, fmt, path)
                count += 1
        return count
    finally:
        await asyncio.gather(*(c.stop() for c in connectors.all()))
        if connectors.cache is not None:
            await connectors.cache.close()


async def write_file(publication: Publication, resource: Resource, fmt: str, path: Path) -> None:
    """One resource file, written beside and renamed into place once whole."""
    partial = path.with_name(path.name + ".part")
    rows = publication.tables.rows(resource, "catalog-export")
    try:
        first = await anext(rows, None)
        with partial.open("wb") as f:
            async for chunk in encode(resource, fmt, rows, first):
                f.write(chunk)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)


def package_dict(publication: Publication, dataset: Dataset) -> dict[str, Any]:
    """The package ``package_show`` answers (gateway.publishing.package), each resource also
    naming its file (``upload``, relative to the dataset's folder) for a portal's upload."""
    found = package.package_dict(publication, dataset, publication.public_base_url)
    uploads = {
        package.ckan_resource_id(resource, fmt): f"{resource.name}.{fmt}"
        for resource in dataset.resources
        for fmt in resource.formats
    }
    for resource in found["resources"]:
        if resource["id"] in uploads:  # a dataset's links stay URLs of the gateway
            resource["upload"] = uploads[resource["id"]]
    return found


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
