"""The weekly progress report (每周进度), per unit and for the district, as data and as a workbook a clerk hands in.

A report week is the 7 days ending on the report date, inclusive, in the campaign's time zone. Counts come from the
incrementally kept tallies (never a scan of the suggestions); door-to-door coverage from the ``coverage`` collection
(one document per place: ``{_id: "<unit>|<place>", unit, place, visited}``; no document means nobody visited yet),
households and the living-environment programme flag from the unit registry.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from pydantic import BaseModel, Field

from minsheng_core.campaign import Campaign
from minsheng_core.events import Channel
from minsheng_core.units import PlaceKind, Unit, UnitRegistry
from minsheng_store.outcomes import OutcomesReport, assemble_outcomes, notification_rows, outcome_rows
from minsheng_store.tallies import UNASSIGNED, UNCLASSIFIED

REPORT_WEEK_DAYS = 7
DISTRICT = "district"  # what stands for the district where a unit code would be (archive ids, file names)
CHANNEL_NAMES: dict[str, str] = {
    Channel.WEB: "网站",
    Channel.WECHAT: "微信公众号",
    Channel.HOTLINE: "电视热线",
    Channel.HOTLINE_TRANSCRIPT: "热线录音",
    Channel.DOOR_TO_DOOR: "入户走访",
    Channel.SYMPOSIUM: "座谈会",
}
UNCLASSIFIED_NAME = "待分类"
UNASSIGNED_NAME = "待分派单位"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# ---------------------------------------------------------------------------------------------------------- model


class Count(BaseModel):
    new: int = Field(default=0, description="in the report week")
    total: int = Field(default=0, description="from the start of the campaign to the report date")


class ChannelLine(Count):
    channel: str
    name: str


class CategoryLine(Count):
    category: str
    name: str
    channels: dict[str, Count] = Field(description="by channel code, every channel present")


class PlaceCoverage(BaseModel):
    unit: str
    place: str
    kind: str
    programme: bool = Field(description="village of the living-environment programme (人居环境改善)")
    households: int | None
    visited: int
    rate: float | None = Field(description="visited / households; None while households are unknown")
    target: float
    behind: bool = Field(description="below the target")


class UnitLine(Count):
    """One unit's line in the district report."""

    unit: str
    name: str
    places: int
    places_behind: int
    households: int
    visited: int
    coverage: float | None = Field(description="over all its places; visits beyond a place's households do not count")
    behind: bool


class UnitBehind(BaseModel):
    unit: str
    name: str
    places_behind: list[str]


class WeeklyReport(BaseModel):
    """A unit's or the district's progress in the week ending on the report date."""

    campaign: str
    timezone: str = Field(description="the campaign's: days and the week are counted there")
    unit: str | None = Field(description="unit code, None for the district")
    unit_name: str
    report_date: date
    week_start: date
    generated_at: datetime
    new: int
    total: int
    channels: list[ChannelLine]
    categories: list[CategoryLine]
    coverage: list[PlaceCoverage] = Field(description="the unit's places (every unit's for the district)")
    coverage_rate: float | None
    places_behind: int
    units: list[UnitLine] = Field(default_factory=list, description="district report only")
    units_behind: list[UnitBehind] = Field(default_factory=list, description="district report only")
    outcomes: OutcomesReport | None = Field(
        default=None, description="decisions released up to the report date (the last of each suggestion), notifications sent"
    )

    @property
    def is_district(self) -> bool:
        return self.unit is None


# ---------------------------------------------------------------------------------------------------------- dates


def report_week(report_date: date) -> tuple[date, date]:
    """[first day, day after the last) of the report week ending on report_date."""
    return report_date - timedelta(days=REPORT_WEEK_DAYS - 1), report_date + timedelta(days=1)


