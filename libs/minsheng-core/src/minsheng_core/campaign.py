"""Campaign configuration: name, collection window, time zone, taxonomy, project approval steps and the explanations
drafted for decisions, loaded from a YAML file."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from minsheng_core.events import Outcome, Reason
from minsheng_core.paths import REPO_ROOT

DEFAULT_CAMPAIGN_FILE = REPO_ROOT / "config" / "campaigns" / "2020.yaml"


class Category(BaseModel):
    """One category of the campaign's taxonomy."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=1)


class CoverageTargets(BaseModel):
    """Share of households to visit door to door, per village or community."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    living_environment_programme: float = Field(default=0.95, gt=0, le=1, description="villages of the programme")
    other: float = Field(default=0.90, gt=0, le=1)

    def for_place(self, in_programme: bool) -> float:
        return self.living_environment_programme if in_programme else self.other


class Deadlines(BaseModel):
    """What the units must have done by when (dates in the campaign's time zone, inclusive)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    contacts_registered: date = Field(description="each unit's responsible leader and contact person")
    summary_tables: date = Field(description="the classified summary table (分类汇总表), signed off and submitted")


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[str, ...] = get_args(Weekday)


# What a submitter reads: the outcome and the reason of a decision in plain Chinese.
OUTCOME_NAMES: dict[Outcome, str] = {
    Outcome.ADOPTED: "采纳",
    Outcome.MERGED: "合并办理",
    Outcome.REFERRED: "转交相关部门办理",
    Outcome.NOT_ADOPTED: "未采纳",
}
REASON_NAMES: dict[Reason, str] = {
    Reason.DUPLICATE: "重复建议",
    Reason.OUTSIDE_REMIT: "不属于政府职责范围",
    Reason.ALREADY_PLANNED: "已列入计划或已实施",
    Reason.BEYOND_MEANS: "超出本年度财力",
    Reason.NOT_FEASIBLE: "暂不具备实施条件",
    Reason.AGAINST_POLICY: "不符合法律法规或政策",
    Reason.OTHER: "其他",
}

# Placeholders an explanation template (or a staff member's explanation) may use; anything else stays as written.
TEMPLATE_FIELDS: dict[str, str] = {
    "tracking_code": "the suggestion's tracking code",
    "unit_name": "the responsible unit",
    "category_name": "the suggestion's category",
    "campaign_name": "the campaign",
    "project_title": "the project it was adopted into or merged with",
    "referred_to": "the department it was referred to",
}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
EXPLANATION_MAX = 1000


def render_explanation(text: str, values: dict[str, str]) -> str:
    """Fill the known placeholders of an explanation; never str.format, so staff text cannot reach attributes."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        return values.get(name) or "" if name in TEMPLATE_FIELDS else match.group(0)

    return _PLACEHOLDER.sub(fill, text)


def _checked_template(text: str, where: str) -> str:
    if not text.strip():
        raise ValueError(f"{where}: the template is empty")
    if len(text) > EXPLANATION_MAX:
        raise ValueError(f"{where}: the template is longer than {EXPLANATION_MAX} characters")
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(TEMPLATE_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown placeholder(s) {unknown}; known: {sorted(TEMPLATE_FIELDS)}")
    return text.strip()


class DecisionTemplates(BaseModel):
    """The explanation drafted for a decision: one per outcome, and one per reason for suggestions not adopted."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    adopted: str
    merged: str
    referred: str
    not_adopted: dict[Reason, str]

    @field_validator("adopted", "merged", "referred")
    @classmethod
    def _outcome_template(cls, value: str, info: ValidationInfo) -> str:
        return _checked_template(value, str(info.field_name))

    @field_validator("not_adopted")
    @classmethod
    def _reason_templates(cls, value: dict[Reason, str]) -> dict[Reason, str]:
        missing = [r.value for r in Reason if r not in value]
        if missing:
            raise ValueError(f"no template for reason(s) {missing}")
        return {reason: _checked_template(text, reason.value) for reason, text in value.items()}

    def template_for(self, outcome: Outcome, reason: Reason | None) -> str | None:
        """The template of an outcome (and reason), or None for a suggestion not adopted without a reason yet."""
        if outcome is Outcome.NOT_ADOPTED:
            return self.not_adopted.get(reason) if reason is not None else None
        return {Outcome.ADOPTED: self.adopted, Outcome.MERGED: self.merged, Outcome.REFERRED: self.referred}[outcome]


StaffRole = Literal["admin", "unit_staff"]


class ProjectStep(BaseModel):
    """One approval step of a project; ``entered_by``: the roles that may move a project into it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=1)
    entered_by: tuple[StaffRole, ...] = ("admin",)


class ProjectSteps(BaseModel):
    """A project's approval path: forward one step at a time from the first (where it is created), or to rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    steps: tuple[ProjectStep, ...] = Field(
        default=(
            ProjectStep(code="proposed", name="拟定"),
            ProjectStep(code="unit_reviewed", name="单位审核", entered_by=("unit_staff", "admin")),
            ProjectStep(code="office_reviewed", name="民心办审核"),
            ProjectStep(code="approved", name="区政府审定"),
        ),
        min_length=2,
    )
    rejected: ProjectStep = ProjectStep(code="rejected", name="不予立项")

    @model_validator(mode="after")
    def _unique(self) -> ProjectSteps:
        codes = [s.code for s in self.steps] + [self.rejected.code]
        if len(set(codes)) != len(codes):
            raise ValueError("project step codes must be unique (rejected included)")
        return self

    @property
    def first(self) -> ProjectStep:
        return self.steps[0]

    def codes(self) -> list[str]:
        return [s.code for s in self.steps] + [self.rejected.code]

    def step(self, code: str) -> ProjectStep | None:
        return next((s for s in (*self.steps, self.rejected) if s.code == code), None)

    def next_after(self, code: str) -> ProjectStep | None:
        """The step after this one, or None at the end (approved) or when rejected."""
        codes = [s.code for s in self.steps]
        return self.steps[codes.index(code) + 1] if code in codes[:-1] else None

    def is_final(self, code: str) -> bool:
        return code in (self.steps[-1].code, self.rejected.code)


