"""A unit's door-to-door survey sheet: the file checks, the row checks, the keys and the coverage counts (no I/O)."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime, time

import openpyxl
import pytest

from minsheng_core.campaign import load_campaign
from minsheng_core.units import load_units
from minsheng_intake_survey.survey_sheet import (
    MERGED,
    RowProblem,
    SheetRejected,
    SheetResult,
    VisitRow,
    coverage_counts,
    decode_csv,
    read_sheet,
    visit_row_key,
)

UNITS = load_units()
CAMPAIGN = load_campaign()  # window 2019-10-15 … 2019-11-15
UNIT = "shuangtashan"  # 双塔山镇: 西山村, 大贵口村, 小贵口村, 三道沟村 … (东营子村 belongs to 滦河镇 and 西地镇)
HEADER = ["序号", "村/社区", "户主/地址", "走访日期", "走访人", "建议内容", "联系电话", "姓名", "备注"]
TITLE = "双塔山镇入户征集登记表"


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


def read(data: bytes, filename: str = "登记表.xlsx", unit: str = UNIT) -> SheetResult:
    return read_sheet(data, filename, unit, UNITS, CAMPAIGN)


def rejected(result: SheetResult) -> dict[int, str]:
    return {p.row: p.reason for p in result.problems if p.kind == "rejected"}


def visit(n: int, village: object = "西山村", household: object = None, on: object = "2019-10-20", text: object = "修路") -> list:
    return [n, village, f"张{n}" if household is None else household, on, "王干事", text, "", "", ""]


# ------------------------------------------------------------------------------------------------------ good sheets


def test_good_sheet_with_title_row_merged_village_no_suggestion_and_both_kinds_of_dates() -> None:
    rows = [
        [1, "西山村", "张三", datetime(2019, 10, 20), "王干事", "希望村里修路", "139-0000-0001", "张三", ""],
        [2, None, "李四", date(2019, 10, 21), "王干事", "无", "", "", ""],
        [3, None, "赵五", "2019/10/22", "王干事", "建议安装路灯", "", "", ""],
        [4, "大贵口", "大贵口村3组12号", "2019年10月23日", "刘干事", "没有", "", "", "不在家，电话回访"],
        [
            5,
            "小贵口村",
            "孙六",
            "2019.11.15",
            "刘干事",
            "  多建几个公共厕所。\r\n最好在菜市场旁边  ",
            "+86 139 0000 0002",
            "",
            "",
        ],
    ]
    result = read(xlsx(rows, merges=("B3:B5",)))  # title row 1, header row 2, the village merged over rows 3–5

    assert result.problems == []
    assert [r.row for r in result.rows] == [3, 4, 5, 6, 7]
    first, second, third, fourth, fifth = result.rows
    assert (first.village, second.village, third.village) == ("西山村", "西山村", "西山村")
    assert fourth.village == "大贵口村"  # the alias becomes the registry's name
    assert first.visited_on == date(2019, 10, 20) and second.visited_on == date(2019, 10, 21)
    assert third.visited_on == date(2019, 10, 22) and fourth.visited_on == date(2019, 10, 23)
    assert fifth.visited_on == date(2019, 11, 15)  # the last day of the window counts
    assert first.suggestion == "希望村里修路" and first.phone == "13900000001" and first.name == "张三"
    assert second.suggestion is None and fourth.suggestion is None
    assert fifth.suggestion == "多建几个公共厕所。\n最好在菜市场旁边" and fifth.phone == "13900000002"
    assert all(r.unit == UNIT and r.visitor in ("王干事", "刘干事") for r in result.rows)
    assert len({r.row_key for r in result.rows}) == 5
    assert first.row_key == visit_row_key(UNIT, "西山村", "张三", date(2019, 10, 20), "希望村里修路")


def test_header_synonyms_full_width_brackets_and_any_order() -> None:
    header = ["意见建议", "住户", "村（社区）", "走访人员", "日期", "电话", "建议人"]
    data = xlsx([["修路", "张三", "西山", "王干事", "2019-10-20", "13900000001", "张三"]], title=False, header=header)
    (row,) = read(data).rows
    assert (row.row, row.village, row.household, row.visitor, row.suggestion) == (2, "西山村", "张三", "王干事", "修路")
    assert (row.phone, row.name) == ("13900000001", "张三")
    csv_header = "村居,户主姓名或地址,走访日期,走访人,建议,备注"
    (row,) = read(csv_bytes([csv_header, "黄土梁村,李四,2019-10-20,王干事,无,"]), "表.csv").rows
    assert (row.village, row.suggestion, row.phone, row.name) == ("黄土梁村", None, None, None)


def test_header_cells_with_markers_and_line_breaks() -> None:
    header = ["*村/社区", "户主/地址（必填）", "走访\n日期", " 走访人 ", "建议内容：", "备注"]
    (row,) = read(xlsx([["西山村", "张三", "2019-10-20", "王", "修路", ""]], header=header)).rows
    assert (row.row, row.village, row.suggestion) == (3, "西山村", "修路")


def test_village_written_with_the_town_or_as_the_village_committee() -> None:
    rows = [visit(1, "双塔山镇西山村"), visit(2, "大贵口村委会"), visit(3, "双塔山社区居委会"), visit(4, " 老虎沟 ")]
    result = read(xlsx(rows))
    assert [r.village for r in result.rows] == ["西山村", "大贵口村", "双塔山社区", "老虎沟村"]


def test_a_village_name_two_units_share_is_a_village_of_this_unit() -> None:
    (row,) = read(xlsx([visit(1, "三道沟村")])).rows  # 三道沟村 is in 双塔山镇 and in 陈栅子乡
    assert row.village == "三道沟村"
    assert read(xlsx([visit(1, "三道沟")]), unit="chenzhazi").rows[0].village == "三道沟村"


# ------------------------------------------------------------------------------------------------------ the file


def test_missing_columns_are_named_before_any_row_is_read() -> None:
    header = ["村/社区", "户主/地址", "时间", "走访人", "内容"]  # 时间 and 内容 are not headers the reader knows
    bad_rows = [["不存在村", "", "昨天", "", "😀"]] * 3
    with pytest.raises(SheetRejected) as caught:
        read(xlsx(bad_rows, header=header))
    assert caught.value.code == "missing_columns"
    assert "缺少这些列：走访日期、建议内容（" in str(caught.value)


def test_no_header_in_the_first_ten_rows() -> None:
    lines = ["说明"] * 10 + [",".join(HEADER), "1,西山村,张三,2019-10-20,王干事,修路,,,"]
    with pytest.raises(SheetRejected) as caught:
        read(csv_bytes(lines), "表.csv")
    assert caught.value.code == "no_header" and "村/社区、户主/地址、走访日期、走访人、建议内容" in str(caught.value)
    with pytest.raises(SheetRejected, match="找不到表头"):
        read(csv_bytes(["name,address,date,visitor,suggestion", "西山村,张三,2019-10-20,王,修路"]), "表.csv")


def test_a_column_given_twice_is_refused() -> None:
    with pytest.raises(SheetRejected) as caught:
        read(xlsx([visit(1)], header=[*HEADER[:-1], "建议"]))
    assert caught.value.code == "repeated_columns" and "建议内容" in str(caught.value)


def test_header_without_rows_and_empty_files() -> None:
    with pytest.raises(SheetRejected) as caught:
        read(xlsx([[None] * 9, [7, None, None, None, None, None, None, None, None]]))  # only a pre-numbered 序号
    assert caught.value.code == "no_rows"
    with pytest.raises(SheetRejected, match="空"):
        read(b"", "表.csv")
    with pytest.raises(SheetRejected, match="空"):
        read(csv_bytes([",,,", ""]), "表.csv")


def test_file_types() -> None:
    with pytest.raises(SheetRejected) as caught:
        read(b"%PDF-1.4 ...", "登记表.pdf")
    assert caught.value.code == "format"
    with pytest.raises(SheetRejected, match=r"\.xls"):
        read(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "登记表.xls")
    with pytest.raises(SheetRejected, match="不是有效的 .xlsx"):
        read(b"not a zip", "登记表.xlsx")
    with pytest.raises(SheetRejected) as caught:
        read(b"PK\x03\x04 broken zip", "登记表.xlsx")
    assert caught.value.code == "unreadable"
    not_a_workbook = io.BytesIO()
    with zipfile.ZipFile(not_a_workbook, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(SheetRejected) as caught:
        read(not_a_workbook.getvalue(), "登记表.xlsx")
    assert caught.value.code == "unreadable"
    # The content decides: an .xlsx renamed to .csv is still read as a workbook.
    assert len(read(xlsx([visit(1)]), "登记表.csv").rows) == 1


def test_the_unit() -> None:
    with pytest.raises(ValueError, match="unknown unit"):
        read(xlsx([visit(1)]), unit="nowhere")
    with pytest.raises(SheetRejected) as caught:
        read(xlsx([visit(1)]), unit="npc_office")  # an office has no villages to visit
    assert caught.value.code == "unit"


def test_only_the_first_worksheet_is_read() -> None:
    workbook = openpyxl.Workbook()
    workbook.active.append(HEADER)
    workbook.active.append(visit(1))
    other = workbook.create_sheet("汇总")
    other.append(["不是表头"])
    workbook.active = 1  # the workbook opens on the second sheet
    out = io.BytesIO()
    workbook.save(out)
    assert [r.household for r in read(out.getvalue()).rows] == ["张1"]


# ------------------------------------------------------------------------------------------------------ CSV encodings


GOOD_CSV_LINES = [
    "双塔山镇入户征集登记表,,,,,,,,",
    ",".join(HEADER),
    "1,西山村,张三,2019-10-20,王干事,希望村里修路,13900000001,,",
    '2,大贵口村,李四,2019/10/21,王干事,"多建公厕，\n最好在菜市场旁边",,,',
    "3,小贵口村,赵五,2019年10月22日,王干事,无,,,",
]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_csv_in_utf8_with_or_without_bom_and_in_gb18030(encoding: str) -> None:
    result = read(csv_bytes(GOOD_CSV_LINES, encoding), "登记表.csv")
    assert result.problems == []
    assert [(r.row, r.village, r.household) for r in result.rows] == [
        (3, "西山村", "张三"),
        (4, "大贵口村", "李四"),
        (5, "小贵口村", "赵五"),
    ]
    assert result.rows[1].suggestion == "多建公厕，\n最好在菜市场旁边"


def test_gb18030_csv_is_read_only_because_utf8_fails() -> None:
    data = csv_bytes(GOOD_CSV_LINES, "gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert decode_csv(data).startswith("双塔山镇入户征集登记表")


def test_csv_in_neither_utf8_nor_gb18030_is_refused() -> None:
    data = ",".join(HEADER).encode("utf-8") + b"\r\n1,caf\xe9,\xff\xfe,2019-10-20,x,y,,,\r\n"
    with pytest.raises(SheetRejected) as caught:
        read(data, "登记表.csv")
    assert caught.value.code == "encoding" and "UTF-8" in str(caught.value) and "GB18030" in str(caught.value)
    with pytest.raises(SheetRejected, match="UTF-16"):
        read("\n".join(GOOD_CSV_LINES).encode("utf-16"), "登记表.csv")


def test_csv_with_semicolons_or_tabs() -> None:
    for delimiter in (";", "\t"):
        lines = [line.replace(",", delimiter) for line in GOOD_CSV_LINES if "\n" not in line]
        result = read(csv_bytes(lines, "gb18030"), "登记表.txt")
        assert [r.village for r in result.rows] == ["西山村", "小贵口村"]


def test_broken_csv_quoting_is_refused() -> None:
    with pytest.raises(SheetRejected) as caught:
        read(csv_bytes([",".join(HEADER), '1,西山村,"张三"x,2019-10-20,王,修路,,,']), "登记表.csv")
    assert caught.value.code == "malformed"


# ------------------------------------------------------------------------------------------------------ rows


def test_merged_cells_outside_the_village_column_reject_their_rows() -> None:
    rows = [[*visit(n), ""] for n in range(1, 6)]
    # rows 3–4: the date merged down; row 5: the visitor merged into the suggestion; row 6: 备注 merged into 其他
    result = read(xlsx(rows, header=[*HEADER, "其他"], merges=("D3:D4", "E5:F5", "I6:J6")))
    assert set(rejected(result)) == {3, 4, 5}
    assert all(MERGED in reason for reason in rejected(result).values())
    assert "走访日期" in rejected(result)[3] and "建议内容" in rejected(result)[5]
    assert [r.row for r in result.rows] == [6, 7]  # a merge into an ignored column hides nothing


def test_a_merged_village_passes_its_value_and_its_problem_down() -> None:
    result = read(xlsx([visit(1, "不存在村"), visit(2, None), visit(3, None), visit(4, "西山村")], merges=("B3:B5",)))
    assert set(rejected(result)) == {3, 4, 5}
    assert all("不存在村" in reason for reason in rejected(result).values())
    assert [r.row for r in result.rows] == [6]


def test_a_note_merged_over_households_speaks_for_each() -> None:
    rows = [visit(1, text=None), visit(2, text=None), visit(3, text=None)]
    rows[0][8] = "均无建议"
    result = read(xlsx(rows, merges=("I3:I5",)))
    assert [(r.row, r.suggestion) for r in result.rows] == [(3, None), (4, None), (5, None)]


def test_a_village_merge_must_start_below_the_header() -> None:
    header = ["村/社区", *HEADER[2:]]
    data = xlsx([["", "张三", "2019-10-20", "王", "修路", "", "", ""]], title=False, header=header, merges=("A1:A2",))
    assert MERGED in rejected(read(data))[2]


def test_empty_rows_are_skipped_silently() -> None:
    rows = [
        visit(1),
        [None] * 9,
        ["", "  ", None, "", "", "", "", "", ""],
        visit(4),
        [5, None, None, None, None, None, None, None, None],
    ]
    result = read(xlsx(rows))
    assert [r.row for r in result.rows] == [3, 6] and result.problems == []
    lines = [
        ",".join(HEADER),
        "1,西山村,张三,2019-10-20,王,修路,,,",
        ",,,,,,,,",
        "",
        "  ,,,,",
        "4,西山村,李四,2019-10-20,王,修路,,,",
    ]
    result = read(csv_bytes(lines), "登记表.csv")
    assert [r.row for r in result.rows] == [2, 6] and result.problems == []


def test_unknown_village_and_village_of_another_unit() -> None:
    result = read(xlsx([visit(1, "不存在村"), visit(2, "东营子村"), visit(3, "滦河镇三道沟村"), visit(4, "石佛")]))
    reasons = rejected(result)
    assert reasons[3] == "村/社区“不存在村”不在本单位的名单中"
    assert reasons[4].startswith("村/社区“东营子村”不在本单位的名单中") and "滦河镇" in reasons[4] and "西地镇" in reasons[4]
    assert reasons[5].startswith("村/社区“滦河镇三道沟村”不在本单位的名单中")
    assert reasons[6] == "村/社区“石佛”不在本单位的名单中（这是滦河镇的村/社区）"
    assert result.rows == []


def test_numbers_where_text_is_expected() -> None:
    rows = [
        [1, "西山村", 12, "2019-10-20", 7, "修路", 13900000001, "", ""],
        [2, "西山村", 12.0, "2019-10-21", "王", "修路", "", "", ""],
        [3, "西山村", 3.5, "2019-10-22", "王", "修路", "", 100, ""],
        [4, "西山村", "李四", "2019-10-22", "王", "修路", 3142345678, "", ""],
        [5, "西山村", "赵五", "2019-10-22", "王", 2020, "", "", ""],
    ]
    result = read(xlsx(rows))
    assert [(r.household, r.visitor, r.phone, r.name) for r in result.rows] == [
        ("12", "7", "13900000001", None),
        ("12", "王", None, None),
        ("3.5", "王", None, "100"),
    ]
    assert "联系电话“3142345678”" in rejected(result)[6]  # the landline lost its leading 0 to a number cell
    assert "没有文字" in rejected(result)[7]  # a number alone is not a suggestion


def test_a_household_that_excel_turned_into_a_date() -> None:
    reason = rejected(read(xlsx([visit(1, household=datetime(2019, 3, 2))])))[3]
    assert "户主/地址" in reason and "文本格式" in reason


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2019-10-20", date(2019, 10, 20)),
        ("2019/11/5", date(2019, 11, 5)),
        ("2019.10.20", date(2019, 10, 20)),
        ("2019年10月20日", date(2019, 10, 20)),
        ("2019年10月20号", date(2019, 10, 20)),
        ("２０１９年１０月２０日", date(2019, 10, 20)),
        ("2019-10-20 09:30:00", date(2019, 10, 20)),
        ("20191020", date(2019, 10, 20)),
        ("10月20日", date(2019, 10, 20)),
        (datetime(2019, 10, 20, 15, 30), date(2019, 10, 20)),
        (date(2019, 10, 15), date(2019, 10, 15)),
        (20191020, date(2019, 10, 20)),
        (43758, date(2019, 10, 20)),  # a date serial in a cell formatted as a number
    ],
)
def test_dates_as_cells_and_as_text(given: object, expected: date) -> None:
    (row,) = read(xlsx([visit(1, on=given)])).rows
    assert row.visited_on == expected


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("2019-10-14", "不在征集期"),
        ("2019-11-16", "不在征集期"),
        (datetime(2019, 12, 1), "不在征集期"),
        ("2019-02-30", "不是有效的日期"),
        ("昨天", "无法识别"),
        ("2019-10", "无法识别"),
        ("10/20/2019", "无法识别"),
        ("2019-10/20", "无法识别"),
        ("3月1日", "没有年份"),
        (time(9, 30), "不是日期"),
        ("", "为空"),
    ],
)
def test_dates_outside_the_window_or_unparsable(given: object, words: str) -> None:
    result = read(xlsx([visit(1, on=given)]))
    reason = rejected(result)[3]
    assert words in reason and "走访日期" in reason
    if words == "不在征集期":
        assert "2019年10月15日至2019年11月15日" in reason


def test_duplicate_rows_point_at_the_first() -> None:
    rows = [
        visit(1),
        visit(2, household="李四"),
        visit(3, household="张1"),
        visit(4, household="张1", text="无"),
        visit(5, household="张1"),
    ]
    result = read(xlsx(rows))
    assert [r.row for r in result.rows] == [3, 4, 6]  # the same household with another suggestion is another record
    assert result.problems == [
        RowProblem(row=5, reason="与第3行重复（同一村/社区、住户、日期和建议）", kind="duplicate", duplicate_of=3),
        RowProblem(row=7, reason="与第3行重复（同一村/社区、住户、日期和建议）", kind="duplicate", duplicate_of=3),
    ]
    assert result.duplicates == 2 and result.rejected == 0


def test_a_suggestion_without_words() -> None:
    result = read(xlsx([visit(1, text="😀👍"), visit(2, text="？？？"), visit(3, text="ok 好")]))
    assert "没有文字" in rejected(result)[3] and "没有文字" in rejected(result)[4]
    assert [r.suggestion for r in result.rows] == ["ok 好"]


def test_no_suggestion_markers_and_an_empty_suggestion() -> None:
    rows = [visit(1, text="无。"), visit(2, text=" 没有 "), visit(3, text="暂无建议"), visit(4, text=None), visit(5, text="")]
    rows[4][8] = "户主说没有意见"  # an empty suggestion with a note: visited, nothing to suggest
    result = read(xlsx(rows))
    assert [(r.row, r.suggestion) for r in result.rows] == [(3, None), (4, None), (5, None), (7, None)]
    assert "建议内容" in rejected(result)[6] and "无" in rejected(result)[6]


def test_a_long_suggestion_and_long_names() -> None:
    rows = [visit(1, text="修" * 5000), visit(2, text="修" * 5001), visit(3, household="号" * 101), visit(4)]
    rows[3][4] = "王" * 51
    result = read(xlsx(rows))
    assert [r.row for r in result.rows] == [3]
    assert "5000" in rejected(result)[4] and "户主/地址" in rejected(result)[5] and "走访人" in rejected(result)[6]


def test_phones() -> None:
    rows = [visit(n) for n in range(1, 6)]
    for row, phone in zip(rows, ["0314-2345678", "+86 139-0000-0001", "12345", "1.39E+10", "（0314）2345678"], strict=True):
        row[6] = phone
    result = read(xlsx(rows))
    assert [(r.row, r.phone) for r in result.rows] == [(3, "03142345678"), (4, "13900000001"), (7, "03142345678")]
    assert "联系电话“12345”不是手机号或带区号的座机号" in rejected(result)[5]
    assert "科学计数法" in rejected(result)[6]


def test_every_reason_of_a_row_is_given() -> None:
    reason = rejected(read(xlsx([[1, "不存在村", "", "昨天", "王", "😀", "12345", "", ""]])))[3]
    parts = reason.split("；")
    assert len(parts) == 5 and parts[0] == "村/社区“不存在村”不在本单位的名单中"


def test_control_characters_and_replacement_characters() -> None:
    lines = [",".join(HEADER), "1,西山村,张三,2019-10-20,王,修路\x07,,,", "2,西山村,李四,2019-10-20,王,修\ufffd路,,,"]
    reasons = rejected(read(csv_bytes(lines), "登记表.csv"))
    assert "控制字符" in reasons[2] and "乱码" in reasons[3]


# ------------------------------------------------------------------------------------------------------ formulas


def _with_cached_values(data: bytes, values: dict[str, str]) -> bytes:
    """The workbook as Excel would save it: each formula cell given here gets its cached result."""
    source = zipfile.ZipFile(io.BytesIO(data))
    sheet = source.read("xl/worksheets/sheet1.xml").decode()
    for ref, value in values.items():
        start = sheet.index(f'<c r="{ref}"')
        end = sheet.index("</c>", start)
        cell = sheet[start:end]
        assert "<v />" in cell, cell
        sheet = sheet[:start] + cell.replace("<v />", f"<v>{value}</v>") + sheet[end:]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info, sheet if info.filename == "xl/worksheets/sheet1.xml" else source.read(info.filename))
    return out.getvalue()


def test_formulas_are_read_as_their_cached_values_else_rejected() -> None:
    rows = [visit(1, household="=10+2"), visit(2, household="=10+3"), visit(3, household="=1/0")]
    data = _with_cached_values(xlsx(rows), {"C3": "12"})
    result = read(data)
    assert [(r.row, r.household) for r in result.rows] == [(3, "12")]
    assert "公式" in rejected(result)[4] and "公式" in rejected(result)[5]


def test_an_error_value_rejects_its_row() -> None:
    source = xlsx([visit(1, household="=1/0")])
    archive = zipfile.ZipFile(io.BytesIO(source))
    sheet = archive.read("xl/worksheets/sheet1.xml").decode()
    start = sheet.index('<c r="C3"')
    end = sheet.index("</c>", start) + len("</c>")
    sheet = sheet[:start] + '<c r="C3" t="e"><f>1/0</f><v>#DIV/0!</v></c>' + sheet[end:]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in archive.infolist():
            target.writestr(info, sheet if info.filename == "xl/worksheets/sheet1.xml" else archive.read(info.filename))
    reason = rejected(read(out.getvalue()))[3]
    assert "#DIV/0!" in reason and "户主/地址" in reason


# ------------------------------------------------------------------------------------------------------ keys, coverage


def test_row_keys_are_stable_across_readings_reordering_and_formats() -> None:
    rows = [visit(1), visit(2, "大贵口村", "李四", "2019-10-21", "无"), visit(3, "小贵口", "赵五", "2019年10月22日", "建路灯")]
    first = read(xlsx(rows))
    again = read(xlsx(rows))
    reordered = read(xlsx([rows[2], [None] * 9, rows[0], rows[1]], title=False))
    as_csv = read(
        csv_bytes([",".join(HEADER), *(",".join("" if v is None else str(v) for v in row) for row in rows)], "gb18030"),
        "登记表.csv",
    )
    keys = [r.row_key for r in first.rows]
    assert len(set(keys)) == 3
    assert [r.row_key for r in again.rows] == keys
    assert sorted(r.row_key for r in reordered.rows) == sorted(keys)
    assert [r.row for r in reordered.rows] != [r.row for r in first.rows]
    assert [r.row_key for r in as_csv.rows] == keys
    # What the key is made of: another visitor or phone is the same record; another date is another one.
    changed = [rows[0][:4] + ["刘干事", "修路", "13900000001", "", ""]]
    assert read(xlsx(changed)).rows[0].row_key == keys[0]
    assert read(xlsx([visit(1, on="2019-10-21")])).rows[0].row_key != keys[0]


def test_row_key_is_part_of_the_row_as_serialised() -> None:
    row = VisitRow(
        row=3, unit=UNIT, village="西山村", household="张三", visited_on=date(2019, 10, 20), visitor="王", suggestion=None
    )
    assert row.model_dump()["row_key"] == visit_row_key(UNIT, "西山村", "张三", date(2019, 10, 20), None)
    assert row.row_key != visit_row_key(UNIT, "西山村", "张三", date(2019, 10, 20), "")
    dumped = row.model_dump(mode="json") | {"row_key": "forged"}
    assert VisitRow.model_validate(dumped) == row and VisitRow.model_validate(dumped).row_key == row.row_key


def test_coverage_counts_distinct_households_per_village() -> None:
    rows = [
        visit(1, "西山村", "张三", "2019-10-20", "修路"),
        visit(2, "西山村", "张三", "2019-10-25", "建路灯"),  # visited again: counted once
        visit(3, "西山", "李四", "2019-10-20", "无"),
        visit(4, "大贵口村", "3组12号", "2019-10-20", "无"),
        visit(5, "不存在村", "王五", "2019-10-20", "无"),  # rejected rows are not visits
    ]
    result = read(xlsx(rows))
    assert coverage_counts(result.rows) == {"西山村": {"张三", "李四"}, "大贵口村": {"3组12号"}}
    assert coverage_counts([]) == {}
