"""The classified summary table (分类汇总表, attachment 2 of the notice): per unit, category by category, the
suggestions grouped (a cluster, or a lone suggestion) with counts, and the projects the unit proposes from them;
its way from draft through the head's sign-off, submission, consolidation and study to approval; the workbooks.

One document per unit and campaign in ``summary_tables`` (``_id`` "<campaign>|<unit>"); the unit's head, designated
by the district office, in ``unit_heads`` (``_id`` unit code). Every write is conditional on the revision read, so
two clerks saving at once get a conflict instead of one silently undoing the other.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from pydantic import BaseModel, ConfigDict, Field
from pymongo.errors import DuplicateKeyError

from minsheng_core.campaign import Campaign
from minsheng_core.staff import Role, StaffMember
from minsheng_core.units import UnitRegistry
from minsheng_store.repository import CLASSIFIED
from minsheng_store.weekly import safe_cell

REPRESENTATIVE_CHARS = 60
MAX_ESTIMATE_YUAN = 100_000_000_000  # 1000亿: anything above is a typo


class State(StrEnum):
    DRAFT = "draft"
    SIGNED_OFF = "signed_off"
    SUBMITTED = "submitted"
    CONSOLIDATED = "consolidated"
    STUDIED = "studied"
    APPROVED = "approved"


class Step(StrEnum):
    SIGN_OFF = "sign_off"
    SUBMIT = "submit"
    CONSOLIDATE = "consolidate"
    STUDY = "study"
    APPROVE = "approve"


ORDER = list(State)
# step → (the state it starts from, the state it leads to, what must happen first when the table is not there yet)
TRANSITIONS: dict[Step, tuple[State, State, str]] = {
    Step.SIGN_OFF: (State.DRAFT, State.SIGNED_OFF, "sign-off before a draft: build the draft first"),
    Step.SUBMIT: (State.SIGNED_OFF, State.SUBMITTED, "submit before sign-off: the unit's head signs the table off first"),
    Step.CONSOLIDATE: (State.SUBMITTED, State.CONSOLIDATED, "consolidate before submission: the unit submits the table first"),
    Step.STUDY: (State.CONSOLIDATED, State.STUDIED, "study before consolidation: the district office consolidates it first"),
    Step.APPROVE: (State.STUDIED, State.APPROVED, "approve before study: the executive meeting studies it first"),
}
EDITABLE = (State.DRAFT, State.SIGNED_OFF, State.SUBMITTED)  # once consolidated, the district works from what it has
DISTRICT_STATES = (State.SUBMITTED, State.CONSOLIDATED, State.STUDIED, State.APPROVED)
STATE_NAMES = {
    State.DRAFT: "草稿（未审签）",
    State.SIGNED_OFF: "已审签",
    State.SUBMITTED: "已报送",
    State.CONSOLIDATED: "已汇总",
    State.STUDIED: "常务会已研究",
    State.APPROVED: "已批准",
}


# ---------------------------------------------------------------------------------------------------------- errors


class SummaryTableError(Exception):
    """A request the summary tables refuse; the message says why."""


class TableNotFound(SummaryTableError):
    """No such table (or unit, or head)."""


class OutOfOrder(SummaryTableError):
    """The step does not fit the table's state (or the table changed meanwhile)."""


class NotAllowed(SummaryTableError):
    """This member of staff may not take this step."""


class InvalidContent(SummaryTableError):
    """Projects or a head that do not fit the campaign, the table or the staff accounts."""


# ---------------------------------------------------------------------------------------------------------- model


class Group(BaseModel):
    """Suggestions about the same thing (one cluster), or a lone suggestion."""

    group_id: str = Field(description="the cluster id (a lone suggestion's own id)")
    count: int
    text: str = Field(description=f"the first {REPRESENTATIVE_CHARS} characters of the earliest suggestion")
    suggestion_ids: list[str]
    first_submitted_at: datetime | None = None


