"""A CKAN-compatible read API: ``/api/3/action/<action>`` (and ``/api/action/<action>``,
where the ``ckanapi`` client calls by default), so GD-Catalog's CKAN harvester, ``ckanapi``
and anything else written for CKAN read the catalogue unmodified.

As CKAN does: parameters come as the query string (GET) or a JSON object (POST); the answer
is ``{"help", "success": true, "result"}``; a failure is ``{"success": false, "error":
{"__type", "message"}}`` — ``Not Found Error`` 404, ``Validation Error`` 409 (its messages
by parameter), ``Search Query Error`` 400, ``Search Error`` 409 — and an unknown action is
400 with the message alone. A table that cannot be produced whole now is 503 with the
gateway's ``DATASET_UNAVAILABLE``.

Every value ``datastore_search`` answers comes from ``Tables.rows``: the resource's operation
run as the anonymous principal, whatever credential the caller sent.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import cmp_to_key
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway import errors
from gateway.publishing import ckan_search
from gateway.publishing.package import (
    organization_dict,
    organization_id,
    package_dict,
    package_id,
)
from gateway.publishing.publication import Publication
from policies.catalog import Dataset, Organisation

log = logging.getLogger(__name__)

CKAN_VERSION = "2.10.0"  # the Action API dialect answered (CKAN 2.10's)
ROWS_DEFAULT, ROWS_MAX = 10, 1000
DATASTORE_LIMIT_DEFAULT, DATASTORE_LIMIT_MAX = 100, 32000  # CKAN's defaults
ORGANIZATIONS_MAX, ORGANIZATIONS_WHOLE_MAX = 1000, 25  # CKAN's defaults
MAX_BODY_BYTES = 64 * 1024  # parameters only: nothing is uploaded here
JSON = "application/json;charset=utf-8"

Params = dict[str, Any]


class NotFoundError(Exception):
    """CKAN's NotFound: 404, "Not found: <message>"."""


class ValidationError(Exception):
    """CKAN's ValidationError: 409, messages by parameter."""

    def __init__(self, messages: dict[str, list[str]]) -> None:
        super().__init__(messages)
        self.messages = messages


def routes(publication: Publication) -> list[BaseRoute]:
    api = CkanApi(publication)
    return [
        Route("/api/3/action/{action}", api.handle, methods=["GET", "POST"]),
        Route("/api/action/{action}", api.handle, methods=["GET", "POST"]),
    ]


