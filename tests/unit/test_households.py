"""Household counts and programme flags from the civil-affairs bureau's sheet into config/units.yaml (no network)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import openpyxl
import pytest

from minsheng_core.households import (
    MERGED,
    HouseholdsRejected,
    HouseholdsResult,
    HouseholdsUpdate,
    apply_households,
    main,
    read_households,
)
from minsheng_core.units import DEFAULT_UNITS_FILE, Place, UnitRegistry, load_units

HEADER = ["序号", "乡镇/街道", "村/社区", "户数", "人居环境改善项目村"]
TITLE = "双滦区各村（社区）户数及人居环境改善项目村统计表"


@pytest.fixture
def units_file(tmp_path: Path) -> Path:
    """A copy of the real registry, so that each test may change it."""
    path = tmp_path / "units.yaml"
    shutil.copyfile(DEFAULT_UNITS_FILE, path)
    return path


@pytest.fixture
def registry(units_file: Path) -> UnitRegistry:
    return load_units(units_file)


def xlsx(rows: list[list[object]], *, title: bool = True, header: list[str] = HEADER, merges: tuple[str, ...] = ()) -> bytes:
    """An .xlsx built in memory: an optional merged title row, the header, then the rows as given."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    if title:
        sheet.append([TITLE])
        sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(header))
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    for cells in merges:
        sheet.merge_cells(cells)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def csv_bytes(lines: list[str], encoding: str = "utf-8") -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def rejected(result: HouseholdsResult) -> dict[int, str]:
    return {p.row: p.reason for p in result.problems if p.kind == "rejected"}


def place_of(registry: UnitRegistry, code: str, name: str) -> Place:
    unit = registry.unit(code)
    assert unit is not None
    return next(p for p in unit.places if p.name == name)


# ------------------------------------------------------------------------------------------------------ good sheets


def test_xlsx_with_title_row_aliases_and_every_spelling_of_the_flag(registry: UnitRegistry) -> None:
    rows = [
        [1, "双塔山镇", "西山村", 520, "是"],
        [2, "双塔山", "大贵口", "846", "√"],  # unit and place aliases
        [3, "双塔山镇人民政府", "小贵口村委会", 437.0, None],  # empty flag: not a programme village
        [4, "滦河镇", "滦河镇石佛村", "1,234", "Y"],
        [5, "栾河", "桥头村", "489户", "N"],
        [6, "元宝山街道办事处", "红石拉", "３１２０", "否"],  # full-width digits
        [7, "偏桥子镇", "南沟", 356, True],  # 南沟 is also 大庙镇's: the unit tells them apart
        [8, "大庙镇", "南沟村", 0, 1],
        [9, "西地", "东营子", "468", "×"],
        [10, "陈栅子乡", "三道沟村", 302, "✓"],
    ]
    result = read_households(xlsx(rows), "户数表.xlsx", registry)
    assert result.problems == []
    assert result.updates == [
        HouseholdsUpdate("shuangtashan", "西山村", 520, True),
        HouseholdsUpdate("shuangtashan", "大贵口村", 846, True),
        HouseholdsUpdate("shuangtashan", "小贵口村", 437, False),
        HouseholdsUpdate("luanhe", "石佛村", 1234, True),
        HouseholdsUpdate("luanhe", "桥头村", 489, False),
        HouseholdsUpdate("yuanbaoshan", "红石砬社区", 3120, False),
        HouseholdsUpdate("pianqiaozi", "南沟村", 356, True),
        HouseholdsUpdate("damiao", "南沟村", 0, True),
        HouseholdsUpdate("xidi", "东营子村", 468, False),
        HouseholdsUpdate("chenzhazi", "三道沟村", 302, True),
    ]
    assert result.rows["shuangtashan/西山村"] == 3  # the title row and the header come first


def test_header_synonyms_any_column_order_and_extra_columns(registry: UnitRegistry) -> None:
    header = ["人居环境改善项目村（是/否）", "备注", "户数（户）", "村（社区）", "乡镇（街道）"]
    result = read_households(xlsx([["是", "新", 700, "西地村", "西地镇"]], header=header, title=False), "a.xlsx", registry)
    assert result.updates == [HouseholdsUpdate("xidi", "西地村", 700, True)]

    header = ["所属乡镇", "行政村", "总户数", "是否项目村"]
    result = read_households(xlsx([["西地镇", "西地村", 701, "否"]], header=header), "b.xlsx", registry)
    assert result.updates == [HouseholdsUpdate("xidi", "西地村", 701, False)]