class ProjectBase(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=100, description="拟办项目")
    description: str = Field(default="", max_length=2000)
    place: str | None = Field(default=None, max_length=100, description="where it would be built or done")
    estimate_yuan: int | None = Field(default=None, ge=0, le=MAX_ESTIMATE_YUAN, description="估算金额, whole yuan")
    suggestion_groups: list[str] = Field(default_factory=list, max_length=500, description="group ids of the category")


class ProjectCreate(ProjectBase):
    category: str = Field(min_length=1, max_length=50)


class Project(ProjectBase):
    model_config = ConfigDict(extra="ignore")


class Section(BaseModel):
    category: str
    name: str
    groups: list[Group] = Field(default_factory=list)
    projects: list[Project] = Field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def estimate_yuan(self) -> int:
        return sum(p.estimate_yuan or 0 for p in self.projects)


class HistoryEntry(BaseModel):
    step: str = Field(description="draft, projects, reopened, sign_off, submit, consolidate, study, approve")
    by: str
    at: datetime
    version: int
    note: str | None = None


class SignOff(BaseModel):
    by: str
    name: str = Field(description="the head's display name, for the signature line")
    at: datetime
    version: int = Field(description="the content version signed off")


class Submission(BaseModel):
    by: str
    at: datetime
    late: bool = Field(description="after the end of the deadline day in the campaign's time zone")


class SummaryTable(BaseModel):
    """One unit's classified summary table for one campaign."""

    campaign: str
    unit: str
    unit_name: str
    state: State
    version: int = Field(description="content version: every change of groups or projects adds one")
    revision: int = Field(description="every write adds one (content or step)")
    sections: list[Section]
    history: list[HistoryEntry]
    signed_off: SignOff | None = None
    submitted: Submission | None = None
    updated_at: datetime
    updated_by: str

    @property
    def count(self) -> int:
        return sum(s.count for s in self.sections)

    @property
    def projects(self) -> int:
        return sum(len(s.projects) for s in self.sections)


class Head(BaseModel):
    unit: str
    username: str
    display_name: str
    designated_by: str
    designated_at: datetime


class OverviewLine(BaseModel):
    unit: str
    name: str
    state: str = Field(description="the table's state, or 'missing' when the unit has not drafted one")
    version: int | None = None
    head: str | None = None
    suggestions: int = 0
    projects: int = 0
    signed_off_by: str | None = None
    signed_off_at: datetime | None = None
    submitted_at: datetime | None = None
    late: bool = Field(default=False, description="submitted after the deadline")
    overdue: bool = Field(default=False, description="not submitted and the deadline has passed")


class Overview(BaseModel):
    campaign: str
    deadline: date
    deadline_passed: bool
    units: list[OverviewLine]
    missing: list[str] = Field(description="units that have not submitted (yet)")


@dataclass(frozen=True)
class Change:
    """What an edit did: the table after it, whether anything changed, and the sign-off it voided."""

    table: SummaryTable
    changed: bool
    voided: SignOff | None = None
    unlinked: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------------------- rules


def deadline_passed_at(campaign: Campaign) -> datetime:
    """First instant after the summary tables' deadline day (campaign time zone)."""
    return datetime.combine(campaign.deadlines.summary_tables + timedelta(days=1), time.min, campaign.zone)


def is_late(campaign: Campaign, at: datetime) -> bool:
    """Whether a submission at this instant misses the deadline (a naive ``at`` is taken as UTC)."""
    return _aware(at) >= deadline_passed_at(campaign)


def group_suggestions(campaign: Campaign, suggestions: Iterable[dict[str, Any]]) -> dict[str, list[Group]]:
    """Category → groups (by cluster; a suggestion without one is its own group), largest first, then oldest."""
    buckets: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for doc in suggestions:
        category = doc.get("category") or "other"
        key = (category, doc.get("cluster_id") or doc["_id"])
        buckets.setdefault(key, []).append(doc)
    groups: dict[str, list[Group]] = {}
    for (category, group_id), docs in buckets.items():
        docs.sort(key=lambda d: (_aware(d.get("submitted_at")) or datetime.max.replace(tzinfo=UTC), d["_id"]))
        earliest = docs[0]
        text = re.sub(r"\s+", " ", earliest.get("text") or earliest.get("title") or "").strip()
        groups.setdefault(category, []).append(
            Group(
                group_id=group_id,
                count=len(docs),
                text=text[:REPRESENTATIVE_CHARS],
                suggestion_ids=[d["_id"] for d in docs],
                first_submitted_at=_aware(earliest.get("submitted_at")),
            )
        )
    never = datetime.max.replace(tzinfo=UTC)
    for category_groups in groups.values():
        category_groups.sort(key=lambda g: (-g.count, g.first_submitted_at or never, g.group_id))
    return groups


