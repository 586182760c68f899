"""Reading a spreadsheet a clerk or a bureau sends: .xlsx (first worksheet) or CSV, cell by cell, header found.

What every importer of such sheets needs and none of them should write again: telling XLSX from CSV by content,
refusing old .xls, encrypted, damaged and zip-bomb workbooks, decoding CSV (UTF-8 with or without BOM, or GB18030
as Excel in China saves it) and guessing its delimiter, loading the first worksheet with what a spreadsheet adds to
a value (merged ranges, formulas without a cached result, error values), and finding the header row among the first
rows by the spellings of its columns. Nothing here knows what the columns mean.

Problems of the file as a whole raise ``SheetUnreadable`` with a short code and a message in Chinese; an importer
may re-raise it as its own error. The wording that names the importer's sheet comes from its ``Wording``.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

HEADER_SEARCH_ROWS = 10
EXCEL_EPOCH = datetime(1899, 12, 30)  # the 1900 date system's day 0, for date serials in CSV files
UNREADABLE = "无法读取该 Excel 文件（文件已损坏或不是 .xlsx）：请在 Excel 中重新保存后再导入"

_SPACES = re.compile(r"\s+")
K = TypeVar("K")  # the importer's column keys


class FileRefused(ValueError):
    """An uploaded file refused as a whole: a fixed code for the logs and a message for the person who sent it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # a short, fixed word for the logs (the message may quote the file)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SheetUnreadable(FileRefused):
    """The file as a whole cannot be read as a sheet."""


@dataclass(frozen=True, slots=True)
class Wording:
    """The messages that name the importer's sheet or ask for something in its own words."""

    empty_file: str  # "文件是空的：请上传填好的……"
    not_xlsx: Callable[[str], str]  # the file name → a file called .xlsx that is not one
    unsupported: Callable[[str], str]  # the file name → neither .xlsx nor .csv
    malformed_csv: Callable[[int, csv.Error], str]  # the line near which the CSV reader failed, and its error
    too_large: str  # an .xlsx inflating past ``uncompressed_max``
    uncompressed_max: int  # bytes; a zip bomb disguised as .xlsx would be inflated by openpyxl whole
    rows_noun: str  # what the rows below the header are, for "表头（第N行）下面没有填写任何……"


# ---------------------------------------------------------------------------------------------------------- cells


@dataclass(frozen=True, slots=True)
class Cell:
    """One cell as read: its own value, and what a spreadsheet adds (merges, formulas, error values)."""

    value: object = None
    merged_into: tuple[int, int] | None = None  # (row, column) of the merged range's top-left, for the other cells
    inherited: Cell | None = None  # the top-left cell of that range
    spans_rows: bool = False  # top-left of a merged range reaching into later rows
    spans_columns: bool = False  # top-left of a merged range reaching into later columns
    formula_without_value: bool = False
    error: str | None = None  # "#N/A", "#REF!" …


EMPTY = Cell()


@dataclass(frozen=True, slots=True)
class Record:
    """One row: its number as the spreadsheet shows it, and its cells from the first column on."""

    row: int
    cells: tuple[Cell, ...]

    def cell(self, column: int | None) -> Cell:
        return self.cells[column] if column is not None and column < len(self.cells) else EMPTY


def blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def has_own_content(cell: Cell) -> bool:
    return not blank(cell.value) or cell.formula_without_value or cell.error is not None


def any_content(records: Iterable[Record]) -> bool:
    """Whether any cell of these rows holds anything (a formula without a result and an error value count)."""
    return any(has_own_content(cell) for record in records for cell in record.cells)


def is_empty(record: Record, positions: Iterable[int]) -> bool:
    """Whether the row holds nothing in these columns (templates number rows nobody filled in, in other columns)."""
    return not any(has_own_content(record.cell(position)) for position in positions)


