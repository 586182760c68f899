"""A unit's door-to-door survey sheet (入户征集登记表): its format, its checks, and the visits it records.

A town or sub-district clerk fills in one row per household visited, in Excel (.xlsx, first worksheet) or as CSV
(UTF-8 with or without BOM, or GB18030 as Excel in China saves it). Title rows may stand above the header; the
header is looked for in the first 10 rows. Columns, in any order (synonyms accepted, unknown columns ignored):

==============  ==========================================  ======================================================
村/社区          村居, 村（社区）                              required; a village or community of this unit
户主/地址        户主姓名或地址, 住户                          required; 1–100 characters
走访日期         日期                                        required; inside the campaign window
走访人           走访人员                                     required; 1–50 characters
建议内容         意见建议, 建议                               required; "无"/"没有" (or empty with a 备注): none
联系电话         电话                                        optional; a mobile number or a landline with area code
姓名             建议人                                      optional; 1–50 characters
备注             说明                                        optional; only read to tell "no suggestion" from "forgot"
==============  ==========================================  ======================================================

Problems of the whole file (format, encoding, header) raise ``SheetRejected`` before any row is looked at. Each
row is then checked on its own: a good row becomes a ``VisitRow``, a bad one a ``RowProblem`` with the row number
as the spreadsheet shows it and the reason in Chinese (the clerks read them). No I/O, no FastAPI.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from minsheng_core.campaign import Campaign
from minsheng_core.events import BODY_MAX, PLACE_MAX
from minsheng_core.phones import PHONE_PATTERN, canonical_phone
from minsheng_core.sheets import HEADER_SEARCH_ROWS as HEADER_SEARCH_ROWS  # re-exported
from minsheng_core.sheets import (
    Cell,
    Header,
    Record,
    SheetUnreadable,
    Wording,
    blank,
    cell_problem,
    header_text,
    read_table,
    shown,
)
from minsheng_core.sheets import decode_csv as _decode_csv
from minsheng_core.text import has_content
from minsheng_core.units import Unit, UnitRegistry

HOUSEHOLD_MAX = 100
PERSON_MAX = 50
# A zip bomb disguised as .xlsx would be inflated by openpyxl whole; a real clerk's sheet is a few megabytes.
XLSX_UNCOMPRESSED_MAX = 200 * 1024 * 1024

ColumnKey = Literal["village", "household", "visited_on", "visitor", "suggestion", "phone", "name", "note"]
REQUIRED: tuple[ColumnKey, ...] = ("village", "household", "visited_on", "visitor", "suggestion")
LABELS: dict[ColumnKey, str] = {
    "village": "村/社区",
    "household": "户主/地址",
    "visited_on": "走访日期",
    "visitor": "走访人",
    "suggestion": "建议内容",
    "phone": "联系电话",
    "name": "姓名",
    "note": "备注",
}
# Header spellings after _header_key (NFKC turns full-width brackets and slashes into ASCII ones).
SYNONYMS: dict[ColumnKey, tuple[str, ...]] = {
    "village": ("村/社区", "村居", "村(社区)", "村(居)", "村/居", "村社区", "村(社区)名称", "村/社区名称"),
    "household": ("户主/地址", "户主姓名或地址", "住户", "户主", "户主姓名", "户主/住址", "户主姓名/地址", "住户地址"),
    "visited_on": ("走访日期", "日期", "走访时间", "入户日期", "入户时间"),
    "visitor": ("走访人", "走访人员", "入户人员", "走访干部"),
    "suggestion": ("建议内容", "意见建议", "建议", "意见建议内容", "意见和建议", "意见或建议"),
    "phone": ("联系电话", "电话", "手机", "手机号", "手机号码", "联系方式"),
    "name": ("姓名", "建议人", "建议人姓名"),
    "note": ("备注", "说明", "情况说明", "备注说明"),
}
_HEADER_INDEX = {spelling: key for key, spellings in SYNONYMS.items() for spelling in spellings}
# What clerks write for a household that was visited and had nothing to suggest (after trailing punctuation goes).
NO_SUGGESTION = frozenset(
    {"无", "没有", "暂无", "无建议", "无意见", "没有建议", "没有意见", "暂无建议", "暂无意见"}
    | {"无意见建议", "没有意见建议", "无意见和建议"}
)
MERGED = "合并单元格：请取消合并后再导入"

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")
_DATE_SEPARATED = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?:[ T]?\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")
_DATE_CHINESE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})[日号]?")
_DATE_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_DATE_NO_YEAR = re.compile(r"(\d{1,2})月(\d{1,2})[日号]?")
_SCIENTIFIC = re.compile(r"\d(\.\d+)?[eE]\+?\d+")
_EXAMPLE_DATE = "2019-10-20"


class SheetRejected(SheetUnreadable):
    """The sheet as a whole cannot be read; nothing of it is imported (``code``: a short, fixed word for the logs)."""


def visit_row_key(unit: str, village: str, household: str, visited_on: date, suggestion: str | None) -> str:
    """The key of one visit's record: the same sheet imported twice, or reordered, yields the same keys."""
    parts = [unit, village, household, visited_on.isoformat(), suggestion]
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode("utf-8")).hexdigest()


