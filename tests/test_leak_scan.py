"""The leak scan: a broad battery of operations — every root field, the joins to owners,
assessments, business owners and building permits, introspection, fragments, aliases,
batches, GET, several pages — run as anonymous, as an app developer's API key and as a
partner; no seeded restricted value may appear in any byte of any answer.

The restricted values come from SQL: tax owners' national IDs and names, registry owners'
IDs and names in all 50 districts, building permit applicants, the exact appraised values of
the parcels the battery reads, and Traffy reporters' names and phones. Values shorter than
six characters are ignored; names are matched whole. The same battery run as the data
protection officer must find values of each kind the schema exposes, or the scan could not
catch a leak.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from graphql import FragmentDefinitionNode, get_introspection_query, parse, print_ast

from gateway.auth.api_keys import create_key, ensure_schema
from gateway.auth.issuer import EmbeddedIssuer
from gateway.demo.embedded import DatabaseUrls
from support import GRAPHQL_ACCEPT, Gateway, run, sql

MIN_LENGTH = 6
ALL_SCOPES = "tax:read tax:personal registry:read registry:personal traffy:personal audit:read"
DISTRICTS = [str(c) for c in range(1001, 1051)]
PAGES = 3

# ---------------------------------------------------------------------------- restricted values


class Needles:
    """Many strings to find at once: indexed by their first MIN_LENGTH characters."""

    def __init__(self, values: dict[str, str]) -> None:  # value -> category
        self.category = values
        self._index: dict[str, list[str]] = defaultdict(list)
        for value in values:
            self._index[value[:MIN_LENGTH]].append(value)

    def found_in(self, texts: Iterable[str]) -> dict[str, set[str]]:
        """Per category, the values that occur in any of ``texts``."""
        found: dict[str, set[str]] = defaultdict(set)
        index = self._index
        for text in texts:
            for i in range(len(text) - MIN_LENGTH + 1):
                candidates = index.get(text[i : i + MIN_LENGTH])
                if candidates:
                    for value in candidates:
                        if text.startswith(value, i):
                            found[self.category[value]].add(value)
        return found


CATEGORIES = (
    "tax-owner-national-ids",
    "tax-owner-names",
    "registry-owner-ids",
    "registry-owner-names",
    "permit-applicants",
    "appraised-values",
    "reporter-names",
    "reporter-phones",
)
# What no field of the schema exposes, to anyone.
NEVER_EXPOSED = ("reporter-names", "reporter-phones")


def _registry_union(columns: str, table: str) -> str:
    return " UNION ALL ".join(f"SELECT {columns} FROM d{code}.{table}" for code in DISTRICTS)


@dataclass(frozen=True)
class Restricted:
    by_category: dict[str, set[str]]
    needles: Needles
    first_page_owners: list[dict[str, Any]]  # parcels(first: 100): owner IDs in order


@pytest.fixture(scope="module")
def restricted(db: DatabaseUrls) -> Restricted:
    owners = sql(db.tax, "SELECT national_id, name FROM tax.owners")
    registrations = sql(
        db.registry, _registry_union("owner_id, owner_name", "commercial_registrations")
    )
    applicants = sql(db.registry, _registry_union("applicant_name", "building_permits"))
    contacts = sql(db.traffy, "SELECT name, phone FROM traffy.reporter_contacts")
    # The parcels the battery reads: the first pages city-wide and in 1039, the singles.
    sampled = sql(
        db.tax,
        f"""SELECT appraised_value FROM tax.parcels WHERE id IN (
              (SELECT id FROM tax.parcels ORDER BY id LIMIT {PAGES * 100})
              UNION (SELECT id FROM tax.parcels WHERE district_code = '1039' ORDER BY id LIMIT 100))
            AND appraised_value % 1000000 <> 0""",
    )
    by_category = {
        "tax-owner-national-ids": {r["national_id"] for r in owners},
        "tax-owner-names": {r["name"] for r in owners},
        "registry-owner-ids": {r["owner_id"] for r in registrations},
        "registry-owner-names": {r["owner_name"] for r in registrations},
        "permit-applicants": {r["applicant_name"] for r in applicants},
        "appraised-values": {str(r["appraised_value"]) for r in sampled},
        "reporter-names": {r["name"] for r in contacts},
        "reporter-phones": {r["phone"] for r in contacts},
    }
    # Public values that happen to equal a restricted one are not leaks: a business's name
    # is open data even when a company of that name owns land.
    public = {
        r["business_name"]
        for r in sql(db.registry, _registry_union("business_name", "commercial_registrations"))
    }
    by_category = {
        name: {v for v in values if len(v) >= MIN_LENGTH and v not in public}
        for name, values in by_category.items()
    }
    for name, values in by_category.items():
        assert len(values) > 20, f"too few {name} to scan for"
    value_category: dict[str, str] = {}
    for name in CATEGORIES:  # an ID both in tax and a registry counts under the first
        for value in by_category[name]:
            value_category.setdefault(value, name)
    first_page = sql(
        db.tax,
        """SELECT p.id, o.national_id FROM tax.parcels p JOIN tax.owners o ON o.id = p.owner_id
           ORDER BY p.id LIMIT 100""",
    )
    return Restricted(by_category, Needles(value_category), first_page)


# ---------------------------------------------------------------------------- the battery

FRAGMENTS = """
fragment OwnerAll on Owner { id kind name nationalId }
fragment ParcelAll on Parcel {
  id titleDeedType titleDeedNumber landUse areaSqm appraisedValue
  location { lat lon } district { code nameTh }
  owner { ...OwnerAll }
  assessments { taxYear base exemption rate taxDue status paidAt }
  signboards { id businessRegistrationNo signType areaCm2 moving taxYear taxDue
               business { registrationNo name owner { name nationalId } } }
}
fragment BusinessAll on Business {
  registrationNo name type address registeredOn status
  owner { name nationalId } district { code }
  licences { licenceNo kind issuedOn expiresOn valid }
  signboards { id signType taxYear taxDue }
}
fragment PermitAll on BuildingPermit {
  permitNo applicantName address buildingType floors areaSqm permittedOn
}
fragment ComplaintAll on Complaint {
  ticketId type types state stateTh description address subdistrict location { lat lon }
  reportedAt lastActivityAt photoUrl afterPhotoUrl organizations star reopenCount
  district { code nameEn }
}
"""


FRAGMENT_TEXT = {
    d.name.value: print_ast(d)
    for d in parse(FRAGMENTS).definitions
    if isinstance(d, FragmentDefinitionNode)
}


def with_fragments(query: str) -> str:
    """The query and the shared fragments it spreads (an unused one fails validation)."""
    used: set[str] = set()
    pending = [query]
    while pending:
        for name in re.findall(r"\.\.\.(\w+)", pending.pop()):
            if name in FRAGMENT_TEXT and name not in used:
                used.add(name)
                pending.append(FRAGMENT_TEXT[name])
    return "\n".join([query, *(FRAGMENT_TEXT[n] for n in sorted(used))])


PAGED = {
    "parcels": "query($after: String) { page: parcels(first: 100, after: $after) "
    "{ totalCount pageInfo { hasNextPage endCursor } edges { cursor node { ...ParcelAll } } } }",
    "businesses": "query($after: String) { page: businesses(first: 100, after: $after) "
    "{ totalCount pageInfo { hasNextPage endCursor } edges { node { ...BusinessAll } } } }",
    "complaints": "query($after: String) { page: complaints(first: 100, after: $after) "
    "{ totalCount pageInfo { hasNextPage endCursor } edges { node { ...ComplaintAll } } } }",
    "permits-1001": 'query($after: String) { district(code: "1001") { page: buildingPermits('
    "first: 15, after: $after) { totalCount pageInfo { hasNextPage endCursor } "
    "edges { node { ...PermitAll } } } } }",
}


@dataclass(frozen=True)
class Samples:
    parcel_ids: list[str]  # parcels with signboards, across districts
    registration_nos: list[str]  # businesses with signboards
    ticket_ids: list[str]


@pytest.fixture(scope="module")
def samples(db: DatabaseUrls) -> Samples:
    parcels = sql(
        db.tax,
        """SELECT DISTINCT ON (p.district_code) p.id FROM tax.parcels p
           JOIN tax.signboards s ON s.parcel_id = p.id ORDER BY p.district_code, p.id LIMIT 10""",
    )
    businesses = sql(
        db.tax,
        """SELECT DISTINCT business_registration_no AS no FROM tax.signboards
           ORDER BY 1 LIMIT 10""",
    )
    tickets = sql(db.traffy, "SELECT ticket_id FROM traffy.tickets ORDER BY ticket_id LIMIT 10")
    return Samples(
        [str(r["id"]) for r in parcels],
        [r["no"] for r in businesses],
        [r["ticket_id"] for r in tickets],
    )


def battery(s: Samples) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(label, query, variables) of every single operation of the scan."""
    parcels = " ".join(
        f'p{i}: parcel(id: "{pid}") {{ ...ParcelAll nearbyComplaints(radiusMeters: 300, first: 3) '
        f"{{ ticketId description }} }}"
        for i, pid in enumerate(s.parcel_ids)
    )
    businesses = " ".join(
        f'b{i}: business(registrationNo: "{no}") {{ ...BusinessAll }}'
        for i, no in enumerate(s.registration_nos)
    )
    complaints = " ".join(
        f'c{i}: complaint(ticketId: "{t}") {{ ...ComplaintAll }}'
        for i, t in enumerate(s.ticket_ids)
    )
    first = s.parcel_ids[0]
    return [
        (
            "districts",
            """{ districts { code nameTh nameEn population businessCount
                 populationStats { year sex ageBand population }
                 complaintStats { total byState { key count } byType { key count } }
                 taxRevenue(year: 2025) { year assessed collected outstanding parcelCount } } }""",
            None,
        ),
        (
            "district-1039-lists",
            """{ district(code: "1039") { code
                 parcels(first: 100) { totalCount edges { node { ...ParcelAll } } }
                 businesses(first: 100) { totalCount edges { node { ...BusinessAll } } }
                 buildingPermits(first: 40) { totalCount edges { node { ...PermitAll } } }
                 complaints(first: 20) { edges { node { ...ComplaintAll } } } } }""",
            None,
        ),
        (
            "permits-every-district",
            "{ districts { code buildingPermits(first: 10) { edges { node { ...PermitAll } } } } }",
            None,
        ),
        (
            "parcels-filtered",
            """{ parcels(first: 50, filter: {landUse: RESIDENTIAL, district: "1001"})
                 { edges { node { ...ParcelAll } } } }""",
            None,
        ),
        (
            "businesses-filtered",
            """{ businesses(first: 50, filter: {status: ACTIVE, district: "1039"})
                 { edges { node { ...BusinessAll } } } }""",
            None,
        ),
        ("single-parcels", "{ " + parcels + " }", None),
        ("single-businesses", "{ " + businesses + " }", None),
        ("single-complaints", "{ " + complaints + " }", None),
        (
            "aliases",
            f"""{{ p: parcel(id: "{first}") {{ landUse: appraisedValue id: titleDeedNumber
                   o: owner {{ kind: nationalId id: name }} a: assessments {{ t: taxYear b: base }} }}
                 q: parcel(id: "{first}") {{ owner {{ nationalId }} }} }}""",
            None,
        ),
        (
            "inline-and-nested-fragments",
            f"""{{ parcel(id: "{first}") {{ ... on Parcel {{ owner {{ ... {{ nationalId name }} }} }}
                   ... {{ assessments {{ base }} appraisedValue }} ...Deep }} }}
                 fragment Deep on Parcel {{ ...Deeper }}
                 fragment Deeper on Parcel {{ signboards {{ business {{ owner {{ ...BO }} }} }} }}
                 fragment BO on BusinessOwner {{ nationalId name }}""",
            None,
        ),
        (
            "include-variables",
            """query($x: Boolean!, $y: Boolean!) { parcels(first: 30) { edges { node {
                 owner @include(if: $x) { nationalId name } appraisedValue @skip(if: $y) } } } }""",
            {"x": True, "y": False},
        ),
        (
            "operation-name",
            """query Open { districts { code } }
               query Closed { parcels(first: 20) { edges { node { owner { nationalId } } } } }""",
            {"operationName": "Closed"},
        ),
        (
            "misspelled-hidden-field",
            f'{{ parcel(id: "{first}") {{ owner {{ nationalld }} }} }}',
            None,
        ),
        (
            "misspelled-hidden-business-field",
            "{ businesses(first: 1) { edges { node { ownr { name } } } } }",
            None,
        ),
        ("introspection-full", get_introspection_query(descriptions=True), None),
        (
            "introspection-types",
            """{ o: __type(name: "Owner") { name fields { name description } }
                 b: __type(name: "BusinessOwner") { name fields { name } }
                 a: __type(name: "Assessment") { name fields { name } } }""",
            None,
        ),
    ]