def test_town_merged_down_over_its_villages_is_read_for_each(registry: UnitRegistry) -> None:
    rows = [
        [1, "双塔山镇", "西山村", 512, "否"],
        [2, None, "大贵口村", 846, "是"],
        [3, None, "小贵口村", 437, "否"],
        [4, "钢城街道", "钢城社区", 2960, ""],
    ]
    result = read_households(xlsx(rows, merges=("B3:B5",)), "a.xlsx", registry)
    assert result.problems == []
    assert [(u.unit, u.place) for u in result.updates] == [
        ("shuangtashan", "西山村"),
        ("shuangtashan", "大贵口村"),
        ("shuangtashan", "小贵口村"),
        ("gangcheng", "钢城社区"),
    ]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_csv_in_each_encoding_with_a_title_row(registry: UnitRegistry, encoding: str) -> None:
    lines = [TITLE + ",,,", "乡镇/街道,村/社区,户数,人居环境改善项目村", "双塔山镇,西山村,515,是", "钢城,马营子,2185,"]
    result = read_households(csv_bytes(lines, encoding), "户数表.csv", registry)
    assert result.problems == []
    assert result.updates == [
        HouseholdsUpdate("shuangtashan", "西山村", 515, True),
        HouseholdsUpdate("gangcheng", "马营子社区", 2185, False),
    ]


def test_csv_with_semicolons(registry: UnitRegistry) -> None:
    data = csv_bytes(["乡镇/街道;村/社区;户数;人居环境改善项目村", "双塔山镇;西山村;1000;否"])
    assert read_households(data, "a.csv", registry).updates == [HouseholdsUpdate("shuangtashan", "西山村", 1000, False)]


def test_empty_rows_are_skipped_silently_and_total_rows_are_listed(registry: UnitRegistry) -> None:
    rows = [
        [1, "双塔山镇", "西山村", 512, "否"],
        [2, None, None, None, None],  # numbered but empty
        [None, "", "  ", None, ""],
        [3, "双塔山镇", "小计", 512, None],
        [4, "合计", None, 512, None],
    ]
    result = read_households(xlsx(rows), "a.xlsx", registry)
    assert len(result.updates) == 1
    assert [(p.row, p.kind) for p in result.problems] == [(6, "skipped"), (7, "skipped")]
    assert result.rejected == []


# ------------------------------------------------------------------------------------------------------- bad rows


def test_each_bad_row_is_rejected_with_its_row_number_and_reason(registry: UnitRegistry) -> None:
    rows = [
        [1, "双塔山镇", "西山村", 512, "否"],  # good: row 3
        [2, "承德县", "西山村", 10, "否"],
        [3, "双塔山镇", "不存在村", 10, "否"],
        [4, "滦河镇", "西山村", 10, "否"],  # 西山村 is 双塔山镇's
        [5, "双塔山镇", "小贵口村", "约500", "否"],
        [6, "双塔山镇", "三道沟村", "5.5", "否"],
        [7, "双塔山镇", "老虎沟村", 5.5, "否"],
        [8, "双塔山镇", "东山嘴村", -3, "否"],
        [9, "双塔山镇", "黄土梁村", None, "否"],
        [10, "双塔山镇", "站前社区", 100, "待定"],
        [11, "区人大常委会办公室", "西山村", 1, "否"],
        [12, "双塔山镇", None, 1, "否"],
        [13, None, "铁路社区", 1, "否"],
        [14, "双塔山镇", "双塔山社区", 2_000_000, "否"],
        [15, "双塔山镇", "双塔山社区", "-12", "否"],
    ]
    result = read_households(xlsx(rows), "a.xlsx", registry)
    assert result.updates == [HouseholdsUpdate("shuangtashan", "西山村", 512, False)]
    reasons = rejected(result)
    assert sorted(reasons) == list(range(4, 18))
    assert "“承德县”不在本区的乡镇/街道名单中" in reasons[4]
    assert "“不存在村”不在双塔山镇的村/社区名单中" in reasons[5]
    assert reasons[6] == "村/社区“西山村”属于双塔山镇，不属于滦河镇"
    assert "户数“约500”不是整数" in reasons[7]
    assert "户数“5.5”不是整数" in reasons[8]
    assert "户数“5.5”不是整数" in reasons[9]
    assert "户数“-3”是负数" in reasons[10]
    assert reasons[11] == "“户数”为空"
    assert "人居环境改善项目村“待定”无法识别" in reasons[12]
    assert "不是乡镇或街道" in reasons[13]
    assert reasons[14] == "“村/社区”为空"
    assert reasons[15] == "“乡镇/街道”为空"
    assert "请核对" in reasons[16]
    assert "是负数" in reasons[17]


