"""Procurement in the Open Contracting Data Standard 1.1.5: release and record packages.

Every process of the graph (``Query.procurementProcesses``) becomes the releases of its stages
— planning and tender at the announcement, each tender amendment, the bids' opening (when no
award follows), the award, the contract, each contract amendment, and its implementation
(payments as transactions, milestones met) — and one record holding those releases and their
compiled release (the OCDS merge of them). The ocid is ``ocds-bq4ldt-`` and the e-GP number.

Everything is read through ``Publication.tables.answer``, the graph as the anonymous principal
asks it, with a selection that reaches only public fields: a supplier is named as the award
publishes it and identified by its record id, never by a national id. Packages are paged by
the graph's cursor (``links.next``, as OCDS API packages do) and filtered by fiscal year,
buyer and announcement date; the JSON Lines downloads stream every release or record, one a
line, a page of processes in memory at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from connectors.base import InvalidCursor
from connectors.finance import process_position
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

VERSION = "1.1"  # the package's `version`: OCDS 1.1.x (schema 1.1.5)
PAGE_SIZE = 100  # processes per package
PUBLISHER = {
    "name": "กรุงเทพมหานคร (Bangkok Metropolitan Administration)",
    "uri": "https://www.bangkok.go.th",
}

# e-GP methods in OCDS's closed `method` codelist, with their own names kept as details.
METHODS: dict[str, tuple[str, str, str]] = {
    "E_BIDDING": ("open", "วิธีประกวดราคาอิเล็กทรอนิกส์", "Electronic bidding (e-bidding)"),
    "E_MARKET": ("open", "วิธีตลาดอิเล็กทรอนิกส์", "Electronic market (e-market)"),
    "SELECTION": ("selective", "วิธีคัดเลือก", "Selection among invited qualified suppliers"),
    "SPECIFIC": ("direct", "วิธีเฉพาะเจาะจง", "Specific (direct) procurement"),
}
# e-GP categories are OCDS's `procurementCategory` codes already.
CATEGORIES = {"GOODS": "goods", "SERVICES": "services", "WORKS": "works"}
TENDER_STATUS = {
    "TENDER": "active",
    "AWARDED": "complete",
    "CONTRACTED": "complete",
    "CANCELLED": "cancelled",
}
# OCDS 1.1.5 `contractStatus`: a contract closed, completed or ended early, is `terminated`.
CONTRACT_STATUS = {"ACTIVE": "active", "COMPLETED": "terminated", "TERMINATED": "terminated"}
CONTRACT_DETAILS = {
    "ACTIVE": "อยู่ระหว่างดำเนินการ / in force",
    "COMPLETED": "สิ้นสุดตามสัญญา / completed",
    "TERMINATED": "บอกเลิกสัญญา / terminated early",
}

QUERY = f"""query OcdsProcesses($filter: ProcessFilter, $first: Int, $after: String) {{
  procurementProcesses(filter: $filter, first: $first, after: $after) {{
    pageInfo {{ hasNextPage endCursor }}
    edges {{ node {{
      id ocid fiscalYear title budgetLineId economicClass method category budget
      referencePrice announcedOn bidDeadline status
      buyer {{ code nameTh nameEn }}
      bids {{ supplier {SUPPLIER_FIELDS} submittedOn status }}
      award {{ id value awardedOn supplier {SUPPLIER_FIELDS} }}
      amendments {AMENDMENT_FIELDS}
      contract {{
        id contractNo originalValue value signedOn startsOn originalEndsOn endsOn status
        supplier {SUPPLIER_FIELDS}
        milestones {{ seq title dueOn metOn value }}
        payments {{ id paidOn amount milestoneSeq }}
        amendments {AMENDMENT_FIELDS}
      }}
    }} }}
  }}
}}"""


# ---------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """What a request asks for: the graph's process filter and where the page starts."""

    filter: Json
    cursor: str | None

    @classmethod
    def of(cls, params: Mapping[str, str]) -> Selection:
        unknown = set(params) - {"fiscalYear", "buyer", "from", "to", "cursor"}
        if unknown:
            raise bad_parameter(sorted(unknown)[0], "is not a parameter here")
        where: Json = {}
        if "fiscalYear" in params:
            where["fiscalYear"] = fiscal_year(params["fiscalYear"])
        if "buyer" in params:
            where["buyer"] = _buyer(params["buyer"])
        for name, field in (("from", "announcedFrom"), ("to", "announcedUntil")):
            if name in params:
                where[field] = _date(name, params[name])
        cursor = params.get("cursor")
        if cursor is not None:
            try:
                process_position(cursor)  # refused here, not as an unavailable page
            except InvalidCursor:
                raise bad_parameter("cursor", "is not one a `links.next` gave") from None
        return cls(where, cursor)

    def variables(self, after: str | None) -> Json:
        return {"filter": self.filter, "first": PAGE_SIZE, "after": after}