@dataclass(frozen=True)
class Answer:
    label: str
    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def _payload(query: str, extra: dict[str, Any] | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"query": with_fragments(query)}
    extra = dict(extra or {})
    if "operationName" in extra:
        payload["operationName"] = extra.pop("operationName")
    if extra:
        payload["variables"] = extra
    return payload


def run_battery(gw: Gateway, headers: dict[str, str], s: Samples) -> list[Answer]:
    answers: list[Answer] = []
    # No keep-alive: one failed request must not take the next one's connection down.
    limits = httpx.Limits(max_keepalive_connections=0)
    # The status codes the battery expects are those of application/graphql-response+json.
    headers = {"accept": GRAPHQL_ACCEPT, **headers}
    with httpx.Client(base_url=gw.url, timeout=60, limits=limits, headers=headers) as client:

        def post(label: str, payload: Any) -> httpx.Response:
            response = client.post("/graphql", json=payload)
            answers.append(Answer(label, response.status_code, response.text))
            return response

        items = battery(s)
        for label, query, extra in items:
            post(label, _payload(query, extra))
        for label, query in PAGED.items():
            after = None
            for page in range(PAGES):
                response = post(f"{label}-page-{page}", _payload(query, {"after": after}))
                data = (response.json().get("data") or {}) if response.status_code == 200 else {}
                connection = data.get("page") or (data.get("district") or {}).get("page")
                if not connection or not connection["pageInfo"]["hasNextPage"]:
                    break
                after = connection["pageInfo"]["endCursor"]
        # A batch of several operations at once.
        post("batch", [_payload(q, e) for _, q, e in items[:8]])
        # GET, with variables in the query string.
        for label, query, extra in items[5:12]:
            payload = _payload(query, extra)
            params = {"query": payload["query"]}
            if "variables" in payload:
                params["variables"] = json.dumps(payload["variables"])
            if "operationName" in payload:
                params["operationName"] = payload["operationName"]
            response = client.get("/graphql", params=params)
            answers.append(Answer(f"get-{label}", response.status_code, response.text))
        # A personal field asked for without an allowed purpose.
        response = client.post(
            "/graphql", json=_payload(items[1][1], None), headers={"X-Purpose": "marketing"}
        )
        answers.append(Answer("purpose-marketing", response.status_code, response.text))
    return answers