def test_several_problems_of_one_row_are_all_named(registry: UnitRegistry) -> None:
    result = read_households(xlsx([[1, "双塔山镇", "西山村", "很多", "也许"]]), "a.xlsx", registry)
    assert rejected(result)[3].count("；") == 1


def test_merged_cells_other_than_the_town_going_down_are_rejected(registry: UnitRegistry) -> None:
    rows = [
        [1, "双塔山镇", "西山村", 900, "否"],
        [2, "双塔山镇", "大贵口村", None, "是"],  # one count merged over two villages
        [3, "双塔山镇", "小贵口村", 437, "否"],
        [4, "双塔山镇", "三道沟村", 368, "否"],  # 乡镇 and 村 merged across
        [5, "双塔山镇", "老虎沟村", 295, "是"],
    ]
    result = read_households(xlsx(rows, merges=("D3:D4", "B6:C6")), "a.xlsx", registry)
    reasons = rejected(result)
    assert sorted(reasons) == [3, 4, 6]
    assert reasons[3] == f"“户数”列为{MERGED}"
    assert reasons[4] == f"“户数”列为{MERGED}"
    assert MERGED in reasons[6]
    assert [u.place for u in result.updates] == ["小贵口村", "老虎沟村"]


def test_a_town_merged_down_from_the_header_is_rejected(registry: UnitRegistry) -> None:
    result = read_households(xlsx([[1, None, "西山村", 512, "否"]], merges=("B2:B3",)), "a.xlsx", registry)
    assert rejected(result) == {3: f"“乡镇/街道”列为{MERGED}"}


def test_a_formula_without_a_saved_result_is_rejected(registry: UnitRegistry) -> None:
    result = read_households(xlsx([[1, "双塔山镇", "西山村", "=100+412", "否"]]), "a.xlsx", registry)
    assert "公式但没有计算结果" in rejected(result)[3]


def test_repeated_rows_with_the_same_values_are_listed_and_conflicting_ones_rejected(registry: UnitRegistry) -> None:
    rows = [
        [1, "双塔山镇", "西山村", 512, "否"],
        [2, "双塔山", "西山", 512, "N"],  # the same place and values, other spellings
        [3, "西地镇", "东营子村", 468, "是"],
        [4, "西地镇", "东营子", 470, "是"],  # same place, other count
        [5, "滦河镇", "东营子村", 624, "否"],  # another unit's 东营子村: no conflict
    ]
    result = read_households(xlsx(rows), "a.xlsx", registry)
    assert result.updates == [
        HouseholdsUpdate("shuangtashan", "西山村", 512, False),
        HouseholdsUpdate("luanhe", "东营子村", 624, False),
    ]
    duplicates = [p for p in result.problems if p.kind == "duplicate"]
    assert [(p.row, p.duplicate_of) for p in duplicates] == [(4, 3)]
    reasons = rejected(result)
    assert sorted(reasons) == [5, 6]
    assert "第5行、第6行" in reasons[5] and "不一致" in reasons[5]


# ------------------------------------------------------------------------------------------------ bad whole files


@pytest.mark.parametrize(
    ("data", "filename", "code"),
    [
        (b"", "a.csv", "empty"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "a.xls", "format"),
        (b"not a spreadsheet", "a.xlsx", "format"),
        (b"PK\x03\x04 broken zip", "a.xlsx", "unreadable"),
        (b"a,b", "a.pdf", "format"),
        ("乡镇/街道,村/社区,户数,人居环境改善项目村".encode("utf-16"), "a.csv", "encoding"),
        (b"\xff\xff\xff\xff", "a.csv", "encoding"),
        (b'\xe4\xb9\xa1\xe9\x95\x87,"a"b\r\n', "a.csv", "malformed"),
        (csv_bytes(["名称,数量", "双塔山镇,1"]), "a.csv", "no_header"),
        (csv_bytes(["乡镇/街道,村/社区,人居环境改善项目村", "双塔山镇,西山村,是"]), "a.csv", "missing_columns"),
        (csv_bytes(["乡镇/街道,村/社区,户数,总户数,项目村", "双塔山镇,西山村,1,1,是"]), "a.csv", "repeated_columns"),
        (csv_bytes(["乡镇/街道,村/社区,户数,人居环境改善项目村", ",,,"]), "a.csv", "no_rows"),
        (csv_bytes([",,,", ",,,"]), "a.csv", "empty"),
    ],
)
def test_whole_file_problems_reject_the_sheet(registry: UnitRegistry, data: bytes, filename: str, code: str) -> None:
    with pytest.raises(HouseholdsRejected) as caught:
        read_households(data, filename, registry)
    assert caught.value.code == code
    assert any("\u4e00" <= ch <= "\u9fff" for ch in caught.value.message)  # told in Chinese