def _buyer(code: str) -> str:
    if not (0 < len(code) <= 10 and code.isascii() and code.isalnum()):
        raise bad_parameter("buyer", "is a unit code like S01 or K1039")
    return code


def _date(name: str, text: str) -> str:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is None or len(text) != 10:  # YYYY-MM-DD only, not 20241001
        raise bad_parameter(name, "is a date like 2024-10-01")
    return day.isoformat()


# ---------------------------------------------------------------------------- releases


def _amount(value: str | None) -> int | float | None:
    return None if value is None else amount(value)


def _reference(party: Json) -> Json:
    return {"id": party["id"], "name": party["name"]}


def _party(supplier: Json) -> Json:
    return {"id": supplier_id(supplier["id"]), "name": supplier["name"]}


Roles = list[tuple[Json, str]]  # (party, a role it takes in a release)


def _with_parties(stages: list[tuple[Json, Roles]], buyer: Json) -> list[Json]:
    """The releases in date order, each listing the buyer and the parties it names with
    every role they hold by its date (OCDS merges `roles` as a whole list, so the latest
    release naming a party carries all of them)."""
    held: dict[str, list[str]] = {buyer["id"]: ["buyer", "procuringEntity"]}
    out = []
    for release, roles in sorted(stages, key=lambda stage: stage[0]["date"]):
        named = {buyer["id"]: buyer}
        for party, role in roles:
            named.setdefault(party["id"], party)
            if role not in held.setdefault(party["id"], []):
                held[party["id"]].append(role)
        parties = [{**party, "roles": list(held[pid])} for pid, party in named.items()]
        out.append({**release, "parties": parties})
    return out


def releases(process: Json) -> list[Json]:
    """The releases of one process, in the order of their dates."""
    builder = _Releases(process)
    return builder.build()


