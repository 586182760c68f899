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

import csv
import hashlib
import io
import json
import re
import unicodedata
import warnings
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from minsheng_core.campaign import Campaign
from minsheng_core.events import BODY_MAX, PLACE_MAX
from minsheng_core.phones import PHONE_PATTERN, canonical_phone
from minsheng_core.text import has_content
from minsheng_core.units import Unit, UnitRegistry

HOUSEHOLD_MAX = 100
PERSON_MAX = 50
HEADER_SEARCH_ROWS = 10
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
_EXCEL_EPOCH = datetime(1899, 12, 30)
_UNREADABLE = "无法读取该 Excel 文件（文件已损坏或不是 .xlsx）：请在 Excel 中重新保存后再导入"


class SheetRejected(ValueError):
    """The sheet as a whole cannot be read; nothing of it is imported."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # a short, fixed word for the logs (the message may quote the file)
        self.message = message

    def __str__(self) -> str:
        return self.message


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


@dataclass(frozen=True, slots=True)
class _Cell:
    """One cell as read: its own value, and what a spreadsheet adds (merges, formulas, error values)."""

    value: object = None
    merged_into: tuple[int, int] | None = None  # (row, column) of the merged range's top-left, for the other cells
    inherited: _Cell | None = None  # the top-left cell of that range
    spans_rows: bool = False  # top-left of a merged range reaching into later rows
    formula_without_value: bool = False
    error: str | None = None  # "#N/A", "#REF!" …


_EMPTY = _Cell()


@dataclass(frozen=True, slots=True)
class _Record:
    row: int
    cells: tuple[_Cell, ...]

    def cell(self, column: int | None) -> _Cell:
        return self.cells[column] if column is not None and column < len(self.cells) else _EMPTY


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _has_own_content(cell: _Cell) -> bool:
    return not _blank(cell.value) or cell.formula_without_value or cell.error is not None


# ---------------------------------------------------------------------------------------------------------- file


def _sheet_format(data: bytes, filename: str) -> Literal["xlsx", "csv"]:
    if not data:
        raise SheetRejected("empty", "文件是空的：请上传填好的入户征集登记表")
    suffix = filename.strip().lower().rsplit(".", 1)[-1] if "." in filename else ""
    # The content decides when it can: clerks rename files, and a browser may send any name.
    if data.startswith(b"PK\x03\x04"):
        return "xlsx"
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise SheetRejected("format", "这是旧版 Excel（.xls）或加密的 Excel 文件：请取消密码，另存为 .xlsx 后再导入")
    if suffix in ("xlsx", "xlsm"):
        raise SheetRejected("format", f"“{filename[:60]}”不是有效的 .xlsx 文件（文件可能已损坏）：请在 Excel 中重新保存后再导入")
    if suffix in ("csv", "txt"):
        return "csv"
    raise SheetRejected("format", f"不支持的文件类型“{filename[:60]}”：请上传 .xlsx 或 .csv 文件")


def decode_csv(data: bytes) -> str:
    """The CSV file as text: UTF-8 (BOM allowed), else GB18030 if it decodes cleanly, else ``SheetRejected``."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SheetRejected("encoding", "文件是 UTF-16 编码（Unicode 文本）：请在 Excel 中另存为“CSV UTF-8（逗号分隔）”后再导入")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # Excel in China saves "CSV (逗号分隔)" as GBK, which GB18030 contains; a strict decode refuses other encodings.
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise SheetRejected(
            "encoding", "文件编码无法识别（既不是 UTF-8 也不是 GB18030）：请在 Excel 中另存为“CSV UTF-8（逗号分隔）”后再导入"
        ) from None


def _csv_records(text: str) -> list[_Record]:
    # Excel saves CSV with ";" in some locales and "Text" as tab-separated: take the delimiter that shows a header.
    best: tuple[int, str] | None = None
    for delimiter in (",", "\t", ";"):
        try:
            head = _parse_csv(text, delimiter, limit=HEADER_SEARCH_ROWS)
        except SheetRejected:
            continue
        score = _header_score(head)[1]
        if score and (best is None or score > best[0]):
            best = (score, delimiter)
    return _parse_csv(text, best[1] if best else ",")


def _parse_csv(text: str, delimiter: str, limit: int | None = None) -> list[_Record]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records: list[_Record] = []
    try:
        for number, cells in enumerate(reader, start=1):  # the spreadsheet row: one per CSV record
            records.append(_Record(number, tuple(_Cell(value) for value in cells)))
            if limit is not None and number >= limit:
                break
    except csv.Error as exc:
        message = f"CSV 格式有误（第{reader.line_num}行附近：{exc}）：请在 Excel 中重新另存为 CSV"
        raise SheetRejected("malformed", message) from None
    return records


