"""Campaign configuration: name, collection window, time zone and taxonomy, loaded from a YAML file."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from minsheng_core.paths import REPO_ROOT

DEFAULT_CAMPAIGN_FILE = REPO_ROOT / "config" / "campaigns" / "2020.yaml"


class Category(BaseModel):
    """One category of the campaign's taxonomy."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=1)


class Campaign(BaseModel):
    """A yearly collection campaign; a new campaign is a new file, not new code."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    name: str
    timezone: str = "Asia/Shanghai"
    opens_on: date
    closes_on: date = Field(description="last day of collection, inclusive")
    categories: tuple[Category, ...] = Field(min_length=2)

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
        return self

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


def load_campaign(path: Path = DEFAULT_CAMPAIGN_FILE, opens_on: date | None = None, closes_on: date | None = None) -> Campaign:
    """Load and validate a campaign file; optional dates override its window (for a live run)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if opens_on is not None:
        data["opens_on"] = opens_on
    if closes_on is not None:
        data["closes_on"] = closes_on
    return Campaign.model_validate(data)