class VisitRow(BaseModel):
    """One household visit of a survey sheet, checked and normalised (canonical village name and phone)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    row: int = Field(ge=1, description="the row number as the spreadsheet shows it")
    unit: str
    village: str = Field(min_length=1, max_length=PLACE_MAX, description="村或社区 (the registry's name)")
    household: str = Field(min_length=1, max_length=HOUSEHOLD_MAX, description="户主姓名或地址")
    visited_on: date
    visitor: str = Field(min_length=1, max_length=PERSON_MAX)
    suggestion: str | None = Field(default=None, min_length=1, max_length=BODY_MAX, description="None: visited, no suggestion")
    phone: str | None = Field(default=None, pattern=PHONE_PATTERN)
    name: str | None = Field(default=None, min_length=1, max_length=PERSON_MAX)

    @model_validator(mode="before")
    @classmethod
    def _drop_given_key(cls, data: Any) -> Any:
        # A row read back from a message carries its key; the key is always recomputed from what the row says.
        if isinstance(data, dict) and "row_key" in data:
            return {k: v for k, v in data.items() if k != "row_key"}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def row_key(self) -> str:
        """sha256 of unit, village, household, date and suggestion (not the row number: reordering keeps it)."""
        return visit_row_key(self.unit, self.village, self.household, self.visited_on, self.suggestion)


class RowProblem(BaseModel):
    """A row that is not imported: rejected with a reason, or a repeat of an earlier row of the sheet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    row: int
    reason: str
    kind: Literal["rejected", "duplicate"]
    duplicate_of: int | None = None