def next_report_date(campaign: Campaign, now: datetime) -> date:
    """The next report day on or after today in the campaign's zone (a naive ``now`` is taken as UTC)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    today = now.astimezone(campaign.zone).date()
    return today + timedelta(days=(campaign.weekly_report_weekday - today.weekday()) % 7)


def due_report_dates(campaign: Campaign, today: date) -> list[date]:
    """Every report day inside the collection window, up to today (a date in the campaign's zone)."""
    first = campaign.opens_on + timedelta(days=(campaign.weekly_report_weekday - campaign.opens_on.weekday()) % 7)
    last = min(campaign.closes_on, today)
    days = []
    while first <= last:
        days.append(first)
        first += timedelta(days=7)
    return days


def default_report_date(campaign: Campaign, today: date) -> date:
    """The latest report day up to today, or today before the first one."""
    due = due_report_dates(campaign, today)
    return due[-1] if due else today


# ---------------------------------------------------------------------------------------------------------- build


def district_name(units: UnitRegistry) -> str:
    """The district as a title names it: 双滦区 for 双滦区人民政府办公室, 全区 when it cannot be told."""
    name = units.district.name
    return name.split("人民政府")[0] if "人民政府" in name and name.split("人民政府")[0] else "全区"


def unit_name(units: UnitRegistry, code: str) -> str:
    if code == units.district.code:
        return units.district.name
    if code == UNASSIGNED:
        return UNASSIGNED_NAME
    found = units.unit(code)
    return found.name if found else code


def _category_name(campaign: Campaign, code: str) -> str:
    return UNCLASSIFIED_NAME if code == UNCLASSIFIED else campaign.category_name(code)


def place_coverage(unit: Unit, visited: dict[tuple[str, str], int], campaign: Campaign) -> list[PlaceCoverage]:
    """Each place of the unit: households, visited, rate and whether it is below its target."""
    lines = []
    for place in unit.places:
        households = place.households
        seen = visited.get((unit.code, place.name), 0)
        rate = seen / households if households else None
        target = campaign.coverage_targets.for_place(place.living_environment_programme)
        lines.append(
            PlaceCoverage(
                unit=unit.code,
                place=place.name,
                kind=place.kind.value,
                programme=place.living_environment_programme,
                households=households,
                visited=seen,
                rate=rate,
                target=target,
                behind=rate is not None and rate < target,
            )
        )
    return lines


def _overall(places: list[PlaceCoverage]) -> tuple[int, int, float | None]:
    """(households, visited, rate) over places with known households; a place's surplus does not hide another's gap."""
    known = [p for p in places if p.households]
    households = sum(p.households or 0 for p in known)
    visited = sum(min(p.visited, p.households or 0) for p in known)
    return households, visited, (visited / households if households else None)


def assemble_report(
    campaign: Campaign,
    units: UnitRegistry,
    unit: str | None,
    report_date: date,
    week_rows: Iterable[dict[str, Any]],
    total_rows: Iterable[dict[str, Any]],
    visited: dict[tuple[str, str], int],
    generated_at: datetime | None = None,
    outcomes: OutcomesReport | None = None,
) -> WeeklyReport:
    """The report from tally rows ({unit, category, channel, count}) of the week and up to the report date, and the
    visited households by (unit, place). Rows of other units than the one reported are ignored."""
    in_scope = (lambda row: True) if unit is None else (lambda row: row["unit"] == unit)
    week = [r for r in week_rows if in_scope(r)]
    total = [r for r in total_rows if in_scope(r)]

    channel_codes = [c.value for c in Channel]
    category_codes = campaign.category_codes()
    for row in (*week, *total):  # categories no longer in the taxonomy, and not yet classified, still count
        if row["category"] not in category_codes:
            category_codes.append(row["category"])
        if row["channel"] not in channel_codes:
            channel_codes.append(row["channel"])
    if UNCLASSIFIED in category_codes:  # last, where a clerk expects "the rest"
        category_codes.remove(UNCLASSIFIED)
        category_codes.append(UNCLASSIFIED)

    cells: dict[tuple[str, str], Count] = {(cat, ch): Count() for cat in category_codes for ch in channel_codes}
    for row in week:
        cells[(row["category"], row["channel"])].new += row["count"]
    for row in total:
        cells[(row["category"], row["channel"])].total += row["count"]

    categories = []
    for cat in category_codes:
        by_channel = {ch: cells[(cat, ch)] for ch in channel_codes}
        categories.append(
            CategoryLine(
                category=cat,
                name=_category_name(campaign, cat),
                channels=by_channel,
                new=sum(c.new for c in by_channel.values()),
                total=sum(c.total for c in by_channel.values()),
            )
        )
    channels = [
        ChannelLine(
            channel=ch,
            name=CHANNEL_NAMES.get(ch, ch),
            new=sum(cells[(cat, ch)].new for cat in category_codes),
            total=sum(cells[(cat, ch)].total for cat in category_codes),
        )
        for ch in channel_codes
    ]

    reported_units = list(units.units) if unit is None else [u for u in units.units if u.code == unit]
    coverage = [line for u in reported_units for line in place_coverage(u, visited, campaign)]
    _, _, rate = _overall(coverage)

    unit_lines: list[UnitLine] = []
    behind: list[UnitBehind] = []
    if unit is None:
        codes = [u.code for u in units.units]
        codes += sorted({r["unit"] for r in (*week, *total)} - set(codes))  # the district office, unassigned
        for code in codes:
            places = [p for p in coverage if p.unit == code]
            households, seen, unit_rate = _overall(places)
            late = [p.place for p in places if p.behind]
            unit_lines.append(
                UnitLine(
                    unit=code,
                    name=unit_name(units, code),
                    new=sum(r["count"] for r in week if r["unit"] == code),
                    total=sum(r["count"] for r in total if r["unit"] == code),
                    places=len(places),
                    places_behind=len(late),
                    households=households,
                    visited=seen,
                    coverage=unit_rate,
                    behind=bool(late),
                )
            )
            if late:
                behind.append(UnitBehind(unit=code, name=unit_name(units, code), places_behind=late))

    return WeeklyReport(
        campaign=campaign.name,
        timezone=campaign.timezone,
        unit=unit,
        unit_name=district_name(units) if unit is None else unit_name(units, unit),
        report_date=report_date,
        week_start=report_week(report_date)[0],
        generated_at=generated_at or datetime.now(UTC),
        new=sum(c.new for c in categories),
        total=sum(c.total for c in categories),
        channels=channels,
        categories=categories,
        coverage=coverage,
        coverage_rate=rate,
        places_behind=sum(1 for p in coverage if p.behind),
        units=unit_lines,
        units_behind=behind,
        outcomes=outcomes,
    )


async def visited_households(db: Any, unit: str | None = None) -> dict[tuple[str, str], int]:
    """Distinct households visited, by (unit, place), from the ``coverage`` collection."""
    visited: dict[tuple[str, str], int] = {}
    async for doc in db.coverage.find({} if unit is None else {"unit": unit}):
        code, _, place = str(doc.get("_id", "")).partition("|")
        key = (str(doc.get("unit") or code), str(doc.get("place") or place))
        count = doc.get("visited")
        visited[key] = count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0
    return visited


async def report_inputs(tallies: Any, db: Any, unit: str | None, report_date: date) -> tuple[list, list, dict]:
    """(week rows, rows up to the report date, visited households) for one unit or all of them."""
    since, until = report_week(report_date)
    week = await tallies.rows(unit=unit, since=since, until=until)
    total = await tallies.rows(unit=unit, until=until)
    return week, total, await visited_households(db, unit)


async def outcome_inputs(db: Any, unit: str | None, report_date: date, zone: ZoneInfo) -> tuple[list, list]:
    """(decisions, notifications) rows up to the end of the report date, for one unit or all of them."""
    until = datetime.combine(report_week(report_date)[1], time.min, zone)
    return await outcome_rows(db, unit, until), await notification_rows(db, unit, until)


async def build_report(
    tallies: Any,
    db: Any,
    units: UnitRegistry,
    campaign: Campaign,
    unit: str | None,
    report_date: date,
    generated_at: datetime | None = None,
) -> WeeklyReport:
    """The weekly report of one unit (None: the district) for the week ending on report_date."""
    week, total, visited = await report_inputs(tallies, db, unit, report_date)
    decided, told = await outcome_inputs(db, unit, report_date, campaign.zone)
    outcomes = assemble_outcomes(campaign, units, unit, decided, told, generated_at)
    return assemble_report(campaign, units, unit, report_date, week, total, visited, generated_at, outcomes)


# ---------------------------------------------------------------------------------------------------------- workbook


def safe_cell(value: Any) -> Any:
    """A value safe to put in a spreadsheet cell: text that a spreadsheet would take for a formula (starting with
    = + - @, tab or carriage return) gets a leading apostrophe; everything else is returned as it is."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


_THIN = Side(style="thin", color="999999")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEAD_FILL = PatternFill("solid", fgColor="DDEBF7")
_BEHIND_FILL = PatternFill("solid", fgColor="FCE4D6")
_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
_PERCENT = "0.0%"


def _put(ws: Worksheet, row: int, column: int, value: Any, *, head: bool = False, number_format: str | None = None) -> None:
    cell = ws.cell(row=row, column=column)
    cell.value = safe_cell(value)
    if isinstance(cell.value, str):
        cell.data_type = "s"  # never a formula, whatever openpyxl would infer
    cell.border = _BORDER
    if head:
        cell.font = Font(bold=True)
        cell.fill = _HEAD_FILL
        cell.alignment = _CENTER
    if number_format:
        cell.number_format = number_format


def _title(ws: Worksheet, text: str, subtitle: str, columns: int) -> int:
    """Title and subtitle rows merged over the table's width; returns the next free row."""
    _put(ws, 1, 1, text)
    ws.cell(row=1, column=1).font = Font(bold=True, size=14)
    ws.cell(row=1, column=1).alignment = Alignment(horizontal="center", vertical="center")
    ws.cell(row=1, column=1).border = Border()
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=columns)
    ws.row_dimensions[1].height = 28
    _put(ws, 2, 1, subtitle)
    ws.cell(row=2, column=1).border = Border()
    ws.merge_cells(start_row=2, start_column=1, end_row=2, end_column=columns)
    return 4