class _Releases:
    def __init__(self, p: Json) -> None:
        self.p = p
        self.ocid: str = p["ocid"]
        self.tender_id = f"{self.ocid}-tender"
        self.buyer_party = {
            "id": unit_id(p["buyer"]["code"]),
            "name": p["buyer"]["nameTh"],
            "name_en": p["buyer"]["nameEn"],
        }
        self.buyer = _reference(self.buyer_party)

    def release(
        self, suffix: str, day: str, tags: list[str], roles: Roles, **parts: Any
    ) -> tuple[Json, Roles]:
        return {
            "ocid": self.ocid,
            "id": f"{self.ocid}-{suffix}",
            "date": day_start(day),
            "tag": tags,
            "initiationType": "tender",
            "language": "th",
            "buyer": self.buyer,
            **parts,
        }, roles

    def build(self) -> list[Json]:
        p = self.p
        out: list[tuple[Json, Roles]] = [self.tender()]
        out += [self.tender_amendment(a) for a in p["amendments"]]
        if p["award"] is None and (p["bids"] or p["status"] == "CANCELLED"):
            out.append(self.bids_opened())
        if p["award"] is not None:
            out.append(self.award())
        contract = p["contract"]
        if contract is not None:
            out.append(self.contract(contract))
            out += [self.contract_amendment(contract, a) for a in contract["amendments"]]
            done = self.implementation(contract)
            if done is not None:
                out.append(done)
        return _with_parties(out, self.buyer_party)  # stable: same-day stages keep their order

    def tender(self) -> tuple[Json, Roles]:
        p = self.p
        method, th, en = METHODS[p["method"]]
        amended = [a for a in p["amendments"] if a["valueBefore"] is not None]
        budget = amended[0]["valueBefore"] if amended else p["budget"]
        period: Json = {"startDate": day_start(p["announcedOn"])}
        if p["bidDeadline"]:
            period["endDate"] = day_start(p["bidDeadline"])
        return self.release(
            "tender",
            p["announcedOn"],
            ["planning", "tender"],
            [],
            planning={
                "budget": {
                    "id": str(p["budgetLineId"]),
                    "description": f"รายการงบประมาณ {p['budgetLineId']} ปีงบประมาณ "
                    f"{p['fiscalYear']} / budget line, fiscal year {p['fiscalYear']}",
                    "amount": money(budget),
                }
            },
            tender={
                "id": self.tender_id,
                "title": p["title"],
                "status": "active",
                "value": money(budget),
                "procurementMethod": method,
                "procurementMethodDetails": th,
                "procurementMethodDetails_en": en,
                "mainProcurementCategory": CATEGORIES[p["category"]],
                "tenderPeriod": period,
                "procuringEntity": self.buyer,
                "datePublished": day_start(p["announcedOn"]),
            },
        )

    def tender_amendment(self, a: Json) -> tuple[Json, Roles]:
        tender: Json = {"id": self.tender_id, "amendments": [_amendment(a)]}
        if a["valueAfter"] is not None:
            tender["value"] = money(a["valueAfter"])
        if a["endsAfter"] is not None:
            tender["tenderPeriod"] = {"endDate": day_start(a["endsAfter"])}
        return self.release(
            f"tender-amendment-{a['id']}", a["amendedOn"], ["tenderAmendment"], [], tender=tender
        )

    def tenderers(self) -> list[Json]:
        seen: dict[str, Json] = {}
        for bid in self.p["bids"]:
            party = _party(bid["supplier"])
            seen.setdefault(party["id"], party)
        return list(seen.values())

    def bids_opened(self) -> tuple[Json, Roles]:
        p = self.p
        tenderers = self.tenderers()
        cancelled = p["status"] == "CANCELLED"
        day = p["bidDeadline"] or max([p["announcedOn"], *(b["submittedOn"] for b in p["bids"])])
        tender: Json = {"id": self.tender_id, "status": "cancelled" if cancelled else "active"}
        if tenderers:
            tender |= {"tenderers": tenderers, "numberOfTenderers": len(tenderers)}
        return self.release(
            "bids",
            day,
            ["tenderCancellation"] if cancelled else ["tenderUpdate"],
            [(t, "tenderer") for t in tenderers],
            tender=tender,
        )

    def award(self) -> tuple[Json, Roles]:
        a = self.p["award"]
        tenderers = self.tenderers()
        winner = _party(a["supplier"])
        return self.release(
            "award",
            a["awardedOn"],
            ["award"],
            [*((t, "tenderer") for t in tenderers), (winner, "supplier")],
            tender={
                "id": self.tender_id,
                "status": TENDER_STATUS[self.p["status"]],
                "tenderers": tenderers,
                "numberOfTenderers": len(tenderers),
            },
            awards=[
                {
                    "id": str(a["id"]),
                    "title": self.p["title"],
                    "status": "active",
                    "date": day_start(a["awardedOn"]),
                    "value": money(a["value"]),
                    "suppliers": [winner],
                }
            ],
        )

    def contract(self, c: Json) -> tuple[Json, Roles]:
        return self.release(
            "contract",
            c["signedOn"],
            ["contract"],
            [(_party(c["supplier"]), "supplier")],
            contracts=[
                {
                    **_contract_ids(c, self.p),
                    "title": f"สัญญาเลขที่ {c['contractNo']} / contract {c['contractNo']}",
                    "status": "active",
                    "value": money(c["originalValue"]),
                    "period": {
                        "startDate": day_start(c["startsOn"]),
                        "endDate": day_start(c["originalEndsOn"]),
                    },
                    "dateSigned": day_start(c["signedOn"]),
                    "milestones": [_milestone(c["id"], m, met=False) for m in c["milestones"]],
                }
            ],
        )

    def contract_amendment(self, c: Json, a: Json) -> tuple[Json, Roles]:
        contract: Json = {**_contract_ids(c, self.p), "amendments": [_amendment(a)]}
        if a["valueAfter"] is not None:
            contract["value"] = money(a["valueAfter"])
        if a["endsAfter"] is not None:
            contract["period"] = {"endDate": day_start(a["endsAfter"])}
        return self.release(
            f"contract-amendment-{a['id']}",
            a["amendedOn"],
            ["contractAmendment"],
            [],
            contracts=[contract],
        )

    def implementation(self, c: Json) -> tuple[Json, Roles] | None:
        """What was done under the contract: payments and milestones met, its closing."""
        met = [m for m in c["milestones"] if m["metOn"]]
        closed = c["status"] != "ACTIVE"
        if not (c["payments"] or met or closed):
            return None
        days = [y["paidOn"] for y in c["payments"]] + [m["metOn"] for m in met]
        day = max(days) if days else c["endsOn"]
        payee = _party(c["supplier"])
        roles: Roles = [(payee, "supplier")]
        if c["payments"]:
            roles += [(payee, "payee"), (self.buyer_party, "payer")]
        transactions = [
            {
                "id": str(y["id"]),
                "date": day_start(y["paidOn"]),
                "value": money(y["amount"]),
                "payer": self.buyer,
                "payee": _reference(payee),
            }
            for y in c["payments"]
        ]
        return self.release(
            "implementation",
            day,
            ["implementation", "contractTermination"] if closed else ["implementation"],
            roles,
            contracts=[
                {
                    **_contract_ids(c, self.p),
                    "status": CONTRACT_STATUS[c["status"]],
                    "description": CONTRACT_DETAILS[c["status"]],
                    "implementation": {"transactions": transactions},
                    "milestones": [_milestone(c["id"], m, met=True) for m in met],
                }
            ],
        )