class SheetResult(BaseModel):
    """Every good visit and every problem of one sheet, each in sheet order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rows: list[VisitRow]
    problems: list[RowProblem]

    @property
    def rejected(self) -> int:
        return sum(1 for p in self.problems if p.kind == "rejected")

    @property
    def duplicates(self) -> int:
        return sum(1 for p in self.problems if p.kind == "duplicate")


# ---------------------------------------------------------------------------------------------------------- file

_WORDING = Wording(
    empty_file="文件是空的：请上传填好的入户征集登记表",
    not_xlsx=lambda name: f"“{name[:60]}”不是有效的 .xlsx 文件（文件可能已损坏）：请在 Excel 中重新保存后再导入",
    unsupported=lambda name: f"不支持的文件类型“{name[:60]}”：请上传 .xlsx 或 .csv 文件",
    malformed_csv=lambda line, exc: f"CSV 格式有误（第{line}行附近：{exc}）：请在 Excel 中重新另存为 CSV",
    too_large="Excel 文件内容过大：请只保留入户征集登记表这一个工作表后再导入",
    uncompressed_max=XLSX_UNCOMPRESSED_MAX,
    rows_noun="走访记录",
)


def decode_csv(data: bytes) -> str:
    """The CSV file as text: UTF-8 (BOM allowed), else GB18030 if it decodes cleanly, else ``SheetRejected``."""
    try:
        return _decode_csv(data)
    except SheetUnreadable as exc:
        raise SheetRejected(exc.code, exc.message) from None


# -------------------------------------------------------------------------------------------------------- header


def _header_key(value: object) -> str:
    return header_text(value, ("(必填)", "(选填)", "(可选)", "(可不填)"))


def _header_points(record: Record) -> int:
    # Only required columns count: a title or a line like "说明：…" may happen to be an optional column's name.
    keys = {_HEADER_INDEX.get(_header_key(cell.value)) for cell in record.cells}
    return len(keys & set(REQUIRED))


_HEADER: Header[ColumnKey] = Header(
    key_of=lambda value: _HEADER_INDEX.get(_header_key(value)),  # clerks add 序号, 备注 … of their own
    labels=LABELS,
    required=REQUIRED,
    score=_header_points,
    quote=lambda value: str(value).strip(),
)


# ---------------------------------------------------------------------------------------------------------- rows


class _Bad(Exception):
    """One problem of one cell, in words for the clerk."""


def _cell_value(cell: Cell, label: str, column: int | None, *, header_row: int, merge_down: bool = False) -> object:
    if cell.merged_into is not None:
        anchor_row, anchor_column = cell.merged_into
        # Clerks merge the village cell over its households; anywhere else a merge hides which row means what. Only a
        # merge down the same column, starting below the header, hands its value on.
        down = merge_down and anchor_row > header_row and column is not None and anchor_column == column + 1
        if not down or cell.inherited is None:
            raise _Bad(f"“{label}”列为{MERGED}")
        cell = cell.inherited
    elif cell.spans_rows and not merge_down:
        raise _Bad(f"“{label}”列为{MERGED}")
    if problem := cell_problem(cell, label):
        raise _Bad(problem)
    return cell.value


def _text(value: object, label: str) -> str | None:
    """A cell as text, or None if empty: numbers as written (12 → "12"); dates and booleans are not text."""
    if blank(value):
        return None
    if isinstance(value, bool):
        raise _Bad(f"“{label}”应为文字，不是 TRUE/FALSE")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, datetime | date | time | timedelta):
        raise _Bad(f"“{label}”被 Excel 当成了日期或时间（{value}）：请把该列设为文本格式后重新填写")
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").strip()
    if "\ufffd" in text:
        raise _Bad(f"“{label}”含有乱码（�）：文件编码可能不对，请另存为 UTF-8 后再导入")
    if _CONTROL.search(text):
        raise _Bad(f"“{label}”含有不可见的控制字符")
    return text


def _short_text(value: object, label: str, maximum: int, *, required: bool) -> str | None:
    text = _text(value, label)
    if text is not None:
        # Full-width digits and letters, line breaks and runs of spaces: one spelling per household and person.
        text = _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()
    if not text:
        if required:
            raise _Bad(f"“{label}”为空")
        return None
    if len(text) > maximum:
        raise _Bad(f"“{label}”超过{maximum}个字")
    return text


def _place_names(unit: Unit) -> dict[str, str]:
    names = {}
    for place in unit.places:
        for name in (place.name, *place.aliases):
            names[_SPACES.sub("", unicodedata.normalize("NFKC", name))] = place.name
    return names


def _village_candidates(text: str, unit: Unit) -> list[str]:
    """The forms a clerk's village cell may take: 西山村, 双塔山镇西山村, 西山村委会, 双塔山社区居委会 …"""
    forms = [text]
    for prefix in sorted((unit.name, *unit.aliases), key=len, reverse=True):
        if text.startswith(prefix) and len(text) > len(prefix):
            forms.append(text[len(prefix) :])
            break
    for form in list(forms):
        for suffix, replacement in (("村民委员会", "村"), ("村委会", "村"), ("居民委员会", ""), ("居委会", "")):
            if form.endswith(suffix) and len(form) > len(suffix):
                base = form[: -len(suffix)]
                forms += [base, base + replacement] if not base.endswith(replacement) else [base]
                break
    return forms


def _village(value: object, unit: Unit, units: UnitRegistry, own: dict[str, str]) -> str:
    text = _text(value, LABELS["village"])
    if text is None:
        raise _Bad(f"“{LABELS['village']}”为空")
    forms = _village_candidates(_SPACES.sub("", unicodedata.normalize("NFKC", text)), unit)
    for form in forms:
        if form in own:
            return own[form]
    elsewhere = sorted(
        {other.name for other in units.units if other.code != unit.code for form in forms if form in _place_names(other)}
    )
    whose = f"（这是{'、'.join(elsewhere)}的村/社区）" if elsewhere else ""
    raise _Bad(f"村/社区“{shown(text)}”不在本单位的名单中{whose}")