def _load_workbook(data: bytes, data_only: bool) -> Any:
    import openpyxl  # the CSV path does not pay for it

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl warns about extensions it drops (data validation, slicers)
        return openpyxl.load_workbook(io.BytesIO(data), read_only=False, data_only=data_only)


def _xlsx_records(data: bytes) -> tuple[list[_Record], datetime]:
    """The first worksheet's rows, and the workbook's date epoch (Mac Excel's 1904 system shifts serials by 4 years)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise SheetRejected("unreadable", _UNREADABLE) from None
    if inflated > XLSX_UNCOMPRESSED_MAX:
        raise SheetRejected("too_large", "Excel 文件内容过大：请只保留入户征集登记表这一个工作表后再导入")
    try:
        # read_only=False: merged ranges are only visible in a fully loaded worksheet.
        workbook = _load_workbook(data, data_only=False)
    except Exception:  # openpyxl raises whatever its zip, XML and style readers raise for a damaged file
        raise SheetRejected("unreadable", _UNREADABLE) from None
    if not workbook.worksheets:
        raise SheetRejected("empty", "Excel 文件里没有工作表")
    sheet = workbook.worksheets[0]
    formulas = any(cell.data_type == "f" for row in sheet.iter_rows() for cell in row)
    # A formula's result is only in the file as the value cached by the program that last saved it.
    cached = _load_workbook(data, data_only=True).worksheets[0] if formulas else None

    top_left: dict[tuple[int, int], tuple[int, int]] = {}
    spanning: set[tuple[int, int]] = set()
    for merged in sheet.merged_cells.ranges:
        if merged.max_row > merged.min_row:
            spanning.add((merged.min_row, merged.min_col))
        for row, column in merged.cells:
            if (row, column) != (merged.min_row, merged.min_col):
                top_left[(row, column)] = (merged.min_row, merged.min_col)

    cells: dict[tuple[int, int], _Cell] = {}
    records = []
    for row_cells in sheet.iter_rows(min_row=1, max_row=sheet.max_row, max_col=sheet.max_column):
        row_number = row_cells[0].row
        out = []
        for column, cell in enumerate(row_cells, start=1):
            where = (row_number, column)
            if where in top_left:
                anchor = top_left[where]
                read = _Cell(merged_into=anchor, inherited=cells.get(anchor, _EMPTY))
            else:
                read = _xlsx_cell(cell, cached, where in spanning)
            cells[where] = read
            out.append(read)
        records.append(_Record(row_number, tuple(out)))
    return records, workbook.epoch


def _xlsx_cell(cell: Any, cached: Any, spans_rows: bool) -> _Cell:
    if cell.data_type == "e":
        return _Cell(cell.value, spans_rows=spans_rows, error=str(cell.value))
    if cell.data_type != "f":
        return _Cell(cell.value, spans_rows=spans_rows)
    result = cached.cell(row=cell.row, column=cell.column)
    if result.data_type == "e":
        return _Cell(result.value, spans_rows=spans_rows, error=str(result.value))
    if result.value is None and result.data_type != "str":
        return _Cell(None, spans_rows=spans_rows, formula_without_value=True)
    return _Cell("" if result.value is None else result.value, spans_rows=spans_rows)  # t="str" with no text: ""


# -------------------------------------------------------------------------------------------------------- header


def _header_key(value: object) -> str:
    text = unicodedata.normalize("NFKC", str(value)) if not _blank(value) else ""
    text = _SPACES.sub("", text).strip("*:")
    for marker in ("(必填)", "(选填)", "(可选)", "(可不填)"):
        text = text.removesuffix(marker)
    return text.strip("*:")


def _header_score(records: Sequence[_Record]) -> tuple[_Record | None, int]:
    best: tuple[_Record | None, int] = (None, 0)
    for record in records[:HEADER_SEARCH_ROWS]:
        # Only required columns count: a title or a line like "说明：…" may happen to be an optional column's name.
        keys = {_HEADER_INDEX.get(_header_key(cell.value)) for cell in record.cells}
        score = len(keys & set(REQUIRED))
        if score > best[1]:
            best = (record, score)
    return best


def _columns(records: Sequence[_Record]) -> tuple[int, dict[ColumnKey, int]]:
    """The header's row number and the position of each known column; ``SheetRejected`` if it does not do."""
    header, _ = _header_score(records)
    required = "、".join(LABELS[k] for k in REQUIRED)
    if header is None:
        raise SheetRejected("no_header", f"前{HEADER_SEARCH_ROWS}行中找不到表头：表头应有这些列：{required}")
    columns: dict[ColumnKey, int] = {}
    for position, cell in enumerate(header.cells):
        key = _HEADER_INDEX.get(_header_key(cell.value))
        if key is None:
            continue  # clerks add 序号, 备注 … of their own
        if key in columns:
            first = str(header.cells[columns[key]].value).strip()
            again = str(cell.value).strip()
            raise SheetRejected("repeated_columns", f"第{header.row}行的“{first}”和“{again}”都是{LABELS[key]}列：请只保留一列")
        columns[key] = position
    missing = [LABELS[k] for k in REQUIRED if k not in columns]
    if missing:
        raise SheetRejected(
            "missing_columns", f"表头（第{header.row}行）缺少这些列：{'、'.join(missing)}（表头应有这些列：{required}）"
        )
    return header.row, columns