def shown(value: object, limit: int = 30) -> str:
    """A value for quoting in a message: spaces collapsed, cut at ``limit`` characters."""
    text = _SPACES.sub(" ", str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cell_problem(cell: Cell, label: str) -> str | None:
    """Why the cell of column ``label`` has no usable value (an error value, a formula never computed), or None."""
    if cell.error is not None:
        return f"“{label}”是错误值 {cell.error}：请改正公式或填写内容"
    if cell.formula_without_value:
        return f"“{label}”是公式但没有计算结果：请在 Excel 中打开并保存后再导入"
    return None


# ----------------------------------------------------------------------------------------------------------- file


def sheet_format(data: bytes, filename: str, wording: Wording) -> Literal["xlsx", "csv"]:
    """XLSX or CSV: by content when it can tell (files get renamed, browsers send any name), else by the name."""
    if not data:
        raise SheetUnreadable("empty", wording.empty_file)
    suffix = filename.strip().lower().rsplit(".", 1)[-1] if "." in filename else ""
    if data.startswith(b"PK\x03\x04"):
        return "xlsx"
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise SheetUnreadable("format", "这是旧版 Excel（.xls）或加密的 Excel 文件：请取消密码，另存为 .xlsx 后再导入")
    if suffix in ("xlsx", "xlsm"):
        raise SheetUnreadable("format", wording.not_xlsx(filename))
    if suffix in ("csv", "txt"):
        return "csv"
    raise SheetUnreadable("format", wording.unsupported(filename))


def decode_csv(data: bytes) -> str:
    """The CSV file as text: UTF-8 (BOM allowed), else GB18030 if it decodes cleanly, else ``SheetUnreadable``."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        message = "文件是 UTF-16 编码（Unicode 文本）：请在 Excel 中另存为“CSV UTF-8（逗号分隔）”后再导入"
        raise SheetUnreadable("encoding", message)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # Excel in China saves "CSV (逗号分隔)" as GBK, which GB18030 contains; a strict decode refuses other encodings.
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise SheetUnreadable(
            "encoding", "文件编码无法识别（既不是 UTF-8 也不是 GB18030）：请在 Excel 中另存为“CSV UTF-8（逗号分隔）”后再导入"
        ) from None


def csv_records(text: str, score: Callable[[Record], int], wording: Wording, minimum: int = 1) -> list[Record]:
    """The CSV text's rows, split at the delimiter that shows a header (see ``find_header``; ``,`` if none does)."""
    # Excel saves CSV with ";" in some locales and "Text" as tab-separated.
    best: tuple[int, str] | None = None
    for delimiter in (",", "\t", ";"):
        try:
            head = _parse_csv(text, delimiter, wording, limit=HEADER_SEARCH_ROWS)
        except SheetUnreadable:
            continue
        points = find_header(head, score, minimum)[1]
        if points and (best is None or points > best[0]):
            best = (points, delimiter)
    return _parse_csv(text, best[1] if best else ",", wording)


def _parse_csv(text: str, delimiter: str, wording: Wording, limit: int | None = None) -> list[Record]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records: list[Record] = []
    try:
        for number, cells in enumerate(reader, start=1):  # the spreadsheet row: one per CSV record
            records.append(Record(number, tuple(Cell(value) for value in cells)))
            if limit is not None and number >= limit:
                break
    except csv.Error as exc:
        raise SheetUnreadable("malformed", wording.malformed_csv(reader.line_num, exc)) from None
    return records


def _load_workbook(data: bytes, data_only: bool) -> Any:
    import openpyxl  # the CSV path does not pay for it

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl warns about extensions it drops (data validation, slicers)
        return openpyxl.load_workbook(io.BytesIO(data), read_only=False, data_only=data_only)


def xlsx_records(data: bytes, wording: Wording) -> tuple[list[Record], datetime]:
    """The first worksheet's rows, and the workbook's date epoch (Mac Excel's 1904 system shifts serials by 4 years)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise SheetUnreadable("unreadable", UNREADABLE) from None
    if inflated > wording.uncompressed_max:
        raise SheetUnreadable("too_large", wording.too_large)
    try:
        # read_only=False: merged ranges are only visible in a fully loaded worksheet.
        workbook = _load_workbook(data, data_only=False)
    except Exception:  # openpyxl raises whatever its zip, XML and style readers raise for a damaged file
        raise SheetUnreadable("unreadable", UNREADABLE) from None
    if not workbook.worksheets:
        raise SheetUnreadable("empty", "Excel 文件里没有工作表")
    sheet = workbook.worksheets[0]
    formulas = any(cell.data_type == "f" for row in sheet.iter_rows() for cell in row)
    # A formula's result is only in the file as the value cached by the program that last saved it.
    cached = _load_workbook(data, data_only=True).worksheets[0] if formulas else None

    top_left: dict[tuple[int, int], tuple[int, int]] = {}
    spans: dict[tuple[int, int], tuple[bool, bool]] = {}
    for merged in sheet.merged_cells.ranges:
        spans[(merged.min_row, merged.min_col)] = (merged.max_row > merged.min_row, merged.max_col > merged.min_col)
        for row, column in merged.cells:
            if (row, column) != (merged.min_row, merged.min_col):
                top_left[(row, column)] = (merged.min_row, merged.min_col)

    cells: dict[tuple[int, int], Cell] = {}
    records = []
    for row_cells in sheet.iter_rows(min_row=1, max_row=sheet.max_row, max_col=sheet.max_column):
        row_number = row_cells[0].row
        out = []
        for column, cell in enumerate(row_cells, start=1):
            where = (row_number, column)
            if where in top_left:
                anchor = top_left[where]
                read = Cell(merged_into=anchor, inherited=cells.get(anchor, EMPTY))
            else:
                read = _xlsx_cell(cell, cached, *spans.get(where, (False, False)))
            cells[where] = read
            out.append(read)
        records.append(Record(row_number, tuple(out)))
    return records, workbook.epoch


def _xlsx_cell(cell: Any, cached: Any, spans_rows: bool, spans_columns: bool) -> Cell:
    def make(value: object, **extra: Any) -> Cell:
        return Cell(value, spans_rows=spans_rows, spans_columns=spans_columns, **extra)

    if cell.data_type == "e":
        return make(cell.value, error=str(cell.value))
    if cell.data_type != "f":
        return make(cell.value)
    result = cached.cell(row=cell.row, column=cell.column)
    if result.data_type == "e":
        return make(result.value, error=str(result.value))
    if result.value is None and result.data_type != "str":
        return make(None, formula_without_value=True)
    return make("" if result.value is None else result.value)  # t="str" with no text: ""


def read_records(
    data: bytes, filename: str, score: Callable[[Record], int], wording: Wording, minimum: int = 1
) -> tuple[list[Record], datetime]:
    """Every row of the file (XLSX: first worksheet; CSV: the delimiter that shows a header by ``score``, at least
    ``minimum``), and its date epoch."""
    if sheet_format(data, filename, wording) == "xlsx":
        return xlsx_records(data, wording)
    return csv_records(decode_csv(data), score, wording, minimum), EXCEL_EPOCH


# --------------------------------------------------------------------------------------------------------- header


def header_text(value: object, markers: Sequence[str] = ("(必填)",)) -> str:
    """A header cell as compared with column spellings: NFKC (full-width brackets, slashes and colons become ASCII
    ones), no spaces, no ``*`` or ``:`` around it, and none of ``markers`` (such as "(必填)") at its end."""
    text = unicodedata.normalize("NFKC", str(value)) if not blank(value) else ""
    text = _SPACES.sub("", text).strip("*:")
    for marker in markers:
        text = text.removesuffix(marker)
    return text.strip("*:")


def find_header(records: Sequence[Record], score: Callable[[Record], int], minimum: int = 1) -> tuple[Record | None, int]:
    """The first row among the first ``HEADER_SEARCH_ROWS`` with the highest ``score``, at least ``minimum``."""
    best: tuple[Record | None, int] = (None, 0)
    for record in records[:HEADER_SEARCH_ROWS]:
        points = score(record)
        if points >= minimum and points > best[1]:
            best = (record, points)
    return best


def header_columns(
    records: Sequence[Record],
    score: Callable[[Record], int],
    key_of: Callable[[object], K | None],
    labels: Mapping[K, str],
    required: Sequence[K],
    *,
    minimum: int = 1,
    quote: Callable[[object], str] = shown,
) -> tuple[int, dict[K, int]]:
    """The header's row number (``find_header``) and the position of each column it names by ``key_of``.

    ``SheetUnreadable`` if no row is a header, if two cells name the same column (quoted by ``quote``) or if a
    ``required`` column is missing. Cells ``key_of`` does not know are other columns of the sender's own (序号 …).
    """
    header, _ = find_header(records, score, minimum)
    wanted = "、".join(labels[k] for k in required)
    if header is None:
        raise SheetUnreadable("no_header", f"前{HEADER_SEARCH_ROWS}行中找不到表头：表头应有这些列：{wanted}")
    columns: dict[K, int] = {}
    for position, cell in enumerate(header.cells):
        key = key_of(cell.value)
        if key is None:
            continue
        if key in columns:
            first, again = quote(header.cells[columns[key]].value), quote(cell.value)
            raise SheetUnreadable("repeated_columns", f"第{header.row}行的“{first}”和“{again}”都是{labels[key]}列：请只保留一列")
        columns[key] = position
    missing = [labels[k] for k in required if k not in columns]
    if missing:
        raise SheetUnreadable(
            "missing_columns", f"表头（第{header.row}行）缺少这些列：{'、'.join(missing)}（表头应有这些列：{wanted}）"
        )
    return header.row, columns


# ---------------------------------------------------------------------------------------------------------- table


@dataclass(frozen=True, slots=True)
class Header(Generic[K]):
    """How the importer's header looks: which column a header cell names, and which row is most like a header."""

    key_of: Callable[[object], K | None]  # a header cell's value → its column, None for columns of the sender's own
    labels: Mapping[K, str]  # each column's name in messages
    required: Sequence[K]
    score: Callable[[Record], int]  # how much a row looks like the header
    minimum: int = 1  # the least score of a header
    quote: Callable[[object], str] = shown  # a header cell in a message


@dataclass(frozen=True, slots=True)
class Table(Generic[K]):
    """A sheet that has a header and something below it."""

    header_row: int
    columns: dict[K, int]  # column → position in ``Record.cells``
    body: list[Record]  # the rows below the header with something in a column read (empty ones skipped)
    epoch: datetime  # for date serials


def read_table(data: bytes, filename: str, wording: Wording, header: Header[K]) -> Table[K]:
    """The file's header and the rows below it; ``SheetUnreadable`` for a problem of the file as a whole."""
    records, epoch = read_records(data, filename, header.score, wording, header.minimum)
    if not any_content(records):
        raise SheetUnreadable("empty", "表格是空的：请填写后再导入")
    header_row, columns = header_columns(
        records, header.score, header.key_of, header.labels, header.required, minimum=header.minimum, quote=header.quote
    )
    # Only the columns read count: templates come with 序号 numbered down rows nobody filled in, and a merged cell may
    # reach below the last row filled in.
    body = [r for r in records if r.row > header_row and not is_empty(r, columns.values())]
    if not body:
        raise SheetUnreadable("no_rows", f"表头（第{header_row}行）下面没有填写任何{wording.rows_noun}")
    return Table(header_row, columns, body, epoch)