def _contract_ids(c: Json, process: Json) -> Json:
    """What every contract fragment carries (OCDS requires both): its id and its award's."""
    award = process["award"]
    return {"id": str(c["id"]), "awardID": str(award["id"] if award else c["id"])}


def _milestone(contract: str, m: Json, *, met: bool) -> Json:
    milestone: Json = {
        "id": f"{contract}-{m['seq']}",
        "title": m["title"],
        "type": "delivery",
        "description": f"งวดที่ {m['seq']} มูลค่า {m['value']} บาท / instalment {m['seq']}, "
        f"{m['value']} baht",
        "dueDate": day_start(m["dueOn"]),
        "status": "met" if met else "scheduled",
    }
    if met:
        milestone["dateMet"] = day_start(m["metOn"])
    return milestone


def _amendment(a: Json) -> Json:
    changes = [
        f"{what}: {a[before]} → {a[after]}"
        for what, before, after in (
            ("value (baht)", "valueBefore", "valueAfter"),
            ("end", "endsBefore", "endsAfter"),
        )
        if a[after] is not None
    ]
    return {
        "id": str(a["id"]),
        "date": day_start(a["amendedOn"]),
        "rationale": a["rationale"],
        "description": "; ".join(changes) or "no change of value or end",
    }


# ---------------------------------------------------------------------------- records


def compiled(ocid: str, stages: list[Json]) -> Json:
    """The compiled release: the releases merged in date order, as OCDS merges them
    (objects field by field, arrays of objects by `id`, anything else replaced)."""
    merged: Json = {}
    for release in stages:
        merged = _merge(merged, {k: v for k, v in release.items() if k not in {"id", "tag"}})
    return {"ocid": ocid, "id": f"{ocid}-compiled", "tag": ["compiled"], **merged}