def _display_width(value: Any) -> int:
    text = f"{value:.1%}" if isinstance(value, float) else str(value if value is not None else "")
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _fit_columns(ws: Worksheet, first_row: int, minimum: int = 8, maximum: int = 60) -> None:
    """Column widths from the content below the (merged) title rows."""
    widths: dict[int, int] = {}
    for row in ws.iter_rows(min_row=first_row):
        for cell in row:
            if cell.value is not None and hasattr(cell, "column"):
                widths[cell.column] = max(widths.get(cell.column, 0), _display_width(cell.value))
    for column in range(1, ws.max_column + 1):
        ws.column_dimensions[get_column_letter(column)].width = min(max(widths.get(column, 0) + 2, minimum), maximum)


def _percent(rate: float | None) -> float | str:
    return "—" if rate is None else rate


def report_title(report: WeeklyReport) -> str:
    """XX镇民心工程意见建议征集周报（截至YYYY年MM月DD日）"""
    campaign = re.sub(r"^\d{4}年", "", report.campaign)  # the year is in the date
    return f"{report.unit_name}{campaign}周报（截至{report.report_date:%Y年%m月%d日}）"


def _summary_sheet(ws: Worksheet, report: WeeklyReport) -> None:
    channels = report.channels
    columns = 1 + 2 * (len(channels) + 1)
    subtitle = (
        f"统计周期：{report.week_start:%Y年%m月%d日}至{report.report_date:%Y年%m月%d日}　"
        f"本周新增{report.new}条，累计{report.total}条　"
        f"入户覆盖率：{'—' if report.coverage_rate is None else f'{report.coverage_rate:.1%}'}　"
        f"生成时间：{report.generated_at.astimezone(ZoneInfo(report.timezone)):%Y-%m-%d %H:%M}"
    )
    row = _title(ws, report_title(report), subtitle, columns)
    _put(ws, row, 1, "类别", head=True)
    _put(ws, row + 1, 1, None, head=True)
    ws.merge_cells(start_row=row, start_column=1, end_row=row + 1, end_column=1)
    for i, name in enumerate([c.name for c in channels] + ["合计"]):
        column = 2 + 2 * i
        _put(ws, row, column, name, head=True)
        _put(ws, row, column + 1, None, head=True)
        ws.merge_cells(start_row=row, start_column=column, end_row=row, end_column=column + 1)
        _put(ws, row + 1, column, "本周新增", head=True)
        _put(ws, row + 1, column + 1, "累计", head=True)
    row += 2
    for category in report.categories:
        _put(ws, row, 1, category.name)
        for i, channel in enumerate(channels):
            count = category.channels[channel.channel]
            _put(ws, row, 2 + 2 * i, count.new)
            _put(ws, row, 3 + 2 * i, count.total)
        _put(ws, row, columns - 1, category.new)
        _put(ws, row, columns, category.total)
        row += 1
    _put(ws, row, 1, "合计", head=True)
    for i, channel in enumerate(channels):
        _put(ws, row, 2 + 2 * i, channel.new, head=True)
        _put(ws, row, 3 + 2 * i, channel.total, head=True)
    _put(ws, row, columns - 1, report.new, head=True)
    _put(ws, row, columns, report.total, head=True)
    ws.freeze_panes = "B6"
    _fit_columns(ws, 4)
    ws.column_dimensions["A"].width = max(ws.column_dimensions["A"].width, 14)