def build_sections(campaign: Campaign, groups: dict[str, list[Group]], projects: dict[str, list[Project]]) -> list[Section]:
    """Every campaign category in the campaign's order (and any other category found, after them)."""
    codes = campaign.category_codes()
    extra = sorted((set(groups) | set(projects)) - set(codes))
    return [
        Section(category=code, name=campaign.category_name(code), groups=groups.get(code, []), projects=projects.get(code, []))
        for code in [*codes, *extra]
    ]


def arrange_projects(campaign: Campaign, sections: list[Section], entered: list[ProjectCreate]) -> dict[str, list[Project]]:
    """Projects by category, checked against the campaign's categories and the groups of the table."""
    codes = set(campaign.category_codes())
    known = {s.category: {g.group_id for g in s.groups} for s in sections}
    problems: list[str] = []
    arranged: dict[str, list[Project]] = {}
    for i, project in enumerate(entered, start=1):
        if project.category not in codes:
            problems.append(f"project {i}: category must be one of {sorted(codes)}")
            continue
        unknown = [g for g in project.suggestion_groups if g not in known.get(project.category, set())]
        if unknown:
            problems.append(f"project {i}: no such suggestion group in {project.category}: {', '.join(unknown[:5])}")
        if len(set(project.suggestion_groups)) != len(project.suggestion_groups):
            problems.append(f"project {i}: a suggestion group is named twice")
        arranged.setdefault(project.category, []).append(Project.model_validate(project.model_dump(exclude={"category"})))
    if problems:
        raise InvalidContent("; ".join(problems))
    return arranged