def _respond(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


def _bad_request(message: str, status: int = 400) -> Response:
    """CKAN's answer to a request it cannot read as an action call: the message alone."""
    return _respond(f"Bad request - {message}", status)


@dataclass
class Call:
    """One action call: its parameters and where the gateway is seen from."""

    params: Params
    base_url: str


Action = Callable[[Call], Awaitable[Any]]


class CkanApi:
    def __init__(self, publication: Publication) -> None:
        self.publication = publication
        self.catalog = publication.catalog
        self.actions: dict[str, Action] = {
            "help_show": self.help_show,
            "status_show": self.status_show,
            "package_list": self.package_list,
            "package_show": self.package_show,
            "package_search": self.package_search,
            "organization_list": self.organization_list,
            "organization_show": self.organization_show,
            "resource_show": self.resource_show,
            "datastore_search": self.datastore_search,
        }

    async def handle(self, request: Request) -> Response:
        name = request.path_params["action"]
        action = self.actions.get(name)
        if action is None:
            return _bad_request(f"Action name not known: {name}")
        try:
            params = await _params(request)
        except ValueError as exc:
            return _bad_request(f"JSON Error: {exc}")
        except OverflowError as exc:
            return _bad_request(str(exc), 413)
        base_url = str(request.base_url).rstrip("/")
        envelope: dict[str, Any] = {
            "help": f"{base_url}/api/3/action/help_show?name={name}",
        }
        try:
            result = await action(Call(params, base_url))
        except NotFoundError as exc:
            return self._error(envelope, 404, "Not Found Error", f"Not found: {exc}")
        except ValidationError as exc:
            error = {**exc.messages, "__type": "Validation Error"}
            return _respond({**envelope, "success": False, "error": error}, 409)
        except ckan_search.SearchQueryError as exc:
            message = f"Search Query is invalid: {exc}"
            return self._error(envelope, 400, "Search Query Error", message)
        except ckan_search.SearchError as exc:
            return self._error(envelope, 409, "Search Error", f"Search error: {exc}")
        except errors.GatewayError as exc:  # DATASET_UNAVAILABLE, or a limit the table met
            kind = HTTPStatus(exc.status).phrase
            return self._error(envelope, exc.status, kind, exc.message, code=exc.code)
        except Exception:
            failure = errors.InternalError()
            log.exception("CKAN action %s failed (reference %s)", name, failure.reference)
            return self._error(
                envelope, 500, "Internal Server Error", failure.message, code=failure.code
            )
        return _respond({**envelope, "success": True, "result": result})

    @staticmethod
    def _error(
        envelope: dict[str, Any], status: int, kind: str, message: str, **more: str
    ) -> Response:
        error = {"__type": kind, "message": message, **more}
        return _respond({**envelope, "success": False, "error": error}, status)

    # ------------------------------------------------------------------ the actions

    async def help_show(self, call: Call) -> str:
        """Return the help string of an action of this API."""
        name = _text(call.params, "name", required=True)
        action = self.actions.get(name)
        if action is None:
            raise NotFoundError(f"Action function not found: {name}")
        return (action.__doc__ or "").strip()

    async def status_show(self, call: Call) -> dict[str, Any]:
        """Return the site's version and the extensions it answers as."""
        return {
            "site_title": "BMA Data Gateway",
            "site_description": "Open data of the Bangkok Metropolitan Administration",
            "site_url": call.base_url,
            "ckan_version": CKAN_VERSION,
            "locale_default": "th",
            "error_emails_to": None,
            "extensions": ["datastore", "scheming_datasets", "thai_gdc"],
        }

    async def package_list(self, call: Call) -> list[str]:
        """Return the names of the site's datasets, sorted (``limit``, ``offset``)."""
        names = sorted(self.catalog.datasets)
        offset = _natural(call.params, "offset", 0)
        limit = _natural(call.params, "limit", len(names))
        return names[offset : offset + limit]

    async def package_show(self, call: Call) -> dict[str, Any]:
        """Return a dataset (``id``: its name or id) with its resources."""
        return package_dict(self.publication, self._dataset(call.params), call.base_url)

    async def package_search(self, call: Call) -> dict[str, Any]:
        """Search the datasets: ``q``, ``fq``, ``rows`` (default 10, at most 1000),
        ``start``, ``sort``, ``facet.field``, ``facet.limit``."""
        params = call.params
        q, fq = _text(params, "q"), _text(params, "fq")
        rows = min(_natural(params, "rows", ROWS_DEFAULT), ROWS_MAX)
        start = _natural(params, "start", 0)
        sort = _text(params, "sort") or ("score desc, metadata_modified desc")
        facet_fields = _strings(params, "facet.field")
        facet_limit = _integer(params, "facet.limit", 50)
        matches = ckan_search.compile_query(q if q not in ("", "*:*") else "")
        filters = ckan_search.compile_query(fq)
        found = [
            p
            for p in (
                package_dict(self.publication, d, call.base_url)
                for d in self.catalog.datasets.values()
            )
            if matches(p) and filters(p)
        ]
        ordered = ckan_search.sort_packages(found, sort, q)
        plain, described = ckan_search.facets(found, facet_fields, facet_limit, self._names())
        return {
            "count": len(found),
            "sort": sort,
            "results": ordered[start : start + rows],
            "facets": plain,
            "search_facets": described,
        }

    async def organization_list(self, call: Call) -> list[Any]:
        """Return the organisations' names, or whole (``all_fields``); ``sort`` (name,
        title or package_count, asc or desc; default title asc, as CKAN), ``limit`` (at most
        25 whole or 1000 names, as CKAN), ``offset``, ``organizations``."""
        params = call.params
        counts = self._package_counts()
        wanted = set(_strings(params, "organizations"))
        organisations = [
            o for o in self.catalog.organisations.values() if not wanted or o.id in wanted
        ]
        field, descending = _organisation_sort(_text(params, "sort") or "title asc")
        organisations.sort(
            key=lambda o: counts[o.id] if field == "package_count" else getattr(o, field),
            reverse=descending,
        )
        whole = _boolean(params, "all_fields")
        most = ORGANIZATIONS_WHOLE_MAX if whole else ORGANIZATIONS_MAX
        offset = _natural(params, "offset", 0)
        limit = min(_natural(params, "limit", most), most)
        page = organisations[offset : offset + limit]
        if whole:
            return [organization_dict(o, counts[o.id]) for o in page]
        return [o.id for o in page]

    async def organization_show(self, call: Call) -> dict[str, Any]:
        """Return an organisation (``id``: its name or id); ``include_datasets`` adds its
        datasets."""
        organisation = self._organisation(call.params)
        datasets = [d for d in self.catalog.datasets.values() if d.organisation == organisation.id]
        found = organization_dict(organisation, len(datasets))
        if _boolean(call.params, "include_datasets"):
            found["packages"] = [
                package_dict(self.publication, d, call.base_url)
                for d in sorted(datasets, key=lambda d: d.id)
            ]
        return found

    async def resource_show(self, call: Call) -> dict[str, Any]:
        """Return a resource (``id``)."""
        resource_id = _text(call.params, "id", required=True)
        for dataset in self.catalog.datasets.values():
            for found in package_dict(self.publication, dataset, call.base_url)["resources"]:
                if found["id"] == resource_id:
                    return dict(found)
        raise NotFoundError(f'Resource "{resource_id}" was not found.')

    async def datastore_search(self, call: Call) -> dict[str, Any]:
        """Return rows of a resource's table: ``resource_id``, ``limit`` (default 100),
        ``offset``, ``filters`` (equality), ``q``, ``fields``, ``sort``, ``include_total``."""
        search = DatastoreSearch.of(self.publication, call.params)
        return await search.run(self.publication, call.base_url)

    # ------------------------------------------------------------------ lookups

    def _dataset(self, params: Params) -> Dataset:
        name_or_id = _text(params, "id", required=True)
        for dataset in self.catalog.datasets.values():
            if name_or_id in (dataset.id, package_id(dataset)):
                return dataset
        raise NotFoundError(f"no dataset has the name or id {name_or_id!r}")

    def _organisation(self, params: Params) -> Organisation:
        name_or_id = _text(params, "id", required=True)
        for organisation in self.catalog.organisations.values():
            if name_or_id in (organisation.id, organization_id(organisation)):
                return organisation
        raise NotFoundError(f"no organization has the name or id {name_or_id!r}")

    def _package_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.catalog.organisations, 0)
        for dataset in self.catalog.datasets.values():
            counts[dataset.organisation] += 1
        return counts

    def _names(self) -> dict[str, dict[str, str]]:
        """Facet values' display names."""
        return {"organization": {o.id: o.title_th for o in self.catalog.organisations.values()}}


