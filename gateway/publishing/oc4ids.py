"""Public works in the Open Contracting for Infrastructure Data Standard 0.9.5: project packages.

Every infrastructure project of the graph (``Query.infrastructureProjects``) becomes one OC4IDS
project carrying CoST's disclosure items — title, description, purpose, sector, type, status,
location, budget, the public authority and the contractor, its contracting process (linked by
its OCDS ``ocid``, ``ocds-bq4ldt-`` and the e-GP number) with the tender, the contract's value
and period and the changes to its price and time, progress, and completion where done.

Everything is read through ``Publication.tables.answer``, the graph as the anonymous principal
asks it, with a selection that reaches only public fields: a contractor is named as the award
publishes it and identified by its supplier record, never by a national id or an address.
``/oc4ids/projects`` is a package of one page (``links.next`` to the following one, filtered
by fiscal year, district and status), ``/oc4ids/projects/<id>`` a package of one project and
``/oc4ids/projects.jsonl`` every project, one a line, streamed a page at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from connectors.base import InvalidCursor, decode_cursor
from connectors.districts import is_district_code
from gateway import errors
from gateway.publishing.contracting import (
    AMENDMENT_FIELDS,
    SUPPLIER_FIELDS,
    Json,
    amount,
    bad_parameter,
    day_start,
    fiscal_year,
    money,
    supplier_id,
    unit_id,
)
from gateway.publishing.publication import Publication, requester
from gateway.publishing.tables import BANGKOK

# OC4IDS project ids are `<project identifier prefix>-<local id>`. The prefix is assigned by
# the OC4IDS Helpdesk; until the BMA registers one, its OCDS prefix's code stands in, so the
# ids are recognisably the BMA's. Change it here when a prefix is assigned.
PROJECT_PREFIX = "oc4ids-bq4ldt"
# Projects per package: each carries its bids, payments and amendments (lists the static cost
# counts at their largest), so a page stays under the anonymous principal's operation cost.
PAGE_SIZE = 25
VERSION = "0.9"  # the package's `version`: major.minor (schema 0.9.5)
LANGUAGE = "th"  # titles, purposes and names are the source's Thai
PUBLISHER = {
    "name": "กรุงเทพมหานคร (Bangkok Metropolitan Administration)",
    "uri": "https://www.bangkok.go.th",
}
BANGKOK_REGION = "กรุงเทพมหานคร"
COUNTRY = "ประเทศไทย"

# The graph's project stages in OC4IDS's closed `projectStatus` codelist.
STATUS = {"PLANNING": "preparation", "IMPLEMENTATION": "implementation", "COMPLETED": "completion"}
FILTER_STATUS = {
    "planning": "PLANNING",
    "implementation": "IMPLEMENTATION",
    "completed": "COMPLETED",
}
# OC4IDS `projectType` from the work the title names (the source records no type): "repair,
# improve" is a rehabilitation, "build, install" a construction. A title naming neither has
# no type rather than a guessed one.
TYPES = (
    ("ก่อสร้างปรับปรุง", "rehabilitation"),
    ("ปรับปรุง", "rehabilitation"),
    ("ซ่อม", "rehabilitation"),
    ("ก่อสร้าง", "construction"),
    ("ติดตั้ง", "construction"),
)
# e-GP methods in OCDS's closed `method` codelist, with their own names kept as details.
METHODS: dict[str, tuple[str, str]] = {
    "E_BIDDING": ("open", "วิธีประกวดราคาอิเล็กทรอนิกส์ (e-bidding)"),
    "E_MARKET": ("open", "วิธีตลาดอิเล็กทรอนิกส์ (e-market)"),
    "SELECTION": ("selective", "วิธีคัดเลือก (selection)"),
    "SPECIFIC": ("direct", "วิธีเฉพาะเจาะจง (specific)"),
}

QUERY = f"""query Oc4idsProjects($filter: ProjectFilter, $first: Int, $after: String) {{
  infrastructureProjects(filter: $filter, first: $first, after: $after) {{
    pageInfo {{ hasNextPage endCursor }}
    edges {{ node {{
      id title purpose sector budget progressPct status fiscalYear
      location {{ lat lon }}
      district {{ code nameTh }}
      process {{
        id ocid title method budget referencePrice announcedOn status
        buyer {{ code nameTh }}
        bids {{ supplier {SUPPLIER_FIELDS} status }}
        award {{ value awardedOn supplier {SUPPLIER_FIELDS} }}
        contract {{
          id contractNo originalValue value signedOn startsOn originalEndsOn endsOn status
          supplier {SUPPLIER_FIELDS}
          payments {{ id paidOn amount }}
          amendments {AMENDMENT_FIELDS}
        }}
      }}
    }} }}
  }}
}}"""


# ---------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """What a request asks for: the graph's project filter and where the page starts."""

    filter: Json
    cursor: str | None

    @classmethod
    def of(cls, params: Mapping[str, str]) -> Selection:
        unknown = set(params) - {"fiscalYear", "district", "status", "cursor"}
        if unknown:
            raise bad_parameter(sorted(unknown)[0], "is not a parameter here")
        where: Json = {}
        if "fiscalYear" in params:
            where["fiscalYear"] = fiscal_year(params["fiscalYear"])
        if "district" in params:
            if not is_district_code(params["district"]):
                raise bad_parameter("district", "is a district code, 1001-1050")
            where["district"] = params["district"]
        if "status" in params:
            if params["status"] not in FILTER_STATUS:
                raise bad_parameter("status", f"is one of {', '.join(FILTER_STATUS)}")
            where["status"] = FILTER_STATUS[params["status"]]
        cursor = params.get("cursor")
        if cursor is not None:
            try:
                decode_cursor("project", cursor)
            except InvalidCursor:
                raise bad_parameter("cursor", "is not one a `links.next` gave") from None
        return cls(where, cursor)