def _coverage_sheet(ws: Worksheet, report: WeeklyReport, units: dict[str, str]) -> None:
    heads = (["单位"] if report.is_district else []) + [
        "村（社区）",
        "类型",
        "人居环境改善项目村",
        "户数",
        "已走访户数",
        "覆盖率",
        "目标",
        "是否达标",
    ]
    rate = "—" if report.coverage_rate is None else f"{report.coverage_rate:.1%}"
    subtitle = f"入户覆盖率：{rate}　未达标村（社区）{report.places_behind}个"
    row = _title(ws, f"{report.unit_name}入户征集覆盖率（截至{report.report_date:%Y年%m月%d日}）", subtitle, len(heads))
    for column, head in enumerate(heads, start=1):
        _put(ws, row, column, head, head=True)
    for place in report.coverage:
        row += 1
        values: list[Any] = [units.get(place.unit, place.unit)] if report.is_district else []
        values += [
            place.place,
            "村" if place.kind == PlaceKind.VILLAGE else "社区",
            "是" if place.programme else "否",
            "—" if place.households is None else place.households,
            place.visited,
            _percent(place.rate),
            place.target,
            "未达标" if place.behind else ("—" if place.rate is None else "达标"),
        ]
        for column, value in enumerate(values, start=1):
            _put(ws, row, column, value, number_format=_PERCENT if column >= len(values) - 2 and column < len(values) else None)
            if place.behind:
                ws.cell(row=row, column=column).fill = _BEHIND_FILL
    ws.freeze_panes = "A5"
    _fit_columns(ws, 4)