def _aware(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


# ---------------------------------------------------------------------------------------------------------- service


class SummaryTables:
    """The tables of one campaign in the database."""

    def __init__(self, db: Any, campaign: Campaign, units: UnitRegistry) -> None:
        self._db = db
        self._tables = db.summary_tables
        self._heads = db.unit_heads
        self.campaign = campaign
        self.units = units

    def _key(self, unit: str) -> str:
        return f"{self.campaign.code}|{unit}"

    def _unit_name(self, unit: str) -> str:
        found = self.units.unit(unit)
        if found is None:
            raise TableNotFound(f"no unit {unit}")
        return found.name

    async def get(self, unit: str) -> SummaryTable | None:
        doc = await self._tables.find_one({"_id": self._key(unit)})
        return None if doc is None else _table(doc)

    async def require(self, unit: str) -> SummaryTable:
        table = await self.get(unit)
        if table is None:
            raise TableNotFound(f"{self._unit_name(unit)} has no summary table yet: build the draft first")
        return table

    async def all(self) -> list[SummaryTable]:
        """Every unit's table of the campaign, in the registry's order of units."""
        order = {u.code: i for i, u in enumerate(self.units.units)}
        tables = [_table(doc) async for doc in self._tables.find({"campaign": self.campaign.code})]
        return sorted(tables, key=lambda t: order.get(t.unit, len(order)))

    # ---- the head

    async def designate_head(self, unit: str, username: str, by: StaffMember, now: datetime | None = None) -> Head:
        """Make an active unit staff account of the unit its head (the only one who signs the table off)."""
        self._unit_name(unit)
        account = await self._db.staff_accounts.find_one({"_id": username})
        if account is None or not account.get("active", True):
            raise InvalidContent(f"no active staff account {username}")
        if account.get("role") != Role.UNIT_STAFF.value or account.get("unit") != unit:
            raise InvalidContent(f"{username} is not a unit staff account of {unit}")
        head = Head(
            unit=unit,
            username=username,
            display_name=account.get("display_name") or username,
            designated_by=by.username,
            designated_at=now or datetime.now(UTC),
        )
        await self._heads.replace_one({"_id": unit}, head.model_dump(), upsert=True)
        return head

    async def head(self, unit: str) -> Head | None:
        doc = await self._heads.find_one({"_id": unit})
        return None if doc is None else Head.model_validate({k: v for k, v in doc.items() if k != "_id"})

    # ---- content

    async def _classified(self, unit: str) -> list[dict[str, Any]]:
        projection = {"_id": 1, "category": 1, "cluster_id": 1, "text": 1, "title": 1, "submitted_at": 1}
        cursor = self._db.suggestions.find({"unit": unit, "status": CLASSIFIED}, projection)
        return await cursor.to_list(None)

    async def refresh_draft(self, unit: str, by: StaffMember, now: datetime | None = None) -> Change:
        """Build the table's groups from the unit's classified suggestions, keeping the projects entered (a project's
        link to a group that is no longer in its category is dropped)."""
        now = now or datetime.now(UTC)
        unit_name = self._unit_name(unit)
        groups = group_suggestions(self.campaign, await self._classified(unit))
        before = await self.get(unit)
        if before is None:
            table = SummaryTable(
                campaign=self.campaign.code,
                unit=unit,
                unit_name=unit_name,
                state=State.DRAFT,
                version=1,
                revision=1,
                sections=build_sections(self.campaign, groups, {}),
                history=[HistoryEntry(step="draft", by=by.username, at=now, version=1, note="first draft")],
                updated_at=now,
                updated_by=by.username,
            )
            try:
                await self._tables.insert_one({"_id": self._key(unit), **_document(table)})
            except DuplicateKeyError:
                raise OutOfOrder("the table was drafted meanwhile; reload and try again") from None
            return Change(table, changed=True)
        unlinked: list[str] = []
        projects: dict[str, list[Project]] = {}
        for section in before.sections:
            present = {g.group_id for g in groups.get(section.category, [])}
            for project in section.projects:
                kept = [g for g in project.suggestion_groups if g in present]
                unlinked += [g for g in project.suggestion_groups if g not in present]
                projects.setdefault(section.category, []).append(project.model_copy(update={"suggestion_groups": kept}))
        sections = build_sections(self.campaign, groups, projects)
        note = f"links to groups no longer in their category dropped: {', '.join(unlinked[:10])}" if unlinked else None
        return await self._edit(before, sections, "draft", by, now, note, tuple(unlinked))

    async def set_projects(self, unit: str, entered: list[ProjectCreate], by: StaffMember, now: datetime | None = None) -> Change:
        """Replace the table's projects with these (each in its category, linked to that category's groups)."""
        now = now or datetime.now(UTC)
        before = await self.get(unit)
        if before is None:
            raise OutOfOrder(f"{self._unit_name(unit)} has no summary table yet: build the draft first")
        arranged = arrange_projects(self.campaign, before.sections, entered)
        groups = {s.category: s.groups for s in before.sections}
        return await self._edit(before, build_sections(self.campaign, groups, arranged), "projects", by, now)

    async def _edit(
        self,
        before: SummaryTable,
        sections: list[Section],
        step: str,
        by: StaffMember,
        now: datetime,
        note: str | None = None,
        unlinked: tuple[str, ...] = (),
    ) -> Change:
        if [s.model_dump() for s in sections] == [s.model_dump() for s in before.sections]:
            return Change(before, changed=False)  # nothing to sign again for a refresh that finds what was there
        if before.state not in EDITABLE:
            raise OutOfOrder(f"the table is {before.state.value}: the district office works from it, it cannot change any more")
        version = before.version + 1
        history = list(before.history)
        voided = before.signed_off
        if voided is not None:
            reopened = f"edited after sign-off by {voided.by} (version {voided.version}): a new sign-off is needed"
            if before.submitted is not None:
                reopened += "; the submission is withdrawn"
            history.append(HistoryEntry(step="reopened", by=by.username, at=now, version=before.version, note=reopened))
        history.append(HistoryEntry(step=step, by=by.username, at=now, version=version, note=note))
        after = before.model_copy(
            update={
                "state": State.DRAFT,
                "version": version,
                "sections": sections,
                "history": history,
                "signed_off": None,
                "submitted": None,
                "updated_at": now,
                "updated_by": by.username,
            }
        )
        return Change(await self._replace(before, after), changed=True, voided=voided, unlinked=unlinked)

    # ---- steps

    async def advance(
        self, unit: str, step: Step, by: StaffMember, note: str | None = None, now: datetime | None = None
    ) -> SummaryTable:
        """Take a step of the workflow; who may take it is checked here for sign-off (the unit's head only)."""
        now = now or datetime.now(UTC)
        start, target, too_early_without_table = TRANSITIONS[step]
        before = await self.get(unit)
        if before is None:
            self._unit_name(unit)
            raise OutOfOrder(too_early_without_table)
        if before.state != start:
            if ORDER.index(before.state) < ORDER.index(start):
                raise OutOfOrder(f"{too_early_without_table} (the table is {before.state.value})")
            raise OutOfOrder(f"the table is {before.state.value} already")
        update: dict[str, Any] = {"state": target, "updated_at": now, "updated_by": by.username}
        if step is Step.SIGN_OFF:
            head = await self.head(unit)
            if head is None:
                raise NotAllowed("only the unit's head signs off, and the district office has not designated one yet")
            if not (by.has(Role.UNIT_STAFF) and by.unit == unit and by.username == head.username):
                raise NotAllowed(f"only the unit's head ({head.display_name}) signs the table off")
            update["signed_off"] = SignOff(by=by.username, name=head.display_name, at=now, version=before.version)
        elif step is Step.SUBMIT:
            if before.signed_off is None or before.signed_off.version != before.version:
                raise OutOfOrder("submit before sign-off: the content changed after the head signed it off")
            update["submitted"] = Submission(by=by.username, at=now, late=is_late(self.campaign, now))
        entry = HistoryEntry(step=step.value, by=by.username, at=now, version=before.version, note=note)
        update["history"] = [*before.history, entry]
        return await self._replace(before, before.model_copy(update=update))

    async def _replace(self, before: SummaryTable, after: SummaryTable) -> SummaryTable:
        after = after.model_copy(update={"revision": before.revision + 1})
        result = await self._tables.replace_one(
            {"_id": self._key(before.unit), "revision": before.revision}, {"_id": self._key(before.unit), **_document(after)}
        )
        if result.matched_count == 0:
            raise OutOfOrder("the table changed meanwhile; reload and try again")
        return after

    # ---- the district's view

    async def overview(self, now: datetime | None = None) -> Overview:
        """Every unit's state, late and overdue flags, and who has not submitted."""
        now = now or datetime.now(UTC)
        passed = now >= deadline_passed_at(self.campaign)
        tables = {t.unit: t for t in await self.all()}
        heads = {doc["_id"]: doc.get("username") async for doc in self._heads.find({})}
        lines: list[OverviewLine] = []
        for unit in self.units.units:
            table = tables.get(unit.code)
            line = OverviewLine(unit=unit.code, name=unit.name, state="missing", head=heads.get(unit.code))
            if table is not None:
                line = line.model_copy(
                    update={
                        "state": table.state.value,
                        "version": table.version,
                        "suggestions": table.count,
                        "projects": table.projects,
                        "signed_off_by": table.signed_off.by if table.signed_off else None,
                        "signed_off_at": table.signed_off.at if table.signed_off else None,
                        "submitted_at": table.submitted.at if table.submitted else None,
                        "late": bool(table.submitted and table.submitted.late),
                    }
                )
            submitted = table is not None and table.state in DISTRICT_STATES
            lines.append(line.model_copy(update={"overdue": passed and not submitted}))
        missing = [line.unit for line in lines if line.state not in DISTRICT_STATES]
        return Overview(
            campaign=self.campaign.code,
            deadline=self.campaign.deadlines.summary_tables,
            deadline_passed=passed,
            units=lines,
            missing=missing,
        )


def _document(table: SummaryTable) -> dict[str, Any]:
    return table.model_dump(mode="python")


def _table(doc: dict[str, Any]) -> SummaryTable:
    return SummaryTable.model_validate({k: v for k, v in doc.items() if k != "_id"})


# ---------------------------------------------------------------------------------------------------------- workbooks

HEADS = ["序号", "类别", "建议事项（归并后）", "建议数量", "拟办项目", "估算金额（万元）", "备注"]
WIDTHS = [6, 12, 46, 10, 40, 14, 26]
_THIN = Side(style="thin", color="000000")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEAD_FILL = PatternFill("solid", fgColor="DDEBF7")
_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
_LEFT = Alignment(horizontal="left", vertical="center", wrap_text=True)
_WAN = "#,##0.00"
_BLANK_DATE = "　　年　　月　　日"


def table_title(campaign: Campaign, unit_name: str = "") -> str:
    """滦河镇2020年民心工程意见建议分类汇总表"""
    return f"{unit_name}{campaign.name.removesuffix('征集')}分类汇总表"


def _put(
    ws: Worksheet, row: int, column: int, value: Any, *, head: bool = False, left: bool = False, fmt: str | None = None
) -> None:
    cell = ws.cell(row=row, column=column)
    cell.value = safe_cell(value)
    if isinstance(cell.value, str):
        cell.data_type = "s"  # never a formula, whatever openpyxl would infer
    cell.border = _BORDER
    cell.alignment = _LEFT if left else _CENTER
    if head:
        cell.font = Font(bold=True)
        cell.fill = _HEAD_FILL
    if fmt:
        cell.number_format = fmt


def _merge(ws: Worksheet, first: int, last: int, column: int, last_column: int | None = None) -> None:
    if last > first or (last_column or column) > column:
        ws.merge_cells(start_row=first, start_column=column, end_row=last, end_column=last_column or column)


def _line(ws: Worksheet, row: int, text: str, columns: int, *, bold: bool = False, size: int = 11, height: float = 22) -> None:
    """A line of text over the whole width, without borders (title, unit and date, signature)."""
    cell = ws.cell(row=row, column=1)
    cell.value = safe_cell(text)
    cell.data_type = "s"
    cell.font = Font(bold=bold, size=size)
    cell.alignment = Alignment(horizontal="center" if bold else "left", vertical="center")
    ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=columns)
    ws.row_dimensions[row].height = height


