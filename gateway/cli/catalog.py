"""``bma-gateway catalog check|show``: the open-data catalogue, checked against the policy and
the schema as the gateway checks it at start, and printed for the data governance committee
(every dataset, its organisation, classification, resources and their data dictionary);
``catalog export`` lives in ``catalog_export``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from graphql import GraphQLSchema

from gateway.cli import catalog_export
from gateway.publishing.dictionary import Entry, data_dictionary
from policies.catalog import DEFAULT_CATALOG, Catalog, CatalogError, Dataset, Resource, load_catalog
from policies.model import DEFAULT_POLICY, Policy, PolicyError, load_policy


def add_commands(commands: Any) -> None:
    catalog = commands.add_parser("catalog", help="the open-data catalogue (docs/catalog.md)")
    actions = catalog.add_subparsers(dest="action", required=True)
    check = actions.add_parser(
        "check", help="every dataset's metadata complete, every resource reading open data only"
    )
    check.set_defaults(handler=_check)
    show = actions.add_parser("show", help="the catalogue for the data governance committee")
    show.add_argument("--format", choices=["markdown", "json"], default="markdown")
    show.set_defaults(handler=_show)
    for sub in (check, show):
        sub.add_argument("--file", type=Path, help="a catalogue file (default: the shipped one)")
        sub.add_argument("--policy", type=Path, help="a policy file (default: the shipped one)")
    catalog_export.add_command(actions)


def run(args: argparse.Namespace) -> int:
    status: int = args.handler(args)
    return status


def _checked(args: argparse.Namespace) -> tuple[Catalog, Policy, GraphQLSchema] | None:
    """The catalogue checked as the gateway checks it at start; None after listing every
    problem on stderr."""
    from schema import check_policy, graphql_schema

    schema = graphql_schema()
    try:
        policy = load_policy(args.policy or DEFAULT_POLICY)
        check_policy(policy, schema)
        catalog = load_catalog(args.file or DEFAULT_CATALOG)
        catalog.check(policy, schema)
    except (PolicyError, CatalogError) as exc:
        problems = getattr(exc, "problems", None) or [str(exc)]
        print(f"bma-gateway: {len(problems)} catalogue problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return None
    return catalog, policy, schema


def _check(args: argparse.Namespace) -> int:
    checked = _checked(args)
    if checked is None:
        return 1
    catalog, policy, schema = checked
    resources = sum(len(d.resources) for d in catalog.datasets.values())
    print(f"catalogue ok: {len(catalog.datasets)} datasets, {resources} resources")
    for dataset in catalog.datasets.values():
        label = catalog.data_classification(dataset, policy, schema)
        print(f"  {dataset.id}: {label}, {len(dataset.resources)} resource(s)")
    return 0


def _show(args: argparse.Namespace) -> int:
    checked = _checked(args)
    if checked is None:
        return 1
    report = catalog_report(*checked)
    if args.format == "json":
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(markdown(report), end="")
    return 0


def catalog_report(catalog: Catalog, policy: Policy, schema: GraphQLSchema) -> dict[str, Any]:
    """The catalogue as plain data: organisations, and every dataset with its thai-gdc
    metadata, computed classification and resources with their data dictionary."""
    return {
        "organisations": [
            {
                "id": o.id,
                "title_th": o.title_th,
                "title_en": o.title_en,
                "description": o.description,
                "email": o.email,
            }
            for o in catalog.organisations.values()
        ],
        "datasets": [_dataset(catalog, d, policy, schema) for d in catalog.datasets.values()],
    }


def _dataset(
    catalog: Catalog, dataset: Dataset, policy: Policy, schema: GraphQLSchema
) -> dict[str, Any]:
    level = catalog.classification(dataset, policy, schema)
    return {
        "id": dataset.id,
        "title_th": dataset.title_th,
        "title_en": dataset.title_en,
        "notes_th": dataset.notes_th,
        "notes_en": dataset.notes_en,
        "organisation": dataset.organisation,
        "classification": level.label,
        "metadata": dataset.gdc_fields(catalog.data_classification(dataset, policy, schema)),
        "resources": [_resource(r, schema) for r in dataset.resources],
    }


def _resource(resource: Resource, schema: GraphQLSchema) -> dict[str, Any]:
    return {
        "id": resource.id,
        "name": resource.name,
        "title_th": resource.title_th,
        "title_en": resource.title_en,
        "description_th": resource.description_th,
        "description_en": resource.description_en,
        "formats": list(resource.formats),
        "query": resource.query.strip(),
        "variables": [dict(v) for v in resource.variables if v],
        "columns": [_entry(e) for e in data_dictionary(resource, schema)],
    }


def _entry(entry: Entry) -> dict[str, str]:
    return {
        "column": entry.column,
        "type": entry.type,
        "description_th": entry.description_th,
        "description_en": entry.description_en,
        "unit": entry.unit,
    }


def markdown(report: dict[str, Any]) -> str:
    """The report as one Markdown document: a summary table, then a section per dataset."""
    organisations = {o["id"]: o for o in report["organisations"]}
    lines = [
        "# Open-data catalogue / บัญชีข้อมูลเปิด",
        "",
        "| dataset | organisation | classification | resources |",
        "|---|---|---|---|",
    ]
    for d in report["datasets"]:
        org = organisations[d["organisation"]]["title_en"]
        lines.append(
            f"| `{d['id']}` {d['title_en']} | {org} | "
            f"{d['metadata']['data_classification']} ({d['classification']}) | "
            f"{len(d['resources'])} |"
        )
    for d in report["datasets"]:
        lines.extend(_dataset_markdown(d, organisations[d["organisation"]]))
    return "\n".join(lines) + "\n"


def _dataset_markdown(d: dict[str, Any], org: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"## {d['title_th']} / {d['title_en']} (`{d['id']}`)",
        "",
        d["notes_th"],
        "",
        d["notes_en"],
        "",
        f"Organisation: {org['title_th']} / {org['title_en']} (`{org['id']}`)",
        "",
        "| thai-gdc field | value |",
        "|---|---|",
    ]
    skip = {"name", "title", "notes", "owner_org"}
    for key, value in d["metadata"].items():
        if key not in skip:
            shown = ", ".join(value) if isinstance(value, list) else value
            lines.append(f"| `{key}` | {_cell(str(shown))} |")
    for r in d["resources"]:
        lines.extend(
            [
                "",
                f"### {r['title_th']} / {r['title_en']} (`{r['name']}`)",
                "",
                f"{r['description_th']} {r['description_en']}".strip(),
                "",
                f"Formats: {', '.join(r['formats'])}.",
                "",
                "```graphql",
                r["query"],
                "```",
            ]
        )
        if r["variables"]:
            runs = "; ".join(json.dumps(v, ensure_ascii=False) for v in r["variables"])
            lines.extend(["", f"Run once with each of: {runs}."])
        lines.extend(
            [
                "",
                "| column | type | คำอธิบาย | description | unit |",
                "|---|---|---|---|---|",
                *(
                    f"| `{c['column']}` | {c['type']} | {_cell(c['description_th'])} | "
                    f"{_cell(c['description_en'])} | {_cell(c['unit'])} |"
                    for c in r["columns"]
                ),
            ]
        )
    return lines


def _cell(text: str) -> str:
    """Text safe in a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