async def _api_key(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        await ensure_schema(conn)
        return (await create_key(conn, "leak-scan", "civic-app"))[1]
    finally:
        await conn.close()


AUDIENCES = ("anonymous", "app", "partner")


@pytest.fixture(scope="module")
def credentials(issuer: EmbeddedIssuer, db: DatabaseUrls) -> dict[str, dict[str, str]]:
    def bearer(*args: Any, **kwargs: Any) -> dict[str, str]:
        token = issuer.issue(*args, ttl=timedelta(hours=1), **kwargs)
        return {"Authorization": f"Bearer {token}"}

    return {
        "anonymous": {},
        "app": {"X-API-Key": run(_api_key(db.gateway))},
        "partner": bearer("partner", "utility-partner", "tax:read", "internal", purpose="research"),
        "dpo": bearer("agency", "bma-dpo", ALL_SCOPES, "secret", purpose="pdpa-audit"),
    }


@pytest.fixture(scope="module")
def answers(
    anonymous: Gateway, credentials: dict[str, dict[str, str]], samples: Samples
) -> dict[str, list[Answer]]:
    """Each audience's battery, the four at once (each on connections of its own)."""
    with ThreadPoolExecutor(len(credentials)) as pool:
        batteries = {
            who: pool.submit(run_battery, anonymous, headers, samples)
            for who, headers in credentials.items()
        }
        return {who: battery.result() for who, battery in batteries.items()}


def scanned_texts(answers: list[Answer]) -> Iterator[str]:
    """Every answer's text, and its JSON re-encoded without escapes (so that an escaped
    value, ``\\u0e2a…``, is scanned as the characters it stands for)."""
    for answer in answers:
        yield answer.text
        if "\\u" in answer.text:
            yield json.dumps(answer.json(), ensure_ascii=False)


@pytest.fixture(scope="module")
def found(
    answers: dict[str, list[Answer]], restricted: Restricted
) -> dict[str, dict[str, set[str]]]:
    return {who: restricted.needles.found_in(scanned_texts(a)) for who, a in answers.items()}


# ---------------------------------------------------------------------------- the assertions


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("who", AUDIENCES)
def test_no_restricted_value_in_any_response(
    found: dict[str, dict[str, set[str]]],
    answers: dict[str, list[Answer]],
    who: str,
    category: str,
):
    leaked = found[who].get(category, set())
    where = sorted({a.label for a in answers[who] for value in list(leaked)[:5] if value in a.text})
    assert not leaked, f"{len(leaked)} {category} reach {who}, e.g. {sorted(leaked)[:3]} in {where}"


@pytest.mark.parametrize("category", [c for c in CATEGORIES if c not in NEVER_EXPOSED])
def test_the_scan_finds_what_the_data_protection_officer_may_read(
    found: dict[str, dict[str, set[str]]], category: str
):
    """The same battery as a principal cleared for everything: the values are there to find,
    so an empty result for the other audiences means the scan would have caught a leak."""
    assert len(found["dpo"].get(category, set())) >= 10, category


def test_reporter_contacts_reach_no_one_not_even_the_dpo(found: dict[str, dict[str, set[str]]]):
    for category in NEVER_EXPOSED:
        assert not found["dpo"].get(category), category


def test_the_partner_sees_masked_ids(answers: dict[str, list[Answer]], restricted: Restricted):
    """The first page of parcels, as the partner: every owner's ID masked to its last three
    digits, in place, and nothing of it as the anonymous."""
    [page] = [a for a in answers["partner"] if a.label == "parcels-page-0"]
    edges = page.json()["data"]["page"]["edges"]
    expected = [
        (str(r["id"]), f"x-xxxx-xxxxx-{r['national_id'][10:12]}-{r['national_id'][12]}")
        for r in restricted.first_page_owners
    ]
    assert [(e["node"]["id"], e["node"]["owner"]["nationalId"]) for e in edges] == expected
    masked = re.compile(r"x-xxxx-xxxxx-\d\d-\d")
    for who in ("anonymous", "app"):  # denied, not masked: not even the last digits
        assert not any(masked.search(a.text) for a in answers[who]), who


@pytest.mark.parametrize("who", [*AUDIENCES, "dpo"])
def test_the_battery_is_answered(answers: dict[str, list[Answer]], who: str):
    """The scan is only as good as what it reads: every operation answered (the misspelled
    ones as validation errors), and the pages full."""
    statuses = {a.label: a.status for a in answers[who]}
    expected = {label: 200 for label in statuses}
    expected["misspelled-hidden-field"] = 400
    expected["misspelled-hidden-business-field"] = 400
    assert statuses == expected
    for label in ("parcels-page-0", "parcels-page-1", "businesses-page-2", "complaints-page-2"):
        [answer] = [a for a in answers[who] if a.label == label]
        assert len(answer.json()["data"]["page"]["edges"]) == 100, label
    [batch] = [a for a in answers[who] if a.label == "batch"]
    assert len(batch.json()) == 8
