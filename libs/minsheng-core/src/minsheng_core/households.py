"""Household counts and the living-environment programme flag of each village and community, from a spreadsheet.

The civil-affairs bureau sends the district office one row per village or community, in Excel (.xlsx, first
worksheet) or as CSV (UTF-8 with or without BOM, or GB18030 as Excel in China saves it). Title rows may stand above
the header; the header is looked for in the first 10 rows. Columns, in any order (synonyms accepted, others ignored):

==================  ==========================================  ==================================================
乡镇/街道            乡镇（街道）, 乡镇, 街道, 所属乡镇 …          a town, township or sub-district: name or alias
村/社区              村（社区）, 村居, 行政村, 村名 …               a village or community of that unit: name or alias
户数                 总户数, 户籍户数, 户数（户）…                  a whole number ≥ 0 ("1,234" and "512户" accepted)
人居环境改善项目村    是否项目村, 项目村 …                          是/否, Y/N, √/×, 1/0, TRUE/FALSE; empty means 否
==================  ==========================================  ==================================================

Problems of the whole file raise ``HouseholdsRejected`` before any row is looked at. Each row is then checked on
its own; a bad row becomes a ``RowProblem`` with the row number as the spreadsheet shows it and the reason in
Chinese. Empty rows are skipped; 合计/小计 rows are skipped and listed. A merged cell is refused everywhere except
down the 乡镇/街道 column (the bureau's sheets merge a town's name over its villages). Two rows for the same place
with the same values: the later one is listed as a repeat; with different values: every one of them is rejected.

``apply_households`` writes the updates into the text of ``config/units.yaml`` line by line, so that its comments
and layout stay as they are, and checks the result by loading it again. ``main`` is the ``minsheng-units`` command.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict

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
from minsheng_core.units import DEFAULT_UNITS_FILE, Unit, UnitKind, UnitRegistry

# Sanity bound, not a rule of the registry: a count above it is a typo (an extra digit) far more often than a fact.
HOUSEHOLDS_MAX = 100_000
# A zip bomb disguised as .xlsx would be inflated by openpyxl whole; the bureau's sheet is a few hundred kilobytes.
XLSX_UNCOMPRESSED_MAX = 100 * 1024 * 1024

ColumnKey = Literal["unit", "place", "households", "programme"]
COLUMNS: tuple[ColumnKey, ...] = ("unit", "place", "households", "programme")
LABELS: dict[ColumnKey, str] = {
    "unit": "乡镇/街道",
    "place": "村/社区",
    "households": "户数",
    "programme": "人居环境改善项目村",
}
# Header spellings after _header_key (NFKC turns full-width brackets, slashes and colons into ASCII ones).
SYNONYMS: dict[ColumnKey, tuple[str, ...]] = {
    "unit": (
        *("乡镇/街道", "乡镇(街道)", "乡镇街道", "乡镇、街道", "乡(镇、街道)", "乡(镇)/街道", "乡镇/街道名称", "乡镇(街道)名称"),
        *("乡镇", "街道", "镇/街道", "镇(街道)", "镇街", "乡镇名称", "所属乡镇", "所属乡镇/街道", "所属乡镇(街道)"),
        *("单位", "单位名称", "责任单位"),
    ),
    "place": (
        *("村/社区", "村(社区)", "村社区", "村、社区", "村居", "村/居", "村(居)", "社区/村", "村/社区名称", "村(社区)名称"),
        *("村居名称", "村/社区名", "行政村", "行政村/社区", "村名", "村庄", "村(居)委会", "村/居委会"),
    ),
    "households": ("户数", "总户数", "户籍户数", "常住户数", "住户数", "家庭户数", "户数合计", "总户数合计"),
    "programme": (
        *("人居环境改善项目村", "人居环境改善项目", "是否人居环境改善项目村", "是否为人居环境改善项目村", "人居环境项目村"),
        *("人居环境改善村", "人居环境整治项目村", "项目村", "是否项目村", "是否为项目村", "2020年人居环境改善项目村"),
    ),
}
_HEADER_INDEX = {spelling: key for key, spellings in SYNONYMS.items() for spelling in spellings}
# A programme cell as written, after NFKC, without spaces and upper-cased. An empty cell means 否 (the sheets tick
# the programme villages and leave the others blank).
_YES = frozenset({"是", "Y", "YES", "T", "TRUE", "1", "√", "✓", "✔", "☑", "是项目村", "项目村"})
_NO = frozenset({"否", "N", "NO", "F", "FALSE", "0", "×", "✗", "✘", "不是", "非", "无", "/", "-", "—", "--", "——"})
_TOTAL_WORDS = frozenset({"合计", "总计", "小计", "共计", "总数", "合计数"})
MERGED = "合并单元格：请取消合并后再导入"

_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_TRAILING_NOTE = re.compile(r"\([^()]*\)$")  # 户数(户), 人居环境改善项目村(是/否)
_WHOLE = re.compile(r"[+-]?(\d+|\d{1,3}(,\d{3})+)(\.0+)?")
_DECIMAL = re.compile(r"[+-]?\d+(,\d{3})*\.\d+")


class HouseholdsRejected(SheetUnreadable):
    """The sheet as a whole cannot be read; nothing of it is imported (``code``: a short, fixed word for the logs)."""


class HouseholdsUpdate(NamedTuple):
    """What one row says about one place: (unit code, place name as in the registry, households, programme flag)."""

    unit: str
    place: str
    households: int
    living_environment_programme: bool


class RowProblem(BaseModel):
    """A row not imported: rejected with a reason, a repeat of an earlier row, or a 合计 row skipped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    row: int
    reason: str
    kind: Literal["rejected", "duplicate", "skipped"]
    duplicate_of: int | None = None