def _merge(into: Any, new: Any) -> Any:
    if isinstance(into, dict) and isinstance(new, dict):
        return {**into, **{k: _merge(into.get(k), v) for k, v in new.items()}}
    if _identified(into) and _identified(new):
        by_id = {item["id"]: item for item in into}
        for item in new:
            by_id[item["id"]] = _merge(by_id.get(item["id"]), item)
        return list(by_id.values())
    return new


def _identified(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, dict) and "id" in i for i in value)


def record(process: Json) -> Json:
    stages = releases(process)
    return {
        "ocid": process["ocid"],
        "releases": stages,
        "compiledRelease": compiled(process["ocid"], stages),
    }


# ---------------------------------------------------------------------------- packages


class Ocds:
    """The packages and downloads of one gateway's publication."""

    def __init__(self, publication: Publication) -> None:
        self.publication = publication

    async def page(
        self, selection: Selection, after: str | None, request_id: str, client: str | None
    ) -> tuple[list[Json], str | None]:
        """One page of processes and the cursor of the next, if any."""
        data = await self.publication.tables.answer(
            QUERY, selection.variables(after), request_id, client
        )
        connection = data["procurementProcesses"]
        info = connection["pageInfo"]
        following = info["endCursor"] if info["hasNextPage"] else None
        return [edge["node"] for edge in connection["edges"]], following

    async def processes(
        self, selection: Selection, request_id: str, client: str | None
    ) -> AsyncIterator[Json]:
        after = selection.cursor
        while True:
            nodes, after = await self.page(selection, after, request_id, client)
            for node in nodes:
                yield node
            if after is None:
                return


def _published() -> str:
    return datetime.now(BANGKOK).replace(microsecond=0).isoformat()


def _package(
    request: Request, base: str, key: str, items: list[Json], following: str | None
) -> Json:
    package: Json = {
        "uri": f"{base}{request.url.path}" + (f"?{request.url.query}" if request.url.query else ""),
        "version": VERSION,
        "publishedDate": _published(),
        "publisher": PUBLISHER,
        key: items,
    }
    if following is not None:
        params = {**request.query_params, "cursor": following}
        package["links"] = {"next": f"{base}{request.url.path}?{urlencode(params)}"}
    return package


def routes(publication: Publication) -> list[BaseRoute]:
    ocds = Ocds(publication)
    per_process: dict[str, Callable[[Json], list[Json]]] = {
        "releases": releases,
        "records": lambda process: [record(process)],
    }

    def package(kind: str) -> Callable[[Request], Any]:
        async def serve(request: Request) -> Response:
            try:
                selection = Selection.of(request.query_params)
                request_id, client = requester(request, "ocds")
                nodes, following = await ocds.page(selection, selection.cursor, request_id, client)
            except errors.GatewayError as exc:
                return exc.response()
            items = [item for node in nodes for item in per_process[kind](node)]
            base = publication.base_url(request)
            return errors.json_response(_package(request, base, kind, items, following))

        return serve

    def lines(kind: str) -> Callable[[Request], Any]:
        async def serve(request: Request) -> Response:
            try:
                selection = Selection.of(request.query_params)
                request_id, client = requester(request, "ocds")
                # The first page before the status goes out: an unavailable source is a 503,
                # not a truncated 200.
                first, following = await ocds.page(selection, selection.cursor, request_id, client)
            except errors.GatewayError as exc:
                return exc.response()

            async def body() -> AsyncIterator[bytes]:
                for node in first:
                    for item in per_process[kind](node):
                        yield orjson.dumps(item) + b"\n"
                if following is None:
                    return
                rest = Selection(selection.filter, following)
                async for node in ocds.processes(rest, request_id, client):
                    for item in per_process[kind](node):
                        yield orjson.dumps(item) + b"\n"

            name = f"bma-ocds-{kind}.jsonl"
            return StreamingResponse(
                body(),
                media_type="application/x-ndjson",
                headers={"content-disposition": f'attachment; filename="{name}"'},
            )

        return serve

    return [
        *(Route(f"/ocds/{kind}", package(kind), methods=["GET"]) for kind in per_process),
        *(Route(f"/ocds/{kind}.jsonl", lines(kind), methods=["GET"]) for kind in per_process),
    ]
