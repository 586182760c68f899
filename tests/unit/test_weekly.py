"""The weekly progress report: report days in the campaign's zone, figures, and the workbook a clerk hands in."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime

import pytest
from openpyxl import load_workbook

from minsheng_core.campaign import Category, load_campaign
from minsheng_core.units import UnitRegistry, load_units
from minsheng_store.weekly import (
    CHANNEL_NAMES,
    assemble_report,
    default_report_date,
    due_report_dates,
    next_report_date,
    report_xlsx,
    safe_cell,
)

CAMPAIGN = load_campaign()  # 2019-10-15 (a Tuesday) … 2019-11-15 (a Friday), reports on Fridays
GENERATED = datetime(2019, 11, 15, 9, 30, tzinfo=UTC)
CHANNELS_IN_CHINESE = ["网站", "微信公众号", "电视热线", "热线录音", "入户走访", "座谈会"]


def row(unit: str, category: str, channel: str, count: int) -> dict:
    return {"unit": unit, "category": category, "channel": channel, "count": count}


# ------------------------------------------------------------------------------------------------------ report days


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2019, 10, 17, 15, 59, tzinfo=UTC), date(2019, 10, 18)),  # Thursday 23:59 in Shanghai
        (datetime(2019, 10, 17, 16, 0, tzinfo=UTC), date(2019, 10, 18)),  # Friday 00:00 in Shanghai, Thursday in UTC
        (datetime(2019, 10, 18, 15, 59, tzinfo=UTC), date(2019, 10, 18)),  # Friday 23:59 in Shanghai
        (datetime(2019, 10, 18, 16, 0, tzinfo=UTC), date(2019, 10, 25)),  # Saturday 00:00 in Shanghai, Friday in UTC
        (datetime(2019, 10, 14, 12, 0, tzinfo=UTC), date(2019, 10, 18)),  # before the window: still the weekday
        (datetime(2019, 10, 18, 15, 0), date(2019, 10, 18)),  # naive: taken as UTC
    ],
)
def test_next_report_date_is_the_report_weekday_on_or_after_today_in_shanghai(now, expected):
    assert next_report_date(CAMPAIGN, now) == expected
    assert expected.weekday() == CAMPAIGN.weekly_report_weekday == 4


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2019, 10, 1), []),
        (date(2019, 10, 17), []),
        (date(2019, 10, 18), [date(2019, 10, 18)]),
        (date(2019, 10, 24), [date(2019, 10, 18)]),
        (date(2019, 11, 14), [date(2019, 10, 18), date(2019, 10, 25), date(2019, 11, 1), date(2019, 11, 8)]),
        (date(2019, 11, 15), [date(2019, 10, 18), date(2019, 10, 25), date(2019, 11, 1), date(2019, 11, 8), date(2019, 11, 15)]),
        (date(2020, 3, 1), [date(2019, 10, 18), date(2019, 10, 25), date(2019, 11, 1), date(2019, 11, 8), date(2019, 11, 15)]),
    ],
)
def test_due_report_dates_are_the_report_days_inside_the_window_up_to_today(today, expected):
    assert due_report_dates(CAMPAIGN, today) == expected


def test_due_report_dates_follow_the_configured_weekday_and_include_an_opening_report_day():
    mondays = CAMPAIGN.model_copy(update={"weekly_report_day": "monday"})
    assert due_report_dates(mondays, date(2019, 12, 1)) == [
        date(2019, 10, 21),
        date(2019, 10, 28),
        date(2019, 11, 4),
        date(2019, 11, 11),
    ]
    opening_friday = load_campaign(opens_on=date(2019, 10, 18))
    assert due_report_dates(opening_friday, date(2019, 10, 18)) == [date(2019, 10, 18)]
    tuesdays = CAMPAIGN.model_copy(update={"weekly_report_day": "tuesday"})
    assert due_report_dates(tuesdays, date(2019, 10, 15)) == [date(2019, 10, 15)]  # the opening day itself


def test_default_report_date_is_the_latest_report_day_or_today():
    assert default_report_date(CAMPAIGN, date(2019, 10, 16)) == date(2019, 10, 16)
    assert default_report_date(CAMPAIGN, date(2019, 10, 30)) == date(2019, 10, 25)
    assert default_report_date(CAMPAIGN, date(2020, 1, 6)) == date(2019, 11, 15)


# ------------------------------------------------------------------------------------------------------ figures

WEEK = [row("xidi", "road_traffic", "web", 2), row("xidi", "road_traffic", "wechat", 1), row("luanhe", "health", "web", 4)]
TOTAL = [
    row("xidi", "road_traffic", "web", 5),
    row("xidi", "road_traffic", "wechat", 1),
    row("xidi", "unclassified", "hotline", 1),
    row("luanhe", "health", "web", 9),
]


def test_unit_report_splits_new_and_total_by_category_and_channel_and_keeps_to_the_unit():
    units = load_units()
    report = assemble_report(CAMPAIGN, units, "xidi", date(2019, 11, 15), WEEK, TOTAL, {}, GENERATED)
    assert (report.unit_name, report.week_start, report.new, report.total) == ("西地镇", date(2019, 11, 9), 3, 7)
    assert [c.channel for c in report.channels] == ["web", "wechat", "hotline", "hotline_transcript", "door_to_door", "symposium"]
    web = report.channels[0]
    assert (web.name, web.new, web.total) == ("网站", 2, 5)
    road = next(c for c in report.categories if c.category == "road_traffic")
    assert (road.name, road.new, road.total) == ("道路交通", 3, 6)
    assert (road.channels["wechat"].new, road.channels["wechat"].total) == (1, 1)
    assert report.categories[-1].category == "unclassified" and report.categories[-1].name == "待分类"
    assert all(c.total == 0 for c in report.categories if c.category == "health")  # luanhe's, not xidi's
    assert report.units == [] and report.units_behind == []


def test_coverage_against_targets_and_the_units_behind_in_the_district_report():
    units = load_units()
    xidi = units.unit("xidi")
    # every xidi place at 90 %: enough for the others, not for the programme villages (95 %)
    visited = {("xidi", p.name): -(-p.households * 9 // 10) for p in xidi.places}
    yuanbaoshan = units.unit("yuanbaoshan")
    visited |= {("yuanbaoshan", p.name): p.households for p in yuanbaoshan.places}
    report = assemble_report(CAMPAIGN, units, None, date(2019, 11, 15), WEEK, TOTAL, visited, GENERATED)
    assert (report.unit, report.unit_name, report.new, report.total) == (None, "双滦区", 7, 16)
    by_place = {(p.unit, p.place): p for p in report.coverage}
    programme = by_place[("xidi", "碾子沟村")]
    assert programme.programme and programme.target == 0.95 and programme.behind
    other = by_place[("xidi", "西地村")]
    assert not other.programme and other.target == 0.90 and not other.behind and other.rate == pytest.approx(635 / 705)
    assert by_place[("luanhe", "石佛村")].visited == 0 and by_place[("luanhe", "石佛村")].behind
    lines = {line.unit: line for line in report.units}
    assert [line.unit for line in report.units] == [u.code for u in units.units]
    assert (lines["xidi"].new, lines["xidi"].total, lines["xidi"].places_behind) == (3, 7, 2)
    assert lines["yuanbaoshan"].coverage == 1.0 and not lines["yuanbaoshan"].behind
    assert not lines["npc_office"].behind and lines["npc_office"].coverage is None  # an office has no places
    behind = {b.unit: b for b in report.units_behind}
    assert sorted(behind["xidi"].places_behind) == ["东营子村", "碾子沟村"]
    assert "yuanbaoshan" not in behind and "npc_office" not in behind and "luanhe" in behind


def test_a_places_surplus_does_not_hide_anothers_gap():
    units = load_units()
    places = units.unit("xidi").places
    visited = {("xidi", places[0].name): places[0].households * 3}
    report = assemble_report(CAMPAIGN, units, "xidi", date(2019, 11, 15), [], [], visited, GENERATED)
    assert report.coverage[0].rate == 3.0
    assert report.coverage_rate == pytest.approx(places[0].households / sum(p.households for p in places))


# ------------------------------------------------------------------------------------------------------ workbook


def test_safe_cell_neutralises_what_a_spreadsheet_would_take_for_a_formula():
    for text in ("=1+1", "+86 138", "-2+3", "@SUM(A1)", "\t=1", "\r=1"):
        assert safe_cell(text) == "'" + text
    for value in ("西地村", "a=b", "", 5, -3, 0.5, None):
        assert safe_cell(value) == value


def test_unit_workbook_has_the_title_chinese_headers_and_the_numbers():
    units = load_units()
    report = assemble_report(CAMPAIGN, units, "xidi", date(2019, 11, 15), WEEK, TOTAL, {("xidi", "西地村"): 700}, GENERATED)
    book = load_workbook(io.BytesIO(report_xlsx(report)))
    assert book.sheetnames == ["汇总", "入户覆盖率"]
    summary = book["汇总"]
    assert summary["A1"].value == "西地镇民心工程意见建议征集周报（截至2019年11月15日）"
    assert "A1:O1" in {str(r) for r in summary.merged_cells.ranges}
    assert summary["A4"].value == "类别"
    assert [summary.cell(row=4, column=2 + 2 * i).value for i in range(7)] == [*CHANNELS_IN_CHINESE, "合计"]
    assert list(CHANNEL_NAMES.values()) == CHANNELS_IN_CHINESE
    assert [summary.cell(row=5, column=c).value for c in (2, 3)] == ["本周新增", "累计"]
    names = [summary.cell(row=r, column=1).value for r in range(6, 6 + len(report.categories) + 1)]
    assert names[:3] == ["道路交通", "住房安居", "环境保护"] and names[-2:] == ["待分类", "合计"]
    road = 6
    assert [summary.cell(row=road, column=c).value for c in (2, 3, 4, 5, 14, 15)] == [2, 5, 1, 1, 3, 6]
    total_row = 6 + len(report.categories)
    assert [summary.cell(row=total_row, column=c).value for c in (14, 15)] == [3, 7]
    assert summary.column_dimensions["A"].width >= 10 and summary.column_dimensions["B"].width >= 8
    coverage = book["入户覆盖率"]
    assert [c.value for c in coverage[4]] == [
        "村（社区）",
        "类型",
        "人居环境改善项目村",
        "户数",
        "已走访户数",
        "覆盖率",
        "目标",
        "是否达标",
    ]
    first = [c.value for c in coverage[5]]
    assert first[:5] == ["西地村", "村", "否", 705, 700] and first[5] == pytest.approx(700 / 705) and first[6:] == [0.9, "达标"]
    assert coverage.cell(row=5, column=6).number_format == "0.0%"
    assert [c.value for c in coverage[6]][-1] == "未达标"


def test_district_workbook_has_the_units_progress_and_the_units_behind():
    units = load_units()
    report = assemble_report(CAMPAIGN, units, None, date(2019, 11, 15), WEEK, TOTAL, {}, GENERATED)
    book = load_workbook(io.BytesIO(report_xlsx(report)))
    assert book.sheetnames == ["汇总", "入户覆盖率", "各单位进度", "落后单位"]
    assert book["汇总"]["A1"].value == "双滦区民心工程意见建议征集周报（截至2019年11月15日）"
    assert book["入户覆盖率"]["A4"].value == "单位"
    progress = book["各单位进度"]
    assert progress["A4"].value == "单位" and progress["I4"].value == "进度"
    lines = {r[0].value: [c.value for c in r] for r in progress.iter_rows(min_row=5)}
    assert lines["西地镇"][1:3] == [3, 7] and lines["西地镇"][-1] == "落后"
    assert lines["区人大常委会办公室"][-1] == "正常"
    assert lines["合计"][1:3] == [7, 16]
    behind = book["落后单位"]
    assert {r[0].value for r in behind.iter_rows(min_row=5)} == {u.name for u in units.units if u.places}


def hostile_registry() -> UnitRegistry:
    return UnitRegistry.model_validate(
        {
            "district": {"code": "district_office", "name": "双滦区人民政府办公室"},
            "units": [
                {
                    "code": "xidi",
                    "name": "西地镇",
                    "kind": "town",
                    "places": [
                        {"name": '=HYPERLINK("http://evil","点这里")', "kind": "village", "households": 100},
                        {"name": "@SUM(1+1)*cmd|' /C calc'!A0", "kind": "community", "households": 50},
                    ],
                }
            ],
        }
    )


def test_text_that_looks_like_a_formula_is_never_a_formula_in_the_workbook():
    campaign = CAMPAIGN.model_copy(
        update={"categories": (Category(code="road_traffic", name="=1+1"), Category(code="other", name="-2+3"))}
    )
    units = hostile_registry()
    rows = [row("xidi", "road_traffic", "web", 1), row("xidi", "other", "web", 2)]
    for unit in ("xidi", None):
        data = report_xlsx(assemble_report(campaign, units, unit, date(2019, 11, 15), rows, rows, {}, GENERATED))
        book = load_workbook(io.BytesIO(data))
        cells = [c for ws in book.worksheets for r in ws.iter_rows() for c in r if c.value is not None]
        assert not [c.coordinate for c in cells if c.data_type == "f"]
        texts = {c.value for c in cells if isinstance(c.value, str)}
        assert {"'=1+1", "'-2+3", '\'=HYPERLINK("http://evil","点这里")', "'@SUM(1+1)*cmd|' /C calc'!A0"} <= texts
        assert not any(t.startswith(("=", "+", "-", "@")) for t in texts)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            sheets = [archive.read(n) for n in archive.namelist() if n.startswith("xl/worksheets/sheet")]
        assert sheets and not any(b"<f>" in s or b"<f " in s for s in sheets)