class HouseholdsResult(BaseModel):
    """The good rows as updates (one per place, in sheet order) and every problem, in sheet order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    updates: list[HouseholdsUpdate]
    rows: dict[str, int]  # "unit/place" → the sheet row the update comes from
    problems: list[RowProblem]

    @property
    def rejected(self) -> list[RowProblem]:
        return [p for p in self.problems if p.kind == "rejected"]


# ---------------------------------------------------------------------------------------------------------- cells


def _norm(value: object) -> str:
    return _SPACES.sub("", unicodedata.normalize("NFKC", str(value)))


# ----------------------------------------------------------------------------------------------------------- file


_WORDING = Wording(
    empty_file="文件是空的：请提供填好的户数表",
    not_xlsx=lambda name: f"“{shown(name, 60)}”不是有效的 .xlsx 文件（文件可能已损坏）：请重新保存后再导入",
    unsupported=lambda name: f"不支持的文件类型“{shown(name, 60)}”：请提供 .xlsx 或 .csv 文件",
    malformed_csv=lambda line, exc: f"CSV 格式有误（第{line}行附近：{exc}）：请重新另存为 CSV",
    too_large="Excel 文件内容过大：请只保留户数表这一个工作表后再导入",
    uncompressed_max=XLSX_UNCOMPRESSED_MAX,
    rows_noun="村/社区",
)


# --------------------------------------------------------------------------------------------------------- header


def _header_key(value: object) -> ColumnKey | None:
    if blank(value):
        return None
    # "(必填)" then "(选填)", each with the "*" and ":" it leaves at the end.
    text = header_text(header_text(value, ("(必填)",)), ("(选填)",))
    if text in _HEADER_INDEX:
        return _HEADER_INDEX[text]
    return _HEADER_INDEX.get(_TRAILING_NOTE.sub("", text).strip("*:"))  # 户数(户), 项目村(是/否)


def _header_points(record: Record) -> int:
    return len({_header_key(cell.value) for cell in record.cells} - {None})


# Two known columns make a header; a title like "各乡镇户数统计表" matches none. 序号, 备注 … are the bureau's own.
_HEADER: Header[ColumnKey] = Header(key_of=_header_key, labels=LABELS, required=COLUMNS, score=_header_points, minimum=2)


# ----------------------------------------------------------------------------------------------------------- rows


class _Bad(Exception):
    """One problem of one cell, in words for the district office."""


def _cell_value(cell: Cell, key: ColumnKey, column: int, header_row: int) -> object:
    label = LABELS[key]
    merge_down = key == "unit"  # the bureau merges a town's name over its villages: that merge hands its value on
    if cell.merged_into is not None:
        anchor_row, anchor_column = cell.merged_into
        down = merge_down and anchor_row > header_row and anchor_column == column + 1
        if not down or cell.inherited is None or cell.inherited.spans_columns:
            raise _Bad(f"“{label}”列为{MERGED}")
        cell = cell.inherited
    elif cell.spans_columns or (cell.spans_rows and not merge_down):
        raise _Bad(f"“{label}”列为{MERGED}")
    if problem := cell_problem(cell, label):
        raise _Bad(problem)
    return cell.value


def _name(value: object, label: str) -> str:
    if blank(value):
        raise _Bad(f"“{label}”为空")
    if isinstance(value, bool | datetime | date | time | timedelta):
        raise _Bad(f"“{label}”应为名称，不是“{shown(value)}”")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = _norm(value)
    if "\ufffd" in text:
        raise _Bad(f"“{label}”含有乱码（�）：文件编码可能不对，请另存为 UTF-8 后再导入")
    if _CONTROL.search(text):
        raise _Bad(f"“{label}”含有不可见的控制字符")
    return text


@dataclass(frozen=True)
class _Names:
    """The registry's names, normalised: unit names and aliases → codes; each unit's place names and aliases."""

    units: dict[str, set[str]]
    places: dict[str, dict[str, str]]  # unit code → normalised name or alias → the registry's place name
    registry: UnitRegistry

    @classmethod
    def of(cls, registry: UnitRegistry) -> _Names:
        units: dict[str, set[str]] = {}
        places: dict[str, dict[str, str]] = {}
        for unit in registry.units:
            for name in (unit.name, *unit.aliases):
                units.setdefault(_norm(name), set()).add(unit.code)
            places[unit.code] = {_norm(n): p.name for p in unit.places for n in (p.name, *p.aliases)}
        return cls(units, places, registry)


def _unit(text: str, names: _Names) -> Unit:
    label = LABELS["unit"]
    forms = [text]
    for prefix in (names.registry.district.name.removesuffix("人民政府办公室"), "承德市双滦区"):
        if prefix and text.startswith(prefix) and len(text) > len(prefix):
            forms.append(text[len(prefix) :])  # 双滦区双塔山镇
    for form in list(forms):
        for suffix in ("人民政府", "政府", "办事处"):
            if form.endswith(suffix) and len(form) > len(suffix):
                forms.append(form[: -len(suffix)])  # 双塔山镇人民政府, 元宝山街道办事处
    for form in forms:
        codes = names.units.get(form)
        if codes and len(codes) > 1:
            raise _Bad(f"{label}“{shown(text)}”可指多个单位：请写全称")
        if codes:
            unit = names.registry.unit(next(iter(codes)))
            assert unit is not None
            if unit.kind is UnitKind.OFFICE or not unit.places:
                raise _Bad(f"“{unit.name}”不是乡镇或街道，没有村/社区")
            return unit
    raise _Bad(f"{label}“{shown(text)}”不在本区的乡镇/街道名单中")


def _place_forms(text: str, unit: Unit) -> list[str]:
    """The forms a place cell may take: 西山村, 双塔山镇西山村, 西山村委会, 双塔山社区居委会 …"""
    forms = [text]
    for prefix in sorted((_norm(n) for n in (unit.name, *unit.aliases)), key=len, reverse=True):
        if text.startswith(prefix) and len(text) > len(prefix) and text[len(prefix) :] not in forms:
            forms.append(text[len(prefix) :])
            break
    for form in list(forms):
        for suffix, replacement in (("村民委员会", "村"), ("村委会", "村"), ("居民委员会", ""), ("居委会", "")):
            if form.endswith(suffix) and len(form) > len(suffix):
                base = form[: -len(suffix)]
                forms += [base, base + replacement] if not base.endswith(replacement) else [base]
                break
    return forms


def _place(text: str, unit: Unit, names: _Names) -> str:
    forms = _place_forms(text, unit)
    own = names.places[unit.code]
    for form in forms:
        if form in own:
            return own[form]
    elsewhere = sorted(
        {other.name for other in names.registry.units if other.code != unit.code for f in forms if f in names.places[other.code]}
    )
    if elsewhere:
        raise _Bad(f"村/社区“{shown(text)}”属于{'、'.join(elsewhere)}，不属于{unit.name}")
    raise _Bad(f"村/社区“{shown(text)}”不在{unit.name}的村/社区名单中（新的村/社区请先登记到 config/units.yaml）")


def _households(value: object) -> int:
    label = LABELS["households"]
    if blank(value):
        raise _Bad(f"“{label}”为空")
    if isinstance(value, bool) or isinstance(value, datetime | date | time | timedelta):
        raise _Bad(f"{label}“{shown(value)}”不是整数：请只填数字，如 512")
    if isinstance(value, float):
        if not value.is_integer():
            raise _Bad(f"{label}“{shown(value)}”不是整数：户数应为整数")
        number = int(value)
    elif isinstance(value, int):
        number = value
    else:
        text = _norm(value).removesuffix("户")
        if _DECIMAL.fullmatch(text) and not _WHOLE.fullmatch(text):
            raise _Bad(f"{label}“{shown(value)}”不是整数：户数应为整数")
        if not _WHOLE.fullmatch(text):
            raise _Bad(f"{label}“{shown(value)}”不是整数：请只填数字，如 512")
        number = int(text.split(".")[0].replace(",", ""))
    if number < 0:
        raise _Bad(f"{label}“{shown(value)}”是负数：户数不能小于 0")
    if number > HOUSEHOLDS_MAX:
        raise _Bad(f"{label}“{shown(value)}”超过 {HOUSEHOLDS_MAX}：请核对是否多填了数字")
    return number


def _programme(value: object) -> bool:
    label = LABELS["programme"]
    if blank(value):
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        text = _norm(value).upper()
        if text in _YES:
            return True
        if text in _NO:
            return False
    raise _Bad(f"{label}“{shown(value)}”无法识别：请填“是”或“否”（或 √，不是项目村的留空）")


def _row_words(record: Record, columns: dict[ColumnKey, int]) -> set[str]:
    words = set()
    for key in ("unit", "place"):
        cell = record.cell(columns[key])
        if not blank(cell.value):
            words.add(_norm(cell.value).replace(":", ""))
    return words


def _check_row(record: Record, columns: dict[ColumnKey, int], header_row: int, names: _Names) -> HouseholdsUpdate | str:
    problems: list[str] = []
    values: dict[ColumnKey, object] = {}
    for key in COLUMNS:
        try:
            values[key] = _cell_value(record.cell(columns[key]), key, columns[key], header_row)
        except _Bad as exc:
            problems.append(str(exc))
    unit = place = households = programme = None
    if "unit" in values:
        try:
            unit = _unit(_name(values["unit"], LABELS["unit"]), names)
        except _Bad as exc:
            problems.append(str(exc))
    if "place" in values:
        try:
            text = _name(values["place"], LABELS["place"])
            if unit is not None:
                place = _place(text, unit, names)
        except _Bad as exc:
            problems.append(str(exc))
    if "households" in values:
        try:
            households = _households(values["households"])
        except _Bad as exc:
            problems.append(str(exc))
    if "programme" in values:
        try:
            programme = _programme(values["programme"])
        except _Bad as exc:
            problems.append(str(exc))
    if problems:
        return "；".join(problems)
    assert unit is not None and place is not None and households is not None and programme is not None
    return HouseholdsUpdate(unit.code, place, households, programme)


def read_households(data: bytes, filename: str, registry: UnitRegistry) -> HouseholdsResult:
    """Check the whole sheet, then each row on its own: one update per place and every problem, in sheet order.

    Raises ``HouseholdsRejected`` for a problem of the file as a whole, before any row is checked.
    """
    try:
        # Empty rows are skipped: a merged town cell may reach below the last village.
        table = read_table(data, filename, _WORDING, _HEADER)
    except SheetUnreadable as exc:
        raise HouseholdsRejected(exc.code, exc.message) from None
    header_row, columns = table.header_row, table.columns

    names = _Names.of(registry)
    problems: list[RowProblem] = []
    checked: list[tuple[int, HouseholdsUpdate]] = []
    for record in table.body:
        if _row_words(record, columns) & _TOTAL_WORDS:
            problems.append(RowProblem(row=record.row, reason="合计/小计行，不导入", kind="skipped"))
            continue
        result = _check_row(record, columns, header_row, names)
        if isinstance(result, str):
            problems.append(RowProblem(row=record.row, reason=result, kind="rejected"))
        else:
            checked.append((record.row, result))

    by_place: dict[tuple[str, str], list[tuple[int, HouseholdsUpdate]]] = {}
    for row, update in checked:
        by_place.setdefault((update.unit, update.place), []).append((row, update))
    updates: list[HouseholdsUpdate] = []
    rows: dict[str, int] = {}
    for (code, place), found in by_place.items():
        first_row, first = found[0]
        unit = registry.unit(code)
        assert unit is not None
        if len({(u.households, u.living_environment_programme) for _, u in found}) > 1:
            numbers = "、".join(f"第{r}行" for r, _ in found)
            reason = f"{unit.name}{place}在{numbers}都出现，户数或项目村标记不一致：请只保留正确的一行"
            for row, _ in found:
                problems.append(RowProblem(row=row, reason=reason, kind="rejected"))
            continue
        updates.append(first)
        rows[f"{code}/{place}"] = first_row
        for row, _ in found[1:]:
            reason = f"与第{first_row}行重复（同一村/社区，数值相同）"
            problems.append(RowProblem(row=row, reason=reason, kind="duplicate", duplicate_of=first_row))
    updates.sort(key=lambda u: rows[f"{u.unit}/{u.place}"])
    problems.sort(key=lambda p: p.row)
    return HouseholdsResult(updates=updates, rows=rows, problems=problems)


# ---------------------------------------------------------------------------------------------------------- write

_PLACE_LINE = re.compile(r"^(?P<lead>\s*-\s*)(?P<body>\{.*\})(?P<tail>\s*(?:#.*)?)$")
_CODE_LINE = re.compile(r"^\s*(?:-\s*)?code\s*:\s*(?P<code>[A-Za-z0-9_]+)\s*(?:#.*)?$")


def _set_key(body: str, key: str, value: str) -> str:
    """The flow mapping's text with ``key`` set to ``value``: in place if present, else added before the brace."""
    pattern = re.compile(rf"(?P<before>[{{,]\s*{key}\s*:\s*)(?P<value>[^,}}]*?)(?P<after>\s*[,}}])")
    matches = list(pattern.finditer(body))
    if len(matches) > 1:
        raise ValueError(f"key {key} appears twice in {body}")
    if matches:
        m = matches[0]
        return body[: m.start("value")] + value + body[m.end("value") :]
    inner = body[1:-1].rstrip()
    return "{" + (f"{inner}, " if inner.strip() else "") + f"{key}: {value}" + "}"