# ---------------------------------------------------------------------------------------------------------- rows


class _Bad(Exception):
    """One problem of one cell, in words for the clerk."""


def _cell_value(cell: _Cell, label: str, column: int | None, *, header_row: int, merge_down: bool = False) -> object:
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
    if cell.error is not None:
        raise _Bad(f"“{label}”是错误值 {cell.error}：请改正公式或填写内容")
    if cell.formula_without_value:
        raise _Bad(f"“{label}”是公式但没有计算结果：请在 Excel 中打开并保存后再导入")
    return cell.value


def _text(value: object, label: str) -> str | None:
    """A cell as text, or None if empty: numbers as written (12 → "12"); dates and booleans are not text."""
    if _blank(value):
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


def _shown(value: object, limit: int = 30) -> str:
    text = _SPACES.sub(" ", str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    raise _Bad(f"村/社区“{_shown(text)}”不在本单位的名单中{whose}")


def _date(value: object, campaign: Campaign, epoch: datetime) -> date:
    label = LABELS["visited_on"]
    if _blank(value):
        raise _Bad(f"“{label}”为空")
    if isinstance(value, datetime):
        found = value.date()
    elif isinstance(value, date):
        found = value
    elif isinstance(value, bool) or isinstance(value, time | timedelta):
        raise _Bad(f"“{label}”不是日期（{_shown(value)}）：请写成 {_EXAMPLE_DATE} 这样的日期")
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
    raise _Bad(f"{label}“{_shown(value)}”无法识别：请写成 {_EXAMPLE_DATE} 这样的日期")


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
        raise _Bad(f"{label}“{_shown(raw)}”没有年份或不在征集期内：请写成 {_EXAMPLE_DATE} 这样的日期")
    raise _Bad(f"{label}“{_shown(raw)}”无法识别：请写成 {_EXAMPLE_DATE} 这样的日期")


def _ymd(year: str, month: str, day: str, label: str, raw: str) -> date:
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        raise _Bad(f"{label}“{_shown(raw)}”不是有效的日期") from None


def _suggestion(value: object, note: object) -> str | None:
    label = LABELS["suggestion"]
    text = _text(value, label)
    if text is None:
        # An empty cell may be a visit with nothing to say or a suggestion not typed in: only a note tells them apart.
        if _blank(note):
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
    raise _Bad(f"{label}“{_shown(text)}”不是手机号或带区号的座机号{hint}")


@dataclass(frozen=True)
class _Context:
    unit: Unit
    units: UnitRegistry
    campaign: Campaign
    header_row: int
    columns: dict[ColumnKey, int]
    own_places: dict[str, str]
    epoch: datetime


def _check_row(record: _Record, ctx: _Context) -> VisitRow | str:
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


def _is_empty(record: _Record, columns: dict[ColumnKey, int]) -> bool:
    # Only the columns read count: templates come with 序号 numbered down rows nobody filled in, and a merged village
    # cell may reach below the last household.
    return not any(_has_own_content(record.cell(position)) for position in columns.values())


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
    fmt = _sheet_format(data, filename)
    if fmt == "xlsx":
        records, epoch = _xlsx_records(data)
    else:
        records, epoch = _csv_records(decode_csv(data)), _EXCEL_EPOCH
    if not any(_has_own_content(c) for r in records for c in r.cells):
        raise SheetRejected("empty", "表格是空的：请填写后再导入")
    header_row, columns = _columns(records)
    body = [r for r in records if r.row > header_row and not _is_empty(r, columns)]
    if not body:
        raise SheetRejected("no_rows", f"表头（第{header_row}行）下面没有填写任何走访记录")

    ctx = _Context(found, units, campaign, header_row, columns, _place_names(found), epoch)
    rows: list[VisitRow] = []
    problems: list[RowProblem] = []
    first_row: dict[str, int] = {}
    for record in body:
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
