"""Revenue statistics of a district: per tax, per tax year and per month of payment — the
figures district offices publish by hand (ประมาณการ, จัดเก็บได้, จำนวนผู้ชำระ, ร้อยละ).

Built from one BMA TAX aggregate per (district, year) (``TaxConnector.revenue_by_month``);
only sums and counts leave the tax system, so every field here is public.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from enum import Enum

import strawberry

from connectors.base import Record


@strawberry.enum(description="ประเภทภาษีที่เขตจัดเก็บ / A tax the district offices collect.")
class TaxType(Enum):
    LAND_BUILDING = "land_building"  # ภาษีที่ดินและสิ่งปลูกสร้าง
    SIGNBOARD = "signboard"  # ภาษีป้าย


@strawberry.type(description="รายได้ภาษีที่จัดเก็บในหนึ่งเดือน / Tax collected in one month.")
class MonthlyRevenue:
    month: str = strawberry.field(
        description="เดือนที่ชำระ (เวลากรุงเทพฯ) / Month of payment, Bangkok time, as YYYY-MM."
    )
    collected: Decimal = strawberry.field(
        description="จัดเก็บได้ในเดือน / Tax paid in the month, baht."
    )
    taxpayer_count: int = strawberry.field(
        description="จำนวนผู้ชำระในเดือน / Distinct taxpayers who paid in the month."
    )
    share_of_estimate: float | None = strawberry.field(
        description="สัดส่วนต่อประมาณการ / Collected in the month over the estimate, 0-1; "
        "null when the estimate is zero."
    )
    cumulative_collected: Decimal = strawberry.field(
        description="จัดเก็บได้สะสม / Collected from the first month listed to this one, baht."
    )
    cumulative_share_of_estimate: float | None = strawberry.field(
        description="สัดส่วนสะสมต่อประมาณการ / Cumulative collected over the estimate, 0-1; "
        "null when the estimate is zero."
    )


@strawberry.type(
    description="สถิติการจัดเก็บภาษีของเขตในปีภาษี / A district's collection of one tax in a tax year."
)
class RevenueStatistics:
    year: int = strawberry.field(description="ปีภาษี (ค.ศ.) / Tax year.")
    tax_type: TaxType = strawberry.field(description="ประเภทภาษี / The tax.")
    estimate: Decimal = strawberry.field(
        description="ประมาณการรายได้ / Estimate: the tax assessed for the year, baht "
        "(BMA TAX holds no separate revenue target)."
    )
    collected: Decimal = strawberry.field(
        description="จัดเก็บได้ทั้งปี / Tax of the year paid, baht; the sum of `months` and "
        "`collectedUndated`."
    )
    collected_undated: Decimal = strawberry.field(
        description="จัดเก็บได้แต่ไม่มีวันที่ชำระ / Paid, but with no payment date recorded, baht."
    )
    outstanding: Decimal = strawberry.field(
        description="ค้างชำระ / Unpaid and overdue tax of the year, baht."
    )
    taxpayer_count: int = strawberry.field(
        description="จำนวนผู้ชำระ / Distinct taxpayers who paid tax of the year (parcel owners "
        "for land and building, businesses for signboards)."
    )
    share_of_estimate: float | None = strawberry.field(
        description="สัดส่วนที่จัดเก็บได้ / Collected over the estimate, 0-1; null when the "
        "estimate is zero."
    )
    months: list[MonthlyRevenue] = strawberry.field(
        description="รายเดือน / By month of payment: every month of the tax year, and any month "
        "outside it in which tax of the year was paid, in order."
    )


def revenue_statistics(
    year: int, rows: Sequence[Record], tax_type: TaxType | None
) -> list[RevenueStatistics]:
    """The statistics of each tax asked for (both when ``tax_type`` is None), from the rows of
    ``revenue_by_month`` for one district and year; a tax with no rows has zeros."""
    wanted = [tax_type] if tax_type else list(TaxType)
    return [_statistics(year, t, [r for r in rows if r["tax_type"] == t.value]) for t in wanted]


def _statistics(year: int, tax_type: TaxType, rows: Sequence[Record]) -> RevenueStatistics:
    whole = next((r for r in rows if r["whole_year"]), None)
    estimate = Decimal(whole["estimate"]) if whole else Decimal(0)
    dated = {r["month"]: r for r in rows if not r["whole_year"] and r["month"] is not None}
    undated = sum((Decimal(r["collected"]) for r in rows if _undated(r)), Decimal(0))
    months: list[MonthlyRevenue] = []
    running = Decimal(0)
    for month in _months(year, dated):
        r = dated.get(month)
        collected = Decimal(r["collected"]) if r else Decimal(0)
        running += collected
        months.append(
            MonthlyRevenue(
                month=f"{month:%Y-%m}",
                collected=collected,
                taxpayer_count=r["taxpayers"] if r else 0,
                share_of_estimate=_share(collected, estimate),
                cumulative_collected=running,
                cumulative_share_of_estimate=_share(running, estimate),
            )
        )
    collected = Decimal(whole["collected"]) if whole else Decimal(0)
    return RevenueStatistics(
        year=year,
        tax_type=tax_type,
        estimate=estimate,
        collected=collected,
        collected_undated=undated,
        outstanding=Decimal(whole["outstanding"]) if whole else Decimal(0),
        taxpayer_count=whole["taxpayers"] if whole else 0,
        share_of_estimate=_share(collected, estimate),
        months=months,
    )


def _undated(r: Record) -> bool:
    return not r["whole_year"] and r["month"] is None


def _months(year: int, dated: dict[date, Record]) -> list[date]:
    """January to December of ``year``, widened to any month a payment fell in."""
    first = min([date(year, 1, 1), *dated])
    last = max([date(year, 12, 1), *dated])
    months = []
    while first <= last:
        months.append(first)
        first = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return months


def _share(part: Decimal, whole: Decimal) -> float | None:
    return float(part / whole) if whole else None