def _parse_registry(text: str) -> UnitRegistry:
    return UnitRegistry.model_validate(yaml.safe_load(text))


def apply_households(registry_yaml_text: str, updates: Iterable[Sequence[Any]]) -> str:
    """The registry text with these places' households and programme flag set, every other character as it was.

    ``updates`` are (unit code, place name, households, programme flag). Raises ``ValueError`` for an unknown
    place, a place not written on one line in flow style, or a result that does not load as the intended registry.
    """
    before = _parse_registry(registry_yaml_text)
    wanted: dict[tuple[str, str], tuple[int, bool]] = {}
    for code, place, households, programme in updates:
        unit = before.unit(code)
        if unit is None or not any(p.name == place for p in unit.places):
            raise ValueError(f"no place {place!r} in unit {code!r}")
        if isinstance(households, bool) or not isinstance(households, int) or households < 0:
            raise ValueError(f"households of {code}/{place} must be a whole number >= 0, not {households!r}")
        if not isinstance(programme, bool):
            raise ValueError(f"programme flag of {code}/{place} must be a bool, not {programme!r}")
        if wanted.get((code, place), (households, programme)) != (households, programme):
            raise ValueError(f"conflicting updates for {code}/{place}")
        wanted[(code, place)] = (households, programme)

    lines = registry_yaml_text.splitlines(keepends=True)
    done: set[tuple[str, str]] = set()
    current: str | None = None
    for index, line in enumerate(lines):
        content = line.rstrip("\r\n")
        ending = line[len(content) :]
        if m := _CODE_LINE.match(content):
            current = m.group("code")
            continue
        m = _PLACE_LINE.match(content)
        if m is None or current is None:
            continue
        try:
            mapping = yaml.safe_load(m.group("body"))
        except yaml.YAMLError:
            continue
        if not isinstance(mapping, dict) or (current, mapping.get("name")) not in wanted:
            continue
        households, programme = wanted[(current, mapping["name"])]
        body = _set_key(m.group("body"), "households", str(households))
        body = _set_key(body, "living_environment_programme", "true" if programme else "false")
        lines[index] = m.group("lead") + body + m.group("tail") + ending
        done.add((current, mapping["name"]))
    missing = sorted(set(wanted) - done)
    if missing:
        raise ValueError(f"places not written one per line in flow style, cannot edit: {missing}")
    result = "".join(lines)
    _verify(before, result, wanted)
    return result