def _units_sheet(ws: Worksheet, report: WeeklyReport) -> None:
    heads = ["单位", "本周新增", "累计", "村（社区）数", "未达标村（社区）数", "户数", "已走访户数", "入户覆盖率", "进度"]
    row = _title(ws, f"各单位进度（截至{report.report_date:%Y年%m月%d日}）", f"落后单位{len(report.units_behind)}个", len(heads))
    for column, head in enumerate(heads, start=1):
        _put(ws, row, column, head, head=True)
    for line in report.units:
        row += 1
        values = [
            line.name,
            line.new,
            line.total,
            line.places,
            line.places_behind,
            line.households,
            line.visited,
            _percent(line.coverage),
            "落后" if line.behind else "正常",
        ]
        for column, value in enumerate(values, start=1):
            _put(ws, row, column, value, number_format=_PERCENT if column == 8 else None)
            if line.behind:
                ws.cell(row=row, column=column).fill = _BEHIND_FILL
    row += 1
    _put(ws, row, 1, "合计", head=True)
    for column, value in ((2, report.new), (3, report.total)):
        _put(ws, row, column, value, head=True)
    ws.freeze_panes = "B5"
    _fit_columns(ws, 4)


def _behind_sheet(ws: Worksheet, report: WeeklyReport) -> None:
    heads = ["单位", "未达标村（社区）数", "未达标村（社区）"]
    row = _title(ws, f"落后单位（截至{report.report_date:%Y年%m月%d日}）", "有村（社区）入户覆盖率低于目标的单位", len(heads))
    for column, head in enumerate(heads, start=1):
        _put(ws, row, column, head, head=True)
    for unit in report.units_behind:
        row += 1
        for column, value in enumerate([unit.name, len(unit.places_behind), "、".join(unit.places_behind)], start=1):
            _put(ws, row, column, value)
        ws.cell(row=row, column=3).alignment = Alignment(wrap_text=True, vertical="top")
    _fit_columns(ws, 4)