def _organisation_sort(sort: str) -> tuple[str, bool]:
    if sort.strip() in ("packages", "package_count"):
        return "package_count", True  # CKAN's shorthand
    words = sort.split()
    field = {"name": "id", "title": "title_th", "package_count": "package_count"}.get(
        words[0] if words else ""
    )
    direction = words[1].lower() if len(words) > 1 else "asc"
    if field is None or direction not in ("asc", "desc") or len(words) > 2:
        raise ValidationError({"sort": ["sort by name, title or package_count, asc or desc"]})
    return field, direction == "desc"


# ---------------------------------------------------------------------------- DataStore


@dataclass
class DatastoreSearch:
    resource_id: str
    columns: list[str]  # the table's, in order
    fields: list[str]  # the ones answered
    filters: dict[str, list[Any]]
    q: str | dict[str, str]
    sort: list[tuple[str, bool]]  # (column, descending)
    limit: int
    offset: int
    include_total: bool

    @classmethod
    def of(cls, publication: Publication, params: Params) -> DatastoreSearch:
        resource_id = _text(params, "resource_id", required=True)
        found = publication.catalog.resource(resource_id)
        if found is None:
            raise NotFoundError(f'Resource "{resource_id}" was not found.')
        columns = ["_id", *(e.column for e in publication.dictionary(found[1]))]
        messages: dict[str, list[str]] = {}
        fields = _strings(params, "fields") or columns
        _unknown(messages, "fields", fields, columns)
        filters = _json_object(params, "filters")
        _unknown(messages, "filters", list(filters), columns)
        sort = _datastore_sort(_text(params, "sort"), columns, messages)
        q = params.get("q", "")
        if isinstance(q, str) and q.startswith("{"):
            q = _json_object(params, "q")
        if isinstance(q, dict):
            _unknown(messages, "q", list(q), columns)
        elif not isinstance(q, str):
            messages["q"] = ["give text, or an object of column: text"]
        if messages:
            raise ValidationError(messages)
        return cls(
            resource_id=resource_id,
            columns=columns,
            fields=fields,
            filters={k: v if isinstance(v, list) else [v] for k, v in filters.items()},
            q={str(k): str(v) for k, v in q.items()} if isinstance(q, dict) else q,
            sort=sort,
            limit=min(_natural(params, "limit", DATASTORE_LIMIT_DEFAULT), DATASTORE_LIMIT_MAX),
            offset=_natural(params, "offset", 0),
            include_total=_boolean(params, "include_total", default=True),
        )

    async def run(self, publication: Publication, base_url: str) -> dict[str, Any]:
        found = publication.catalog.resource(self.resource_id)
        assert found is not None  # of() refused an unknown id
        dictionary = {e.column: e for e in publication.dictionary(found[1])}
        matching = self._matching(publication.tables.rows(found[1]))
        total, records = await self._window(matching)
        fields = [
            {"id": "_id", "type": "int"}
            if name == "_id"
            else {
                "id": name,
                "type": dictionary[name].type,
                "info": {
                    "label": dictionary[name].description_th,
                    "notes": dictionary[name].description_en,
                    "unit": dictionary[name].unit,
                },
            }
            for name in self.fields
        ]
        answer: dict[str, Any] = {
            "resource_id": self.resource_id,
            "fields": fields,
            "records": [{name: row[name] for name in self.fields} for row in records],
            "records_format": "objects",
            "limit": self.limit,
            "offset": self.offset,
            "include_total": self.include_total,
            "_links": self._links(),
        }
        if self.include_total:
            answer["total"] = total
            answer["total_was_estimated"] = False
        return answer

    async def _matching(self, rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        number = 0
        async for row in rows:
            number += 1
            if self._holds(row):
                yield {"_id": number, **row}

    def _holds(self, row: dict[str, Any]) -> bool:
        for column, wanted in self.filters.items():
            if not any(_equal(row.get(column), w) for w in wanted):
                return False
        if isinstance(self.q, dict):
            return all(t.casefold() in _text_of(row.get(c)).casefold() for c, t in self.q.items())
        if self.q:
            text = "\n".join(_text_of(v) for v in row.values()).casefold()
            return all(word.casefold() in text for word in self.q.split())
        return True

    async def _window(
        self, rows: AsyncIterator[dict[str, Any]]
    ) -> tuple[int, list[dict[str, Any]]]:
        """The total and the page, in memory of the page (plus ``offset`` when sorted)."""
        total = 0
        end = self.offset + self.limit
        if not self.sort:
            page = []
            async for row in rows:
                if self.offset <= total < end:
                    page.append(row)
                total += 1
            return total, page
        kept: list[tuple[Any, int, dict[str, Any]]] = []
        key = cmp_to_key(self._compare)
        async for row in rows:
            # A bounded heap of the ``end`` first rows (largest on top, ties by arrival).
            item = (_Reversed(key(row)), -total, row)
            total += 1
            if end == 0:
                continue
            if len(kept) < end:
                heapq.heappush(kept, item)
            elif item > kept[0]:
                heapq.heapreplace(kept, item)
        ordered = [row for _k, _n, row in sorted(kept, reverse=True)]
        return total, ordered[self.offset : end]

    def _compare(self, a: dict[str, Any], b: dict[str, Any]) -> int:
        for column, descending in self.sort:
            order = _compare_values(a.get(column), b.get(column), descending)
            if order:
                return order
        return 0

    def _links(self) -> dict[str, str]:
        base = "/api/3/action/datastore_search"
        query = {"resource_id": self.resource_id}
        following = {**query, "offset": str(self.offset + self.limit)}
        if self.limit != DATASTORE_LIMIT_DEFAULT:
            following["limit"] = str(self.limit)
        return {"start": f"{base}?{urlencode(query)}", "next": f"{base}?{urlencode(following)}"}


class _Reversed:
    """A key ordered backwards: a max-heap from heapq's min-heap."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __lt__(self, other: _Reversed) -> bool:
        return bool(other.key < self.key)

    def __gt__(self, other: _Reversed) -> bool:
        return bool(self.key < other.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.key == other.key

    __hash__ = None  # type: ignore[assignment]


def _compare_values(a: Any, b: Any, descending: bool) -> int:
    """PostgreSQL's order, as CKAN's DataStore sorts: nulls last ascending, first
    descending."""
    if a is None or b is None:
        if a is None and b is None:
            return 0
        nulls_last = -1 if b is None else 1
        return -nulls_last if descending else nulls_last
    if isinstance(a, type(b)) or isinstance(b, type(a)):
        order = int(a > b) - int(a < b)
    else:
        order = (str(a) > str(b)) - (str(a) < str(b))
    return -order if descending else order


def _datastore_sort(
    text: str, columns: list[str], messages: dict[str, list[str]]
) -> list[tuple[str, bool]]:
    sort = []
    for part in text.split(","):
        words = part.split()
        if not words:
            continue
        column = words[0].strip('"')
        direction = words[1].lower() if len(words) > 1 else "asc"
        if column not in columns:
            messages.setdefault("sort", []).append(f'field "{column}" not in table')
        elif direction not in ("asc", "desc") or len(words) > 2:
            messages.setdefault("sort", []).append(f"cannot sort by {part.strip()!r}")
        else:
            sort.append((column, direction == "desc"))
    return sort


def _unknown(
    messages: dict[str, list[str]], key: str, names: list[str], columns: list[str]
) -> None:
    missing = [f'field "{name}" not in table' for name in names if name not in columns]
    if missing:
        messages[key] = missing


def _equal(value: Any, wanted: Any) -> bool:
    """A filter's value equals the cell: the same, or the same when written as text (a
    query string carries only text)."""
    if value == wanted and type(value) is type(wanted):
        return True
    return isinstance(wanted, str | int | float | bool) and _text_of(value) == _text_of(wanted)


def _text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


# ---------------------------------------------------------------------------- parameters


async def _params(request: Request) -> Params:
    """The call's parameters: the query string, or (POST) the body's JSON object. A
    parameter given several times in a query string is a list, as CKAN reads it."""
    if request.method == "POST":
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise OverflowError(f"the body is larger than {MAX_BODY_BYTES} bytes")
        if body.strip():
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"the body is not JSON: {exc}") from None
            if not isinstance(data, dict):
                raise ValueError(
                    f"Request data JSON decoded to {data!r} but it needs to be a dictionary."
                )
            return data
    params: Params = {}
    for key in request.query_params:
        found = request.query_params.getlist(key)
        params[key] = found[0] if len(found) == 1 else found
    return params


def _text(params: Params, key: str, required: bool = False) -> str:
    value = params.get(key)
    if value is None or value == "":
        if required:
            raise ValidationError({key: ["Missing value"]})
        return ""
    if not isinstance(value, str):
        raise ValidationError({key: ["must be text"]})
    return value


def _integer(params: Params, key: str, default: int) -> int:
    value = params.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValidationError({key: ["Invalid integer"]})
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError({key: ["Invalid integer"]}) from None


def _natural(params: Params, key: str, default: int) -> int:
    value = _integer(params, key, default)
    if value < 0:
        raise ValidationError({key: ["Must be a natural number"]})
    return value


def _boolean(params: Params, key: str, default: bool = False) -> bool:
    value = params.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValidationError({key: ["Value must be one of: true, false"]})


def _strings(params: Params, key: str) -> list[str]:
    """A list parameter: a JSON list, a list, or text separated by commas."""
    value = params.get(key)
    if value is None or value == "":
        return []
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ValidationError({key: ["not a JSON list"]}) from None
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValidationError({key: ["Not a list of strings"]})


def _json_object(params: Params, key: str) -> dict[str, Any]:
    value = params.get(key)
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ValidationError({key: ["Not a JSON object"]}) from None
    if not isinstance(value, dict):
        raise ValidationError({key: ["Not a JSON object"]})
    return value
