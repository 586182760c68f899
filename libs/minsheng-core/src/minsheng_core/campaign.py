"""Campaign configuration: name, collection window, time zone and taxonomy, loaded from a YAML file."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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
