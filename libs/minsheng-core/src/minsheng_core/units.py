"""The district's responsible units (责任单位) and their villages and communities, loaded from configuration."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from minsheng_core.events import SubmitterGroup
from minsheng_core.paths import REPO_ROOT

DEFAULT_UNITS_FILE = REPO_ROOT / "config" / "units.yaml"
_ADMINISTRATIVE_ENDINGS = set("镇乡村道区")
_OTHER_AREA = {"区", "市", "县", "省", "旗"}


class UnitKind(StrEnum):
    TOWN = "town"
    TOWNSHIP = "township"
    SUBDISTRICT = "subdistrict"
    OFFICE = "office"


class PlaceKind(StrEnum):
    VILLAGE = "village"
    COMMUNITY = "community"


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Place(_Config):
    """A village (村) or community (社区)."""

    name: str = Field(min_length=1)
    kind: PlaceKind
    aliases: tuple[str, ...] = ()
    households: int | None = Field(default=None, ge=0)
    living_environment_programme: bool = False


class Unit(_Config):
    """A town, township, sub-district or office that collects suggestions and answers for them."""

    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=1)
    kind: UnitKind
    aliases: tuple[str, ...] = ()
    places: tuple[Place, ...] = ()
    submitter_groups: tuple[SubmitterGroup, ...] = ()

    @model_validator(mode="after")
    def _unique_places(self) -> Unit:
        names = [p.name for p in self.places]
        if len(set(names)) != len(names):
            raise ValueError(f"unit {self.code}: place names repeat")
        return self


class DistrictOffice(_Config):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str


@dataclass(frozen=True)
class PlaceMatch:
    """A name found in text or a location field, and the units it may belong to."""

    start: int
    name: str
    canonical: str
    unit_codes: tuple[str, ...]
    is_unit_name: bool


class UnitRegistry(_Config):
    """All units of the district; a new district or campaign is a new file."""

    district: DistrictOffice
    units: tuple[Unit, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_codes(self) -> UnitRegistry:
        codes = [u.code for u in self.units] + [self.district.code]
        duplicates = sorted({c for c in codes if codes.count(c) > 1})
        if duplicates:
            raise ValueError(f"unit codes repeat: {duplicates}")
        return self

    def codes(self) -> list[str]:
        return [self.district.code, *(u.code for u in self.units)]

    def unit(self, code: str) -> Unit | None:
        return next((u for u in self.units if u.code == code), None)

    def unit_for_group(self, group: SubmitterGroup) -> str | None:
        """The office that collects from this group of submitters (deputies, members, delegates …)."""
        return next((u.code for u in self.units if group in u.submitter_groups), None)

    @cached_property
    def _names(self) -> dict[str, tuple[set[str], bool, str]]:
        """name or alias → (unit codes, whether it names a unit rather than a village or community, canonical name)."""
        names: dict[str, tuple[set[str], bool, str]] = {}
        for unit in self.units:
            if unit.kind is UnitKind.OFFICE:
                continue  # an office is not a place: "区人大" in a text says nothing about where
            for name in (unit.name, *unit.aliases):
                names.setdefault(name, (set(), True, unit.name))[0].add(unit.code)
            for place in unit.places:
                for name in (place.name, *place.aliases):
                    names.setdefault(name, (set(), False, place.name))[0].add(unit.code)
        return names

    def unit_names(self) -> tuple[str, ...]:
        """Every name and alias of the towns, townships and sub-districts."""
        return tuple(n for n, (_, is_unit, _) in self._names.items() if is_unit)

    def place_names(self) -> tuple[str, ...]:
        """Every name and alias of the villages and communities."""
        return tuple(n for n, (_, is_unit, _) in self._names.items() if not is_unit)

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        # Longest names first, so that 东营子村 wins over 东营子 at the same position.
        ordered = sorted(self._names, key=len, reverse=True)
        return re.compile("|".join(re.escape(n) for n in ordered if len(n) >= 2))

    def canonical_place(self, given: str | None) -> str | None:
        """The registry's name for a village or community typed in any of its forms; unknown names as typed."""
        if not given or not given.strip():
            return None
        matches = [m for m in self.find_places(given) if not m.is_unit_name]
        return matches[0].canonical if matches else given.strip()

    def find_places(self, text: str) -> list[PlaceMatch]:
        """Every unit, village or community name (or alias) in the text, in order of appearance."""
        matches = []
        for m in self._pattern.finditer(text or ""):
            if m.group()[-1] not in _ADMINISTRATIVE_ENDINGS and text[m.end() : m.end() + 1] in _OTHER_AREA:
                continue  # 元宝山区, 滦河县: a short name that continues into another area's name
            codes, is_unit, canonical = self._names[m.group()]
            matches.append(PlaceMatch(m.start(), m.group(), canonical, tuple(sorted(codes)), is_unit))
        return matches


def load_units(path: Path = DEFAULT_UNITS_FILE) -> UnitRegistry:
    """Load and validate the unit registry."""
    return UnitRegistry.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