def _outcomes_sheet(ws: Worksheet, report: WeeklyReport, outcomes: OutcomesReport) -> None:
    reasons = list(outcomes.reason_names)
    heads = ["单位" if report.is_district else "类别", "采纳", "合并办理", "转交办理", "未采纳"]
    heads += [f"未采纳：{outcomes.reason_names[r]}" for r in reasons] + ["合计"]
    told = "　".join(f"{n.name}{n.count}条" for n in outcomes.notifications)
    subtitle = f"已答复{outcomes.overall.total}条　已告知建议人：{told}"
    row = _title(ws, f"{report.unit_name}办理结果（截至{report.report_date:%Y年%m月%d日}）", subtitle, len(heads))
    for column, head in enumerate(heads, start=1):
        _put(ws, row, column, head, head=True)
    lines = outcomes.units if report.is_district else outcomes.categories
    for line, total in [*((line, False) for line in lines), (outcomes.overall, True)]:
        row += 1
        name = "合计" if total else getattr(line, "name", "")
        values = [name, line.adopted, line.merged, line.referred, line.not_adopted]
        values += [line.not_adopted_by_reason.get(r, 0) for r in reasons] + [line.total]
        for column, value in enumerate(values, start=1):
            _put(ws, row, column, value, head=total)
    ws.freeze_panes = "B5"
    _fit_columns(ws, 4)


def report_xlsx(report: WeeklyReport) -> bytes:
    """The report as a workbook: 汇总, 入户覆盖率, for the district 各单位进度 and 落后单位, and 办理结果 once decided."""
    workbook = Workbook()
    summary = workbook.active
    summary.title = "汇总"
    _summary_sheet(summary, report)
    names = {line.unit: line.name for line in report.units}
    if not report.is_district and report.unit:
        names[report.unit] = report.unit_name
    _coverage_sheet(workbook.create_sheet("入户覆盖率"), report, names)
    if report.is_district:
        _units_sheet(workbook.create_sheet("各单位进度"), report)
        _behind_sheet(workbook.create_sheet("落后单位"), report)
    if report.outcomes is not None and report.outcomes.overall.total:  # once decisions are released
        _outcomes_sheet(workbook.create_sheet("办理结果"), report, report.outcomes)
    workbook.properties.title = safe_cell(report_title(report))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