def _date(value: object, campaign: Campaign, epoch: datetime) -> date:
    label = LABELS["visited_on"]
    if blank(value):
        raise _Bad(f"“{label}”为空")
    if isinstance(value, datetime):
        found = value.date()
    elif isinstance(value, date):
        found = value
    elif isinstance(value, bool) or isinstance(value, time | timedelta):
        raise _Bad(f"“{label}”不是日期（{shown(value)}）：请写成 {_EXAMPLE_DATE} 这样的日期")
    elif isinstance(value, int | float):
        found = _numeric_date(value, epoch, label)
    else:
        found = _text_date(str(value), campaign, label)
    if not campaign.opens_on <= found <= campaign.closes_on:
        raise _Bad(f"走访日期 {found.isoformat()} 不在征集期（{campaign.window_text()}）内")
    return found


def _numeric_date(value: float, epoch: datetime, label: str) -> date:
    from openpyxl.utils.datetime import from_excel

    if float(value).is_integer() and 19000101 <= value <= 29991231:
        return _ymd(str(int(value))[:4], str(int(value))[4:6], str(int(value))[6:], label, str(int(value)))  # 20191020
    if 1 <= value < 2958466:  # a date serial in a cell formatted as a number (Excel's last date is 9999-12-31)
        return from_excel(value, epoch=epoch).date()
    raise _Bad(f"{label}“{shown(value)}”无法识别：请写成 {_EXAMPLE_DATE} 这样的日期")


def _text_date(raw: str, campaign: Campaign, label: str) -> date:
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", raw)).strip()
    compact = text.replace(" ", "")
    if m := _DATE_SEPARATED.fullmatch(text) or _DATE_SEPARATED.fullmatch(compact):
        return _ymd(m.group(1), m.group(3), m.group(4), label, raw)
    if (m := _DATE_CHINESE.fullmatch(compact)) or (m := _DATE_COMPACT.fullmatch(compact)):
        return _ymd(m.group(1), m.group(2), m.group(3), label, raw)
    if m := _DATE_NO_YEAR.fullmatch(compact):
        # "10月20日": the year is the campaign's when only one of its years puts the day in the window.
        fits = set()
        for year in {campaign.opens_on.year, campaign.closes_on.year}:
            try:
                day = date(year, int(m.group(1)), int(m.group(2)))
            except ValueError:
                continue
            if campaign.opens_on <= day <= campaign.closes_on:
                fits.add(day)
        if len(fits) == 1:
            return fits.pop()
        raise _Bad(f"{label}“{shown(raw)}”没有年份或不在征集期内：请写成 {_EXAMPLE_DATE} 这样的日期")
    raise _Bad(f"{label}“{shown(raw)}”无法识别：请写成 {_EXAMPLE_DATE} 这样的日期")


def _ymd(year: str, month: str, day: str, label: str, raw: str) -> date:
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        raise _Bad(f"{label}“{shown(raw)}”不是有效的日期") from None


def _suggestion(value: object, note: object) -> str | None:
    label = LABELS["suggestion"]
    text = _text(value, label)
    if text is None:
        # An empty cell may be a visit with nothing to say or a suggestion not typed in: only a note tells them apart.
        if blank(note):
            raise _Bad(f"“{label}”为空：该户没有建议请填“无”，或在备注中说明")
        return None
    if _SPACES.sub("", text).rstrip("。.!！") in NO_SUGGESTION:
        return None
    if not has_content(text):
        raise _Bad(f"“{label}”没有文字（只有标点符号或表情）")
    if len(text) > BODY_MAX:
        raise _Bad(f"“{label}”有{len(text)}个字，超过{BODY_MAX}个字：请分成几行填写")
    return text


def _phone(value: object) -> str | None:
    label = LABELS["phone"]
    text = _text(value, label)
    if text is None:
        return None
    phone = canonical_phone(text)
    if re.fullmatch(PHONE_PATTERN, phone):
        return phone
    hint = "：被 Excel 显示成了科学计数法，请把该列设为文本格式后重新填写" if _SCIENTIFIC.fullmatch(text) else ""
    raise _Bad(f"{label}“{shown(text)}”不是手机号或带区号的座机号{hint}")