def test_missing_columns_are_named(registry: UnitRegistry) -> None:
    with pytest.raises(HouseholdsRejected) as caught:
        read_households(xlsx([[1, "双塔山镇", "西山村"]], header=["序号", "乡镇", "村/社区"]), "a.xlsx", registry)
    assert "缺少这些列：户数、人居环境改善项目村" in caught.value.message


# --------------------------------------------------------------------------------------------- writing the registry


def test_apply_changes_exactly_the_two_keys_of_the_intended_lines(units_file: Path, registry: UnitRegistry) -> None:
    text = units_file.read_text(encoding="utf-8")
    updates = [
        HouseholdsUpdate("shuangtashan", "西山村", 520, True),
        HouseholdsUpdate("pianqiaozi", "南沟村", 400, False),  # not 大庙镇's 南沟村
        HouseholdsUpdate("gangcheng", "钢城社区", 2960, False),  # the values it has: the line stays as it is
    ]
    new = apply_households(text, updates)

    old_lines, new_lines = text.splitlines(), new.splitlines()
    assert len(old_lines) == len(new_lines)
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert changed == [
        (
            "      - {name: 西山村, kind: village, aliases: [西山], households: 512, living_environment_programme: false}",
            "      - {name: 西山村, kind: village, aliases: [西山], households: 520, living_environment_programme: true}",
        ),
        (
            "      - {name: 南沟村, kind: village, aliases: [南沟], households: 356, living_environment_programme: true}",
            "      - {name: 南沟村, kind: village, aliases: [南沟], households: 400, living_environment_programme: false}",
        ),
    ]
    assert new.startswith("# 双滦区 (承德市) responsible units")  # the comments at the top are kept
    assert [line for line in new_lines if line.lstrip().startswith("#")] == [
        line for line in old_lines if line.lstrip().startswith("#")
    ]

    units_file.write_text(new, encoding="utf-8")
    after = load_units(units_file)  # a valid registry …
    assert place_of(after, "shuangtashan", "西山村").households == 520
    assert place_of(after, "shuangtashan", "西山村").living_environment_programme is True
    assert place_of(after, "pianqiaozi", "南沟村").households == 400
    assert place_of(after, "damiao", "南沟村") == place_of(registry, "damiao", "南沟村")
    # … equal to the old one but for the two places
    for unit in registry.units:
        for place in unit.places:
            if (unit.code, place.name) not in {("shuangtashan", "西山村"), ("pianqiaozi", "南沟村")}:
                assert place_of(after, unit.code, place.name) == place
    assert after.district == registry.district
    assert [u.model_copy(update={"places": ()}) for u in after.units] == [
        u.model_copy(update={"places": ()}) for u in registry.units
    ]


def test_apply_with_nothing_to_change_returns_the_same_text(units_file: Path) -> None:
    text = units_file.read_text(encoding="utf-8")
    assert apply_households(text, []) == text
    assert apply_households(text, [("shuangtashan", "西山村", 512, False)]) == text


def test_apply_keeps_windows_line_endings_and_adds_missing_keys() -> None:
    text = (
        "# note\r\n"
        "district: {code: district_office, name: 区政府办}\r\n"
        "units:\r\n"
        "  - code: a\r\n"
        "    name: 甲镇\r\n"
        "    kind: town\r\n"
        "    places:\r\n"
        "      - {name: 甲村, kind: village}  # households still unknown\r\n"
        "      - {name: 乙村, kind: village, households: 3}\r\n"
    )
    new = apply_households(text, [("a", "甲村", 7, True)])
    assert new.splitlines(keepends=True)[7] == (
        "      - {name: 甲村, kind: village, households: 7, living_environment_programme: true}  # households still unknown\r\n"
    )
    assert new.replace(new.splitlines(keepends=True)[7], "") == text.replace(text.splitlines(keepends=True)[7], "")