def project_id(local: str) -> str:
    """The OC4IDS id of a project: the prefix and the BMA's own project id."""
    return f"{PROJECT_PREFIX}-{local}"


def local_id(oc4ids_id: str) -> str | None:
    """The BMA's project id inside an OC4IDS id, if it is one of ours."""
    local = oc4ids_id.removeprefix(f"{PROJECT_PREFIX}-")
    shaped = 0 < len(local) <= 40 and local.isascii() and local.replace("-", "").isalnum()
    return local if local != oc4ids_id and shaped else None


# ---------------------------------------------------------------------------- projects


def project_type(title: str) -> str | None:
    return next((kind for start, kind in TYPES if title.startswith(start)), None)


def project(node: Json) -> Json:
    """One OC4IDS project from a graph ``InfrastructureProject``."""
    district = node["district"]
    process = node["process"]
    out: Json = {
        "id": project_id(node["id"]),
        "identifiers": [{"id": node["id"], "scheme": "TH-BMA-INF"}],
        "language": LANGUAGE,
        "title": node["title"],
        "description": f"{node['title']} {district['nameTh']} ปีงบประมาณ {node['fiscalYear']}",
        "purpose": node["purpose"],
        "sector": [node["sector"]],
        "status": STATUS[node["status"]],
        "locations": [_location(node, district)],
        "budget": {"amount": money(node["budget"])},
        "metrics": [_progress(node["progressPct"])],
    }
    kind = project_type(node["title"])
    if kind is not None:
        out["type"] = kind
    if process is None:
        return out
    authority = {"id": unit_id(process["buyer"]["code"]), "name": process["buyer"]["nameTh"]}
    out["publicAuthority"] = authority
    out["parties"] = _parties(authority, process)
    out["contractingProcesses"] = [_contracting_process(process)]
    contract = process["contract"]
    out["period"] = {"startDate": day_start(process["announcedOn"])}
    if contract is not None:
        out["period"]["endDate"] = day_start(contract["endsOn"])
        out["implementationPeriod"] = _period(contract["startsOn"], contract["endsOn"])
        if node["status"] == "COMPLETED":
            out["completion"] = {
                "endDate": day_start(contract["endsOn"]),
                "finalValue": money(contract["value"]),
            }
    out["updated"] = day_start(last_change(process))
    return out


def last_change(process: Json) -> str:
    """The latest date a project's process names: what changed the project last."""
    days: list[str] = [process["announcedOn"]]
    if process["award"] is not None:
        days.append(process["award"]["awardedOn"])
    contract = process["contract"]
    if contract is not None:
        days.append(contract["signedOn"])
        days += [y["paidOn"] for y in contract["payments"]]
        days += [a["amendedOn"] for a in contract["amendments"]]
    return max(days)


def _location(node: Json, district: Json) -> Json:
    return {
        "id": "1",
        "description": district["nameTh"],
        "geometry": {
            "type": "Point",
            "coordinates": [node["location"]["lon"], node["location"]["lat"]],
        },
        "gazetteer": {"scheme": "TH-BMA-DISTRICT", "identifiers": [district["code"]]},
        "address": {
            "locality": district["nameTh"],
            "region": BANGKOK_REGION,
            "countryName": COUNTRY,
        },
    }