def _verify(before: UnitRegistry, text: str, wanted: dict[tuple[str, str], tuple[int, bool]]) -> None:
    """The edited text must load as the old registry with exactly the intended values changed."""
    after = _parse_registry(text)
    units = []
    for unit in before.units:
        places = []
        for place in unit.places:
            if (unit.code, place.name) in wanted:
                households, programme = wanted[(unit.code, place.name)]
                place = place.model_copy(update={"households": households, "living_environment_programme": programme})
            places.append(place)
        units.append(unit.model_copy(update={"places": tuple(places)}))
    expected = before.model_copy(update={"units": tuple(units)})
    if after != expected:
        raise ValueError("the edited registry does not load as intended; nothing written")


# ------------------------------------------------------------------------------------------------------------ CLI

_HELP = """\
Import each village's and community's household count (户数) and living-environment programme flag
(人居环境改善项目村) from the civil-affairs bureau's sheet (.xlsx or .csv) into the unit registry.

All or nothing: the file is written only when every row is good. If the file as a whole cannot be read, or any
row is rejected, the report lists the reasons, nothing is written and the exit status is 1; correct the sheet
and import it again. Empty rows are skipped; 合计/小计 rows and exact repeats of a row are listed but do not
block the import.
Places of the registry that the sheet does not mention keep their values. Only the households and
living_environment_programme keys of the places' lines change; comments and layout of the file are kept.

Exit status: 0 imported (or dry run of a good sheet), 1 rejected, 2 wrong arguments.
"""