def test_apply_refuses_unknown_places_bad_values_and_places_it_cannot_edit(units_file: Path) -> None:
    text = units_file.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="no place"):
        apply_households(text, [("shuangtashan", "不存在村", 1, False)])
    with pytest.raises(ValueError, match="no place"):
        apply_households(text, [("nowhere", "西山村", 1, False)])
    with pytest.raises(ValueError, match="whole number"):
        apply_households(text, [("shuangtashan", "西山村", -1, False)])
    with pytest.raises(ValueError, match="bool"):
        apply_households(text, [("shuangtashan", "西山村", 1, "yes")])
    with pytest.raises(ValueError, match="conflicting"):
        apply_households(text, [("shuangtashan", "西山村", 1, False), ("shuangtashan", "西山村", 2, False)])
    block = (
        "district: {code: d, name: 区}\nunits:\n  - code: a\n    name: 甲镇\n    kind: town\n"
        "    places:\n      - name: 甲村\n        kind: village\n"
    )
    with pytest.raises(ValueError, match="flow style"):
        apply_households(block, [("a", "甲村", 1, False)])


# ---------------------------------------------------------------------------------------------------------- the CLI


def write_sheet(tmp_path: Path, rows: list[list[object]], name: str = "户数表.xlsx") -> Path:
    path = tmp_path / name
    path.write_bytes(xlsx(rows))
    return path


def test_cli_dry_run_reports_and_changes_nothing(tmp_path: Path, units_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = units_file.read_bytes()
    sheet = write_sheet(tmp_path, [[1, "双塔山镇", "西山村", 600, "是"], [2, "双塔山镇", "大贵口村", 846, "是"]])
    assert main(["import-households", str(sheet), "--units", str(units_file), "--dry-run"]) == 0
    assert units_file.read_bytes() == before
    out = capsys.readouterr().out
    assert "更新：1 个村/社区" in out
    assert "第3行 双塔山镇 西山村：户数 512 → 600；项目村 否 → 是" in out
    assert "不变：1 个村/社区" in out
    assert "试运行" in out


def test_cli_writes_the_good_sheet(tmp_path: Path, units_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sheet = write_sheet(tmp_path, [[1, "双塔山镇", "西山村", 600, "是"], [2, "合计", None, 600, None]])
    assert main(["import-households", str(sheet), "--units", str(units_file)]) == 0
    assert place_of(load_units(units_file), "shuangtashan", "西山村").households == 600
    out = capsys.readouterr().out
    assert "跳过的行：1 行" in out and "已写入" in out
    assert units_file.read_text(encoding="utf-8").startswith("# 双滦区")
    assert list(tmp_path.glob(".units.yaml.*")) == []  # no temporary file left behind


def test_cli_writes_nothing_when_a_row_is_rejected(tmp_path: Path, units_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = units_file.read_bytes()
    sheet = write_sheet(tmp_path, [[1, "双塔山镇", "西山村", 600, "是"], [2, "双塔山镇", "大贵口村", "约800", "是"]])
    assert main(["import-households", str(sheet), "--units", str(units_file)]) == 1
    assert units_file.read_bytes() == before
    out = capsys.readouterr().out
    assert "拒绝：1 行" in out
    assert "第4行：户数“约800”不是整数" in out
    assert "未写入" in out


def test_cli_writes_nothing_for_a_bad_file(tmp_path: Path, units_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = units_file.read_bytes()
    sheet = tmp_path / "a.csv"
    sheet.write_bytes(csv_bytes(["名称,数量", "双塔山镇,1"]))
    assert main(["import-households", str(sheet), "--units", str(units_file)]) == 1
    assert units_file.read_bytes() == before
    assert "找不到表头" in capsys.readouterr().err
    assert main(["import-households", str(tmp_path / "missing.xlsx"), "--units", str(units_file)]) == 1


def test_cli_leaves_the_file_alone_when_nothing_changes(tmp_path: Path, units_file: Path) -> None:
    stamp = units_file.stat().st_mtime_ns
    sheet = write_sheet(tmp_path, [[1, "双塔山镇", "西山村", 512, "否"]])
    assert main(["import-households", str(sheet), "--units", str(units_file)]) == 0
    assert units_file.stat().st_mtime_ns == stamp


def test_cli_help_says_it_is_all_or_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["import-households", "--help"])
    assert exited.value.code == 0
    assert "All or nothing" in capsys.readouterr().out