def _wan(yuan: int | None) -> float | None:
    return None if yuan is None else round(yuan / 10_000, 2)


def _day(at: datetime | None, campaign: Campaign) -> str:
    return _BLANK_DATE if at is None else f"{_aware(at).astimezone(campaign.zone):%Y年%m月%d日}"


def _blocks(section: Section) -> list[tuple[Project | None, list[Group]]]:
    """Each project with the groups it comes from (a group under the first project naming it), then the groups no
    project comes from, one a row."""
    by_id = {g.group_id: g for g in section.groups}
    used: set[str] = set()
    blocks: list[tuple[Project | None, list[Group]]] = []
    for project in section.projects:
        mine = [by_id[g] for g in project.suggestion_groups if g in by_id and g not in used]
        used.update(g.group_id for g in mine)
        blocks.append((project, mine))
    blocks += [(None, [g]) for g in section.groups if g.group_id not in used]
    return blocks


def _project_texts(project: Project | None, used_elsewhere: list[str]) -> tuple[str | None, str | None]:
    if project is None:
        return None, None
    title = project.title + (f"\n{project.description}" if project.description else "")
    notes = [f"实施地点：{project.place}"] if project.place else []
    if used_elsewhere:
        notes.append(f"另涉及建议{len(used_elsewhere)}项（见上）")
    return title, "；".join(notes) or None


