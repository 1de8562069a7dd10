"""Relay-style cursor connections shared by every list field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import strawberry

from connectors.base import Page, PageRequest, Record
from schema.context import Limits
from schema.errors import BadUserInput, PageSizeExceeded

T = TypeVar("T")


@strawberry.type(description="ตำแหน่งหน้า / Where this page ends and whether more follow.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="มีหน้าถัดไป / More rows follow.")
    end_cursor: str | None = strawberry.field(
        description="เคอร์เซอร์ของแถวสุดท้าย / Pass as `after` to read the next page."
    )


def _cursor(root: Edge[Any]) -> str:
    # Encoded only when selected: most lists are read without their rows' cursors, and a
    # cursor cost about as much as the rest of its row.
    return root.cursor_of(root.row)


@strawberry.type(description="แถวหนึ่งพร้อมเคอร์เซอร์ / One row and its cursor.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(
        resolver=_cursor, description="เคอร์เซอร์ / Opaque position of this row."
    )
    node: T = strawberry.field(description="ข้อมูล / The row.")
    row: strawberry.Private[Record]
    cursor_of: strawberry.Private[Callable[[Record], str]]


def _total_count(root: Connection[Any]) -> int:
    if root.total is None:  # list resolvers count whenever the selection asks for this
        raise RuntimeError("the total of this list was not counted")
    return root.total


@strawberry.type(description="หน้าหนึ่งของรายการ / One page of a list, with its total.")
class Connection(Generic[T]):
    total_count: int = strawberry.field(
        resolver=_total_count,
        description="จำนวนทั้งหมดตามตัวกรอง / Rows matching the filter, over all pages.",
    )
    edges: list[Edge[T]] = strawberry.field(description="แถวในหน้านี้ / Rows of this page.")
    page_info: PageInfo = strawberry.field(description="ข้อมูลหน้า / Paging state.")
    # The filter's total; None when the selection did not ask for it (not counted).
    total: strawberry.Private[int | None]


def page_request(
    limits: Limits, first: int | None, after: str | None, *, count: bool = True
) -> PageRequest:
    """Validate ``first`` against the configured default and maximum page size; ``count``:
    whether the filter's total is wanted (``totalCount`` selected)."""
    size = limits.default_page_size if first is None else first
    if size < 0:
        raise BadUserInput("`first` must not be negative", argument="first")
    if size > limits.max_page_size:
        raise PageSizeExceeded(
            f"`first` is {size}; the largest page is {limits.max_page_size}",
            argument="first",
            max=limits.max_page_size,
        )
    return PageRequest(first=size, after=after, count=count)


def connection(
    page: Page,
    node: Callable[[Record], T],
    cursor: Callable[[Record], str],
    after: str | None = None,
) -> Connection[T]:
    """A connection of the page; an empty page ends where it began (``after``), so a client
    that asked for ``first: 0`` can still continue from there."""
    edges = [Edge(node=node(r), row=r, cursor_of=cursor) for r in page.rows]
    end = cursor(page.rows[-1]) if page.rows else after
    return Connection(
        total=page.total,
        edges=edges,
        page_info=PageInfo(has_next_page=page.has_next, end_cursor=end),
    )