@dataclass(frozen=True)
class _Context:
    unit: Unit
    units: UnitRegistry
    campaign: Campaign
    header_row: int
    columns: dict[ColumnKey, int]
    own_places: dict[str, str]
    epoch: datetime


def _check_row(record: Record, ctx: _Context) -> VisitRow | str:
    """The row as a visit, or every reason it is not one, joined for the clerk."""
    problems: list[str] = []
    values: dict[str, Any] = {}

    def take(key: ColumnKey, check: Any) -> None:
        column = ctx.columns.get(key)
        try:
            raw = _cell_value(record.cell(column), LABELS[key], column, header_row=ctx.header_row, merge_down=key == "village")
            values[key] = check(raw)
        except _Bad as exc:
            problems.append(str(exc))

    note = None
    if "note" in ctx.columns:
        column = ctx.columns["note"]
        try:
            # A note merged over several households ("均无建议") speaks for each of them.
            raw_note = _cell_value(record.cell(column), LABELS["note"], column, header_row=ctx.header_row, merge_down=True)
            note = _text(raw_note, LABELS["note"])
        except _Bad:
            note = None  # a note is never imported; only whether there is one matters
    take("village", lambda v: _village(v, ctx.unit, ctx.units, ctx.own_places))
    take("household", lambda v: _short_text(v, LABELS["household"], HOUSEHOLD_MAX, required=True))
    take("visited_on", lambda v: _date(v, ctx.campaign, ctx.epoch))
    take("visitor", lambda v: _short_text(v, LABELS["visitor"], PERSON_MAX, required=True))
    take("suggestion", lambda v: _suggestion(v, note))
    take("phone", _phone)
    take("name", lambda v: _short_text(v, LABELS["name"], PERSON_MAX, required=False))
    if problems:
        return "；".join(problems)
    return VisitRow(
        row=record.row,
        unit=ctx.unit.code,
        village=values["village"],
        household=values["household"],
        visited_on=values["visited_on"],
        visitor=values["visitor"],
        suggestion=values["suggestion"],
        phone=values.get("phone"),
        name=values.get("name"),
    )


# ------------------------------------------------------------------------------------------------------- public


def read_sheet(data: bytes, filename: str, unit: str, units: UnitRegistry, campaign: Campaign) -> SheetResult:
    """Check the whole sheet, then each row on its own: the good visits and the problems, in sheet order.

    Raises ``SheetRejected`` for a problem of the file as a whole, before any row is checked, and ``ValueError``
    for a unit code that is not in the registry (the caller's mistake, not the clerk's).
    """
    found = units.unit(unit)
    if found is None:
        raise ValueError(f"unknown unit {unit!r}")
    if not found.places:
        raise SheetRejected("unit", f"{found.name}没有村/社区名单，不能导入入户征集登记表")
    try:
        # Empty rows are skipped: a merged village cell may reach below the last household.
        table = read_table(data, filename, _WORDING, _HEADER)
    except SheetUnreadable as exc:
        raise SheetRejected(exc.code, exc.message) from None

    ctx = _Context(found, units, campaign, table.header_row, table.columns, _place_names(found), table.epoch)
    rows: list[VisitRow] = []
    problems: list[RowProblem] = []
    first_row: dict[str, int] = {}
    for record in table.body:
        checked = _check_row(record, ctx)
        if isinstance(checked, str):
            problems.append(RowProblem(row=record.row, reason=checked, kind="rejected"))
        elif checked.row_key in first_row:
            first = first_row[checked.row_key]
            reason = f"与第{first}行重复（同一村/社区、住户、日期和建议）"
            problems.append(RowProblem(row=record.row, reason=reason, kind="duplicate", duplicate_of=first))
        else:
            first_row[checked.row_key] = record.row
            rows.append(checked)
    return SheetResult(rows=rows, problems=problems)


def coverage_counts(rows: Iterable[VisitRow]) -> dict[str, set[str]]:
    """The distinct households visited in each village or community (a household visited twice counts once)."""
    visited: defaultdict[str, set[str]] = defaultdict(set)
    for row in rows:
        visited[row.village].add(row.household)
    return dict(visited)
