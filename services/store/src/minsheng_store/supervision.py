"""Supervision (督查通报): which units are late with their contacts, their weekly progress or their summary table,
and which villages and communities are below their coverage target — as JSON, as a notice in XLSX, and as a page."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from openpyxl import Workbook
from openpyxl.styles import Font
from pydantic import BaseModel

from minsheng_store.access import DistrictReader
from minsheng_store.contacts import MissingContacts, missing_contacts_of
from minsheng_store.summary_api import tables_of
from minsheng_store.summary_tables import OverviewLine
from minsheng_store.weekly import PlaceCoverage, place_coverage, safe_cell, visited_households

router = APIRouter(prefix="/api/v1/supervision", tags=["staff"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class QuietUnit(BaseModel):
    unit: str
    name: str


class Supervision(BaseModel):
    """What the district office's supervisors look at and send round."""

    on: date
    contacts: MissingContacts
    summary_tables_deadline: date
    summary_tables_late: list[OverviewLine]
    week_start: date
    quiet_units: list[QuietUnit]
    places_behind: list[PlaceCoverage]


async def supervision_of(state: Any, now: datetime | None = None) -> Supervision:
    """Gather the late and the behind, from the kept counts (tallies, coverage), never a scan of the suggestions."""
    campaign, units = state.campaign, state.units
    now = now or datetime.now(UTC)
    today = now.astimezone(campaign.zone).date()
    overview = await tables_of(state).overview(now)
    week_start = today - timedelta(days=6)
    active = {row["unit"] for row in await state.repo.tallies.rows(since=week_start, until=today + timedelta(days=1))}
    visited = {doc["unit"] async for doc in state.db.visits.find({"visited_on": {"$gte": week_start.isoformat()}}, {"unit": 1})}
    quiet = [QuietUnit(unit=u.code, name=u.name) for u in units.units if u.places and u.code not in active | visited]
    seen = await visited_households(state.db)
    behind = [line for u in units.units for line in place_coverage(u, seen, campaign) if line.behind]
    return Supervision(
        on=today,
        contacts=await missing_contacts_of(state),
        summary_tables_deadline=overview.deadline,
        summary_tables_late=[line for line in overview.units if line.late or line.overdue],
        week_start=week_start,
        quiet_units=quiet,
        places_behind=behind,
    )


@router.get("", response_model=Supervision)
async def supervision(request: Request, member: DistrictReader) -> Supervision:
    """Units late with contacts, weekly progress or summary tables; places below their coverage target."""
    return await supervision_of(request.app.state)


def supervision_xlsx(report: Supervision, unit_names: dict[str, str], campaign_name: str) -> bytes:
    """The notice (通报) as a workbook: one sheet per kind of lateness, every cell safe against formulas."""
    book = Workbook()
    sheets: list[tuple[str, list[str], list[list[Any]]]] = [
        (
            "未报送联络人",
            ["单位", "截止日期", "是否逾期"],
            [[u["name"], report.contacts.deadline, "是" if report.contacts.late else "否"] for u in report.contacts.units],
        ),
        (
            "汇总表逾期",
            ["单位", "状态", "报送时间", "情况"],
            [
                [
                    unit_names.get(line.unit, line.unit),
                    line.state,
                    line.submitted_at.isoformat() if line.submitted_at else "",
                    "逾期报送" if line.late else "逾期未报",
                ]
                for line in report.summary_tables_late
            ],
        ),
        ("本周无进展", ["单位", "统计周期"], [[q.name, f"{report.week_start}至{report.on}"] for q in report.quiet_units]),
        (
            "覆盖率未达标",
            ["单位", "村/社区", "户数", "已走访户数", "覆盖率", "目标"],
            [
                [unit_names.get(p.unit, p.unit), p.place, p.households, p.visited, f"{(p.rate or 0):.1%}", f"{p.target:.0%}"]
                for p in report.places_behind
            ],
        ),
    ]
    for index, (title, header, rows) in enumerate(sheets):
        sheet = book.active if index == 0 else book.create_sheet()
        sheet.title = title
        sheet.append([safe_cell(f"{campaign_name}督查通报（{report.on:%Y年%m月%d日}）：{title}")])
        sheet["A1"].font = Font(bold=True, size=13)
        sheet.append([safe_cell(h) for h in header])
        for row in rows or [["（无）"]]:
            sheet.append([safe_cell(value) for value in row])
        for column in "ABCDEF":
            sheet.column_dimensions[column].width = 18
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@router.get("/xlsx", response_class=Response, responses={200: {"content": {XLSX: {}}}})
async def supervision_notice(request: Request, member: DistrictReader) -> Response:
    state = request.app.state
    report = await supervision_of(state)
    names = {u.code: u.name for u in state.units.units}
    data = supervision_xlsx(report, names, state.campaign.name)
    disposition = f'attachment; filename="supervision-{report.on}.xlsx"'
    return Response(data, media_type=XLSX, headers={"Content-Disposition": disposition})