def _flag(value: bool) -> str:
    return "是" if value else "否"


def _import_households(path: Path, units_path: Path, dry_run: bool) -> int:
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"minsheng-units: 无法读取 {path}：{exc.strerror}", file=sys.stderr)
        return 1
    try:
        text = units_path.read_text(encoding="utf-8")
        registry = _parse_registry(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"minsheng-units: 无法读取单位名单 {units_path}：{exc}", file=sys.stderr)
        return 1
    try:
        result = read_households(data, path.name, registry)
    except HouseholdsRejected as exc:
        print(f"整个文件未导入：{exc.message}", file=sys.stderr)
        return 1

    changed: list[str] = []
    unchanged: list[str] = []
    mentioned = set()
    for update in result.updates:
        unit = registry.unit(update.unit)
        assert unit is not None
        place = next(p for p in unit.places if p.name == update.place)
        mentioned.add((unit.code, place.name))
        row = result.rows[f"{update.unit}/{update.place}"]
        parts = []
        if place.households != update.households:
            parts.append(f"户数 {'未填' if place.households is None else place.households} → {update.households}")
        if place.living_environment_programme != update.living_environment_programme:
            parts.append(f"项目村 {_flag(place.living_environment_programme)} → {_flag(update.living_environment_programme)}")
        line = f"  第{row}行 {unit.name} {place.name}"
        (changed if parts else unchanged).append(f"{line}：{'；'.join(parts)}" if parts else line)
    absent = {
        u.name: [p.name for p in u.places if (u.code, p.name) not in mentioned]
        for u in registry.units
        if any((u.code, p.name) not in mentioned for p in u.places)
    }

    print(f"文件：{path}")
    print(f"更新：{len(changed)} 个村/社区")
    if changed:
        print("\n".join(changed))
    print(f"不变：{len(unchanged)} 个村/社区（数值与登记相同）")
    for kind, title in (("duplicate", "重复行（已忽略）"), ("skipped", "跳过的行")):
        listed = [p for p in result.problems if p.kind == kind]
        if listed:
            print(f"{title}：{len(listed)} 行")
            print("\n".join(f"  第{p.row}行：{p.reason}" for p in listed))
    if absent:
        print(f"表中没有的村/社区：{sum(len(v) for v in absent.values())} 个（保持原值）")
        print("\n".join(f"  {unit}：{'、'.join(places)}" for unit, places in absent.items()))
    rejected = result.rejected
    if rejected:
        print(f"拒绝：{len(rejected)} 行")
        print("\n".join(f"  第{p.row}行：{p.reason}" for p in rejected))
        print(f"有被拒绝的行：未写入 {units_path}。请改正后重新导入。")
        return 1
    if dry_run:
        print(f"试运行（--dry-run）：未写入 {units_path}")
        return 0
    if not changed:
        print(f"没有需要改动的数据：{units_path} 未改动")
        return 0
    try:
        new_text = apply_households(text, result.updates)
    except ValueError as exc:
        print(f"minsheng-units: 未写入 {units_path}：{exc}", file=sys.stderr)
        return 1
    _write_atomically(units_path, new_text)
    print(f"已写入 {units_path}")
    return 0


def _write_atomically(path: Path, text: str) -> None:
    # A crash halfway must not leave a truncated registry that every service then fails to load.
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    """``minsheng-units import-households FILE``: update households and programme flags of the unit registry."""
    parser = argparse.ArgumentParser(prog="minsheng-units", description="The unit registry (config/units.yaml) of Minsheng.")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser(
        "import-households",
        help="import households and programme flags from a sheet",
        description=_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument("file", type=Path, help="the sheet: .xlsx (first worksheet) or .csv (UTF-8 or GB18030)")
    command.add_argument("--units", type=Path, default=DEFAULT_UNITS_FILE, help="the registry to update (default: %(default)s)")
    command.add_argument("--dry-run", action="store_true", help="check and report only; never write")
    args = parser.parse_args(argv)
    return _import_households(args.file, args.units, args.dry_run)
