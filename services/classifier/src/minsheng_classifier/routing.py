"""Which unit is responsible for a suggestion: location given, then place names in the text, then the WeChat
account's unit, then the submitter group's office, otherwise the district office."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from minsheng_core.events import Location, SubmitterGroup
from minsheng_core.units import PlaceMatch, UnitRegistry

UnitSource = Literal["location", "text", "account", "group", "default"]


@dataclass(frozen=True)
class UnitDecision:
    unit: str
    source: UnitSource

    @property
    def place_unit(self) -> str | None:
        """The unit when it says where the suggestion is (not merely who answers for it)."""
        return self.unit if self.source in ("location", "text") else None


def _single(codes: set[str]) -> str | None:
    return next(iter(codes)) if len(codes) == 1 else None


def _decide(matches: list[PlaceMatch], towns: set[str]) -> str | None:
    """The first match that names one unit, using the towns mentioned to settle a name shared by two units."""
    for match in matches:
        codes = set(match.unit_codes)
        if len(codes) > 1 and towns:
            codes &= towns
        if (unit := _single(codes)) is not None:
            return unit
    return None


def _unit_names(matches: list[PlaceMatch]) -> set[str]:
    return {code for m in matches if m.is_unit_name for code in m.unit_codes}


def resolve_unit(
    registry: UnitRegistry,
    location: Location,
    text: str,
    account_unit: str | None = None,
    group: SubmitterGroup = SubmitterGroup.RESIDENT,
) -> UnitDecision:
    """Apply the precedence rules; never fails, the district office is the last resort."""
    town_matches = registry.find_places(location.town or "")
    village_matches = registry.find_places(location.village or "")
    text_matches = registry.find_places(f"{location.detail or ''} {text}")
    towns_given = _unit_names(town_matches)
    towns_anywhere = towns_given | _unit_names(text_matches)

    unit = _decide(village_matches, towns_anywhere) or _single(towns_given) or _decide(town_matches, towns_anywhere)
    if unit:
        return UnitDecision(unit, "location")
    if unit := _decide(text_matches, towns_anywhere):
        return UnitDecision(unit, "text")
    if account_unit and registry.unit(account_unit):
        return UnitDecision(account_unit, "account")
    if unit := registry.unit_for_group(group):
        return UnitDecision(unit, "group")
    return UnitDecision(registry.district.code, "default")