class Campaign(BaseModel):
    """A yearly collection campaign; a new campaign is a new file, not new code."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    name: str
    timezone: str = "Asia/Shanghai"
    opens_on: date
    closes_on: date = Field(description="last day of collection, inclusive")
    categories: tuple[Category, ...] = Field(min_length=2)
    coverage_targets: CoverageTargets = Field(default_factory=CoverageTargets)
    deadlines: Deadlines
    weekly_report_day: Weekday = "friday"
    project_steps: ProjectSteps = Field(default_factory=ProjectSteps)
    decision_templates: DecisionTemplates | None = Field(
        default=None, description="without templates, staff write every explanation themselves"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Campaign:
        if self.closes_on < self.opens_on:
            raise ValueError("closes_on is before opens_on")
        codes = [c.code for c in self.categories]
        if len(set(codes)) != len(codes):
            raise ValueError("category codes must be unique")
        for name, due in self.deadlines:
            if due < self.opens_on:
                raise ValueError(f"deadline {name} ({due}) is before the campaign opens ({self.opens_on})")
        return self

    @property
    def weekly_report_weekday(self) -> int:
        """The report day as date.weekday() counts (Monday 0)."""
        return WEEKDAYS.index(self.weekly_report_day)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def opens_at(self) -> datetime:
        return datetime.combine(self.opens_on, time.min, self.zone)

    @property
    def closes_at(self) -> datetime:
        """First instant after the window (midnight after the last day)."""
        return datetime.combine(self.closes_on + timedelta(days=1), time.min, self.zone)

    def is_open(self, at: datetime) -> bool:
        """Whether suggestions are collected at this instant."""
        return self.opens_at <= at < self.closes_at

    def window_text(self) -> str:
        """The collection window as residents read it."""
        return f"{self.opens_on:%Y年%m月%d日}至{self.closes_on:%Y年%m月%d日}"

    def closed_notice(self) -> str:
        """What a resident is told when they submit outside the window, on any channel."""
        return f"{self.name}的征集时间为{self.window_text()}，现在不在征集期内，暂不接收建议。"

    def category_codes(self) -> list[str]:
        return [c.code for c in self.categories]

    def category_name(self, code: str) -> str:
        return next((c.name for c in self.categories if c.code == code), code)


class CampaignFileError(ValueError):
    """A campaign file that cannot be used; the message names the file and every field at fault."""


def load_campaign(path: Path = DEFAULT_CAMPAIGN_FILE, opens_on: date | None = None, closes_on: date | None = None) -> Campaign:
    """Load and validate a campaign file; optional dates override its window (for a live run), and the deadlines
    move with the opening date so that they keep their place in the window."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CampaignFileError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise CampaignFileError(f"{path}: not a campaign (a YAML mapping is expected)")
    if opens_on is not None:
        shift = opens_on - date.fromisoformat(str(data.get("opens_on")))
        deadlines = data.get("deadlines") or {}
        data["deadlines"] = {name: date.fromisoformat(str(due)) + shift for name, due in deadlines.items()}
        data["opens_on"] = opens_on
    if closes_on is not None:
        data["closes_on"] = closes_on
    try:
        return Campaign.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'campaign'}: {e['msg']}" for e in exc.errors())
        raise CampaignFileError(f"{path}: {problems}") from exc