def _progress(percent: str) -> Json:
    return {
        "id": "progress",
        "title": "ความก้าวหน้า (ร้อยละของมูลค่าที่เบิกจ่าย) / Progress, % of the value paid",
        "observations": [{"id": "progress", "measure": amount(percent), "unit": {"name": "%"}}],
    }


def _period(start: str, end: str) -> Json:
    return {"startDate": day_start(start), "endDate": day_start(end)}


def _parties(authority: Json, process: Json) -> list[Json]:
    """The public authority (buyer and procuring entity), every tenderer and the contractor,
    each once with every role it holds."""
    roles: dict[str, list[str]] = {authority["id"]: ["publicAuthority", "buyer", "procuringEntity"]}
    named: dict[str, Json] = {authority["id"]: authority}
    for supplier, role in _suppliers(process):
        party = _party(supplier)
        named.setdefault(party["id"], party)
        if role not in roles.setdefault(party["id"], []):
            roles[party["id"]].append(role)
    return [{**party, "roles": roles[pid]} for pid, party in named.items()]


def _suppliers(process: Json) -> list[tuple[Json, str]]:
    found = [(bid["supplier"], "tenderer") for bid in process["bids"]]
    winner = (process["contract"] or process["award"] or {}).get("supplier")
    return found + ([(winner, "supplier")] if winner else [])


def _party(supplier: Json) -> Json:
    return {"id": supplier_id(supplier["id"]), "name": supplier["name"]}


def _contracting_process(process: Json) -> Json:
    method, details = METHODS[process["method"]]
    tenderers = list(
        {p["id"]: p for p in (_party(b["supplier"]) for b in process["bids"])}.values()
    )
    tender: Json = {
        "procurementMethod": method,
        "procurementMethodDetails": details,
        "datePublished": day_start(process["announcedOn"]),
        "costEstimate": money(process["referencePrice"]),
        "numberOfTenderers": len(tenderers),
        "procuringEntity": {
            "id": unit_id(process["buyer"]["code"]),
            "name": process["buyer"]["nameTh"],
        },
    }
    if tenderers:
        tender["tenderers"] = tenderers
    summary: Json = {
        "ocid": process["ocid"],
        "externalReference": process["id"],
        "title": process["title"],
        "nature": ["construction"],
        "status": _process_status(process),
        "tender": tender,
    }
    contract = process["contract"]
    if contract is not None:
        summary["suppliers"] = [_party(contract["supplier"])]
        summary["contractValue"] = money(contract["originalValue"])
        summary["contractPeriod"] = _period(contract["startsOn"], contract["endsOn"])
        if contract["status"] != "ACTIVE":
            summary["finalValue"] = money(contract["value"])
        modifications = [m for a in contract["amendments"] for m in _modifications(a)]
        if modifications:
            summary["modifications"] = modifications
        if contract["payments"]:
            summary["transactions"] = [
                _transaction(process, contract, y) for y in contract["payments"]
            ]
    elif process["award"] is not None:
        summary["suppliers"] = [_party(process["award"]["supplier"])]
    return {"id": process["ocid"], "summary": summary}


def _process_status(process: Json) -> str:
    """OC4IDS `contractingProcessStatus`: before the contract, under it, or over."""
    contract = process["contract"]
    if process["status"] == "CANCELLED" or (contract and contract["status"] != "ACTIVE"):
        return "closed"
    return "active" if contract else "pre-award"


def _modifications(a: Json) -> list[Json]:
    """A contract amendment as the modifications it made: its price, its time, or both (one
    modification each, as OC4IDS types a modification by what it changed)."""
    common = {"date": day_start(a["amendedOn"]), "rationale": a["rationale"]}
    out: list[Json] = []
    if a["valueBefore"] is not None and a["valueAfter"] is not None:
        out.append(
            {
                "id": f"{a['id']}-value",
                "type": "value",
                **common,
                "oldContractValue": money(a["valueBefore"]),
                "newContractValue": money(a["valueAfter"]),
            }
        )
    if a["endsBefore"] is not None and a["endsAfter"] is not None:
        out.append(
            {
                "id": f"{a['id']}-duration",
                "type": "duration",
                **common,
                "oldContractPeriod": {"endDate": day_start(a["endsBefore"])},
                "newContractPeriod": {"endDate": day_start(a["endsAfter"])},
            }
        )
    return out