def _write_table_rows(ws: Worksheet, row: int, number: int, table: SummaryTable, first: int) -> tuple[int, int]:
    """The table's rows from ``row``, its columns from ``first`` (类别 … 备注) and 序号 in column 1; returns the next
    row and the next number. Category cells are merged over the category's rows, a project's cells over its groups."""
    for section in table.sections:
        blocks = _blocks(section)
        if not blocks:
            continue
        category_top = row
        seen: set[str] = set()
        for project, groups in blocks:
            block_top = row
            for group in groups or [None]:
                _put(ws, row, 1, number)
                number += 1
                _put(ws, row, first, section.name)
                _put(ws, row, first + 1, group.text if group else "（单位自拟项目）", left=True)
                _put(ws, row, first + 2, group.count if group else None)
                row += 1
            named = project.suggestion_groups if project else []
            elsewhere = [g for g in named if g in seen and g not in {x.group_id for x in groups}]
            seen.update(named)
            title, note = _project_texts(project, elsewhere)
            for r in range(block_top, row):
                _put(ws, r, first + 3, title if r == block_top else None, left=True)
                _put(ws, r, first + 4, _wan(project.estimate_yuan) if project and r == block_top else None, fmt=_WAN)
                _put(ws, r, first + 5, note if r == block_top else None, left=True)
            for column in (first + 3, first + 4, first + 5):
                _merge(ws, block_top, row - 1, column)
        _merge(ws, category_top, row - 1, first)
    return row, number


