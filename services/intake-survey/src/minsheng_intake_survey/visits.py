"""A checked survey sheet into the bus: one suggestion per suggestion row (door_to_door channel), one visit per
household visit; each keyed by what it says, so that importing the same sheet twice changes nothing."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time

from minsheng_core.campaign import Campaign
from minsheng_core.events import Channel, HouseholdVisited, Location, PersonalData, Visit
from minsheng_core.intake import IntakeRuntime
from minsheng_core.staff import StaffMember
from minsheng_core.units import UnitRegistry
from minsheng_intake_survey.survey_sheet import SheetResult, VisitRow


@dataclass
class ImportReport:
    """What became of each row of a sheet."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    visits: int = 0
    rows: list[dict[str, object]] = field(default_factory=list)


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, default=str).encode()).hexdigest()[:32]


def visit_id(row: VisitRow) -> str:
    """One visit: a household on a day (several suggestion rows of one visit share it)."""
    return _digest(row.unit, row.village, " ".join(row.household.split()), row.visited_on)


class SurveyIntake:
    """Door-to-door records of the units, through the outbox."""

    def __init__(self, campaign: Campaign, units: UnitRegistry, runtime: IntakeRuntime) -> None:
        self.campaign = campaign
        self.units = units
        self.runtime = runtime

    async def import_sheet(self, member: StaffMember, sheet: SheetResult) -> ImportReport:
        """Accept every good row; the sheet's problems are reported row by row, never half-imported."""
        report = ImportReport()
        for problem in sheet.problems:
            report.rows.append({"row": problem.row, "outcome": problem.kind, "reason": problem.reason})
            if problem.kind == "rejected":
                report.rejected += 1
            else:
                report.duplicates += 1
        collected: defaultdict[str, list[str]] = defaultdict(list)
        first_row: dict[str, VisitRow] = {}
        for row in sheet.rows:
            first_row.setdefault(visit_id(row), row)
            if row.suggestion is None:
                report.rows.append({"row": row.row, "outcome": "visited"})
                continue
            accepted = await self._suggestion(member, row)
            collected[visit_id(row)].append(accepted.suggestion_id)
            outcome = "accepted" if accepted.new else "duplicate"
            report.rows.append({"row": row.row, "outcome": outcome, "tracking_code": accepted.tracking_code})
            report.accepted += accepted.new
            report.duplicates += not accepted.new
        for key, row in first_row.items():
            new = await self._visit(member, key, row, collected.get(key, []))
            report.visits += new
        report.rows.sort(key=lambda r: int(r["row"]))  # type: ignore[call-overload]
        return report

    async def _suggestion(self, member: StaffMember, row: VisitRow):
        unit = self.units.unit(row.unit)
        content = {
            "text": row.suggestion,
            "location": Location(town=unit.name if unit else None, village=row.village),
            "unit": row.unit,
        }
        # The visit's day at noon in the campaign's zone: the sheet gives a date, not a time.
        submitted = datetime.combine(row.visited_on, time(12), self.campaign.zone)
        return await self.runtime.receive(
            self.campaign,
            Channel.DOOR_TO_DOOR,
            f"sheet:{row.row_key}",
            content,
            PersonalData(name=row.name, phone=row.phone),
            submitted,
            fingerprint=row.row_key,
            author=member.username,
        )

    async def _visit(self, member: StaffMember, key: str, row: VisitRow, suggestion_ids: list[str]) -> bool:
        body = Visit(
            unit=row.unit,
            place=row.village,
            household=row.household,
            visited_on=row.visited_on,
            visitor=row.visitor,
            suggestion_ids=sorted(suggestion_ids),
        )
        event = HouseholdVisited(visit_id=key, body=body)
        submission = f"visit:{key}:{_digest(body.suggestion_ids)}"
        accepted = await self.runtime.outbox.accept(
            submission, _digest(body.model_dump(mode="json")), event, author=member.username
        )
        await self.runtime.publish_now(accepted)
        return accepted.new