def _transaction(process: Json, contract: Json, payment: Json) -> Json:
    return {
        "id": str(payment["id"]),
        "date": day_start(payment["paidOn"]),
        "value": money(payment["amount"]),
        "payer": {"id": unit_id(process["buyer"]["code"]), "name": process["buyer"]["nameTh"]},
        "payee": _party(contract["supplier"]),
    }


# ---------------------------------------------------------------------------- serving


class Oc4ids:
    """The project packages and download of one gateway's publication."""

    def __init__(self, publication: Publication) -> None:
        self.publication = publication

    async def page(
        self, where: Json, after: str | None, request_id: str, client: str | None
    ) -> tuple[list[Json], str | None]:
        """One page of projects (OC4IDS) and the cursor of the next, if any."""
        variables = {"filter": where, "first": PAGE_SIZE, "after": after}
        data = await self.publication.tables.answer(QUERY, variables, request_id, client)
        connection = data["infrastructureProjects"]
        info = connection["pageInfo"]
        following = info["endCursor"] if info["hasNextPage"] else None
        return [project(edge["node"]) for edge in connection["edges"]], following

    async def projects(
        self, where: Json, after: str | None, request_id: str, client: str | None
    ) -> AsyncIterator[Json]:
        while after is not None:
            found, after = await self.page(where, after, request_id, client)
            for item in found:
                yield item


def package(request: Request, base: str, projects: list[Json], following: str | None) -> Json:
    """A project package; its ``publishedDate`` is the latest change of its projects, so the
    same projects make the same package."""
    query = f"?{request.url.query}" if request.url.query else ""
    out: Json = {
        "uri": f"{base}{request.url.path}{query}",
        "version": VERSION,
        "publishedDate": max(p.get("updated", "") for p in projects) or _now(),
        "publisher": PUBLISHER,
        "projects": projects,
    }
    if following is not None:
        params = {**request.query_params, "cursor": following}
        out["links"] = {"next": f"{base}{request.url.path}?{urlencode(params)}"}
    return out


def _now() -> str:
    return datetime.now(BANGKOK).replace(microsecond=0).isoformat()


def routes(publication: Publication) -> list[BaseRoute]:
    oc4ids = Oc4ids(publication)

    async def projects(request: Request) -> Response:
        try:
            selection = Selection.of(request.query_params)
            found, following = await oc4ids.page(
                selection.filter, selection.cursor, *requester(request, "oc4ids")
            )
        except errors.GatewayError as exc:
            return exc.response()
        if not found:  # a package holds at least one project
            return errors.NotFound("no public work matches these filters").response()
        base = publication.base_url(request)
        return errors.json_response(package(request, base, found, following))

    async def one(request: Request) -> Response:
        local = local_id(request.path_params["project"])
        if local is None:
            return _no_project(request.path_params["project"])
        try:
            found, _ = await oc4ids.page({"id": local}, None, *requester(request, "oc4ids"))
        except errors.GatewayError as exc:
            return exc.response()
        if not found:
            return _no_project(request.path_params["project"])
        base = publication.base_url(request)
        return errors.json_response(package(request, base, found, None))

    async def lines(request: Request) -> Response:
        try:
            selection = Selection.of(request.query_params)
            request_id, client = requester(request, "oc4ids")
            # The first page before the status goes out: an unavailable source is a 503,
            # not a truncated 200.
            first, following = await oc4ids.page(
                selection.filter, selection.cursor, request_id, client
            )
        except errors.GatewayError as exc:
            return exc.response()

        async def body() -> AsyncIterator[bytes]:
            for item in first:
                yield orjson.dumps(item) + b"\n"
            async for item in oc4ids.projects(selection.filter, following, request_id, client):
                yield orjson.dumps(item) + b"\n"

        return StreamingResponse(
            body(),
            media_type="application/x-ndjson",
            headers={"content-disposition": 'attachment; filename="bma-oc4ids-projects.jsonl"'},
        )

    served: list[tuple[str, str, Callable[[Request], Any]]] = [
        ("/oc4ids/projects", "oc4ids-projects", projects),
        ("/oc4ids/projects.jsonl", "oc4ids-download", lines),
        ("/oc4ids/projects/{project}", "oc4ids-project", one),
    ]
    return [Route(path, endpoint, methods=["GET"], name=name) for path, name, endpoint in served]


def _no_project(given: str) -> Response:
    return errors.NotFound(f"no public work {given!r}", project=given).response()