def _total_row(ws: Worksheet, row: int, first: int, count: int, projects: int, yuan: int) -> None:
    for column in range(1, first + 6):
        _put(ws, row, column, None, head=True)
    _put(ws, row, 1, "合计", head=True)
    _merge(ws, row, row, 1, first + 1)
    _put(ws, row, first + 2, count, head=True)
    _put(ws, row, first + 3, f"{projects}个项目", head=True)
    _put(ws, row, first + 4, _wan(yuan), head=True, fmt=_WAN)


def _page(ws: Worksheet, head_row: int, widths: list[int]) -> None:
    for i, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.freeze_panes = ws.cell(row=head_row + 1, column=1).coordinate
    ws.print_title_rows = f"{head_row}:{head_row}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True


def _save(workbook: Workbook, title: str) -> bytes:
    workbook.properties.title = safe_cell(title)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def table_xlsx(table: SummaryTable, campaign: Campaign, today: date | None = None) -> bytes:
    """The table as a clerk hands it in: title, unit and date, the classified rows, totals, the head's signature."""
    workbook = Workbook()
    ws = workbook.active
    ws.title = "分类汇总表"
    columns = len(HEADS)
    title = table_title(campaign, table.unit_name)
    _line(ws, 1, title, columns, bold=True, size=16, height=32)
    day = today or datetime.now(campaign.zone).date()
    handed_in = _day(table.submitted.at, campaign) if table.submitted else f"{day:%Y年%m月%d日}"
    unit_line = f"填报单位（盖章）：{table.unit_name}　　　　填报日期：{handed_in}　　　　状态：{STATE_NAMES[table.state]}"
    _line(ws, 2, unit_line, columns)
    for column, head in enumerate(HEADS, start=1):
        _put(ws, 3, column, head, head=True)
    row, _ = _write_table_rows(ws, 4, 1, table, first=2)
    _total_row(ws, row, 2, table.count, table.projects, sum(s.estimate_yuan for s in table.sections))
    signed = table.signed_off
    name = signed.name if signed else "　" * 8
    _line(ws, row + 2, f"单位负责人（签字）：{name}　　　　日期：{_day(signed.at if signed else None, campaign)}", columns)
    _page(ws, 3, WIDTHS)
    return _save(workbook, title)


def consolidated_xlsx(tables: list[SummaryTable], campaign: Campaign, units: UnitRegistry, now: datetime | None = None) -> bytes:
    """The district's table: every submitted (or later) unit's rows on one sheet, totals by category on another, and
    who has handed in what on a third."""
    now = now or datetime.now(UTC)
    handed_in = [t for t in tables if t.state in DISTRICT_STATES]
    workbook = Workbook()
    ws = workbook.active
    ws.title = "全区汇总"
    heads = ["序号", "单位", *HEADS[1:]]
    title = f"全区{table_title(campaign)}"
    _line(ws, 1, title, len(heads), bold=True, size=16, height=32)
    office_line = f"汇总单位：{units.district.name}　　　　汇总日期：{_day(now, campaign)}　　　　已报送单位：{len(handed_in)}个"
    _line(ws, 2, office_line, len(heads))
    for column, head in enumerate(heads, start=1):
        _put(ws, 3, column, head, head=True)
    row, number = 4, 1
    for table in handed_in:
        top = row
        row, number = _write_table_rows(ws, row, number, table, first=3)
        if row == top:  # a table without rows still shows that the unit handed one in
            for column in range(1, len(heads) + 1):
                _put(ws, row, column, None)
            _put(ws, row, 1, number)
            _put(ws, row, 4, "（无建议事项）", left=True)
            number += 1
            row += 1
        for r in range(top, row):
            _put(ws, r, 2, table.unit_name if r == top else None)
        _merge(ws, top, row - 1, 2)
    total_yuan = sum(s.estimate_yuan for t in handed_in for s in t.sections)
    _total_row(ws, row, 3, sum(t.count for t in handed_in), sum(t.projects for t in handed_in), total_yuan)
    _page(ws, 3, [6, 12, *WIDTHS[1:]])

    totals = workbook.create_sheet("分类合计")
    heads = ["序号", "类别", "建议数量", "建议事项（归并后）数", "拟办项目数", "估算金额（万元）"]
    _line(totals, 1, f"全区{campaign.name.removesuffix('征集')}分类合计", len(heads), bold=True, size=16, height=32)
    for column, head in enumerate(heads, start=1):
        _put(totals, 3, column, head, head=True)
    by_category: dict[str, list[Section]] = {}
    for table in handed_in:
        for section in table.sections:
            by_category.setdefault(section.category, []).append(section)
    row = 4
    codes = campaign.category_codes()
    for number, code in enumerate([*codes, *sorted(set(by_category) - set(codes))], start=1):
        sections = by_category.get(code, [])
        values = [
            number,
            campaign.category_name(code),
            sum(s.count for s in sections),
            sum(len(s.groups) for s in sections),
            sum(len(s.projects) for s in sections),
            _wan(sum(s.estimate_yuan for s in sections)),
        ]
        for column, value in enumerate(values, start=1):
            _put(totals, row, column, value, fmt=_WAN if column == 6 else None)
        row += 1
    sums = [
        sum(t.count for t in handed_in),
        sum(len(s.groups) for t in handed_in for s in t.sections),
        sum(t.projects for t in handed_in),
        _wan(total_yuan),
    ]
    _put(totals, row, 1, "合计", head=True)
    _put(totals, row, 2, None, head=True)
    _merge(totals, row, row, 1, 2)
    for column, value in enumerate(sums, start=3):
        _put(totals, row, column, value, head=True, fmt=_WAN if column == 6 else None)
    _page(totals, 3, [6, 14, 12, 20, 12, 16])

    status = workbook.create_sheet("报送情况")
    heads = ["序号", "单位", "状态", "单位负责人", "审签日期", "报送日期", "是否逾期"]
    deadline = f"{campaign.deadlines.summary_tables:%Y年%m月%d日}"
    _line(status, 1, f"各单位分类汇总表报送情况（截止日期：{deadline}）", len(heads), bold=True, size=14)
    for column, head in enumerate(heads, start=1):
        _put(status, 3, column, head, head=True)
    by_unit = {t.unit: t for t in tables}
    passed = now >= deadline_passed_at(campaign)
    for number, unit in enumerate(units.units, start=1):
        table = by_unit.get(unit.code)
        if table is None:
            values: list[Any] = [number, unit.name, "未编制", None, None, None, "逾期未报" if passed else None]
        else:
            submitted = table.submitted
            late = "逾期报送" if submitted and submitted.late else ("逾期未报" if passed and not submitted else None)
            values = [
                number,
                unit.name,
                STATE_NAMES[table.state],
                table.signed_off.name if table.signed_off else None,
                _day(table.signed_off.at, campaign) if table.signed_off else None,
                _day(submitted.at, campaign) if submitted else None,
                late,
            ]
        for column, value in enumerate(values, start=1):
            _put(status, 3 + number, column, value)
    _page(status, 3, [6, 14, 16, 14, 18, 18, 12])
    return _save(workbook, title)
