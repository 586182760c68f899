"""What became of the suggestions: released decisions by outcome and reason, per unit and per category, and the
notifications delivered per channel.

Two aggregations over the suggestions ($match, $group, $unwind: what FerretDB 1.x runs as well as MongoDB), one
answer each, whatever the number of decisions; the suggestion's current unit and category count.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from minsheng_core.campaign import OUTCOME_NAMES, REASON_NAMES, Campaign
from minsheng_core.events import NotificationChannel, Outcome, Reason
from minsheng_core.units import UnitRegistry
from minsheng_store.tallies import UNASSIGNED, UNCLASSIFIED

CHANNEL_NAMES: dict[str, str] = {
    NotificationChannel.WECHAT_MESSAGE: "微信客服消息",
    NotificationChannel.WECHAT_TEMPLATE: "微信模板消息",
    NotificationChannel.SMS: "短信",
    NotificationChannel.WEB: "网站查询",
}


class OutcomeCounts(BaseModel):
    adopted: int = 0
    merged: int = 0
    referred: int = 0
    not_adopted: int = 0
    not_adopted_by_reason: dict[str, int] = Field(default_factory=lambda: {r.value: 0 for r in Reason})
    total: int = 0

    def add(self, outcome: str, reason: str | None, count: int) -> None:
        if outcome not in {o.value for o in Outcome}:
            return  # not an outcome of this contract: nothing to count it as
        setattr(self, outcome, getattr(self, outcome) + count)
        if outcome == Outcome.NOT_ADOPTED:
            key = reason if reason in self.not_adopted_by_reason else Reason.OTHER.value
            self.not_adopted_by_reason[key] += count
        self.total += count


class UnitOutcomes(OutcomeCounts):
    unit: str
    name: str


class CategoryOutcomes(OutcomeCounts):
    category: str
    name: str


class ChannelNotifications(BaseModel):
    channel: str
    name: str
    count: int


class OutcomesReport(BaseModel):
    """Released decisions (the last one of each suggestion) and notifications delivered."""

    unit: str | None = Field(description="unit code, None for the district")
    generated_at: datetime
    outcome_names: dict[str, str]
    reason_names: dict[str, str]
    overall: OutcomeCounts
    units: list[UnitOutcomes]
    categories: list[CategoryOutcomes]
    notifications: list[ChannelNotifications]
    notifications_total: int


async def outcome_rows(db: Any, unit: str | None = None, until: datetime | None = None) -> list[dict[str, Any]]:
    """Decided suggestions counted by (unit, category, outcome, reason); with ``until``, decisions released before it."""
    match: dict[str, Any] = {"decision.outcome": {"$exists": True}}
    if unit is not None:
        match["unit"] = unit
    if until is not None:
        match["decision.released_at"] = {"$lt": until}
    group = {"unit": "$unit", "category": "$category", "outcome": "$decision.outcome", "reason": "$decision.reason"}
    cursor = await db.suggestions.aggregate([{"$match": match}, {"$group": {"_id": group, "count": {"$sum": 1}}}])
    return [{**row["_id"], "count": row["count"]} for row in await cursor.to_list(None)]


async def notification_rows(db: Any, unit: str | None = None, until: datetime | None = None) -> list[dict[str, Any]]:
    """Notifications recorded on suggestions, by (unit, channel); with ``until``, those sent before it."""
    match: dict[str, Any] = {"notifications": {"$exists": True}}
    if unit is not None:
        match["unit"] = unit
    pipeline: list[dict[str, Any]] = [{"$match": match}, {"$unwind": "$notifications"}]
    if until is not None:
        pipeline.append({"$match": {"notifications.sent_at": {"$lt": until}}})
    pipeline.append({"$group": {"_id": {"unit": "$unit", "channel": "$notifications.channel"}, "count": {"$sum": 1}}})
    cursor = await db.suggestions.aggregate(pipeline)
    return [{**row["_id"], "count": row["count"]} for row in await cursor.to_list(None)]


def assemble_outcomes(
    campaign: Campaign,
    units: UnitRegistry,
    unit: str | None,
    rows: list[dict[str, Any]],
    notified: list[dict[str, Any]],
    generated_at: datetime | None = None,
) -> OutcomesReport:
    """The report of one unit (None: the district) from aggregated rows of any units; units in the registry's order,
    categories in the taxonomy's."""
    from minsheng_store.weekly import UNCLASSIFIED_NAME, unit_name  # weekly's report embeds this one

    in_scope = (lambda row: True) if unit is None else (lambda row: row.get("unit") == unit)
    overall = OutcomeCounts()
    by_unit: dict[str, UnitOutcomes] = {}
    by_category: dict[str, CategoryOutcomes] = {}
    for row in filter(in_scope, rows):
        code = row.get("unit") or UNASSIGNED
        category = row.get("category") or UNCLASSIFIED
        outcome, reason, count = str(row.get("outcome")), row.get("reason"), int(row["count"])
        overall.add(outcome, reason, count)
        if code not in by_unit:
            by_unit[code] = UnitOutcomes(unit=code, name=unit_name(units, code))
        by_unit[code].add(outcome, reason, count)
        if category not in by_category:
            name = UNCLASSIFIED_NAME if category == UNCLASSIFIED else campaign.category_name(category)
            by_category[category] = CategoryOutcomes(category=category, name=name)
        by_category[category].add(outcome, reason, count)
    channels_told: dict[str, int] = {}
    for row in filter(in_scope, notified):
        channels_told[str(row.get("channel"))] = channels_told.get(str(row.get("channel")), 0) + int(row["count"])
    unit_order = {code: i for i, code in enumerate(units.codes())}
    category_order = {code: i for i, code in enumerate(campaign.category_codes())}
    known = [c.value for c in NotificationChannel]
    channels = known + sorted(set(channels_told) - set(known))
    return OutcomesReport(
        unit=unit,
        generated_at=generated_at or datetime.now(UTC),
        outcome_names={o.value: n for o, n in OUTCOME_NAMES.items()},
        reason_names={r.value: n for r, n in REASON_NAMES.items()},
        overall=overall,
        units=sorted(by_unit.values(), key=lambda u: (unit_order.get(u.unit, len(unit_order)), u.unit)),
        categories=sorted(by_category.values(), key=lambda c: (category_order.get(c.category, len(category_order)), c.category)),
        notifications=[
            ChannelNotifications(channel=c, name=CHANNEL_NAMES.get(c, c), count=channels_told.get(c, 0)) for c in channels
        ],
        notifications_total=sum(channels_told.values()),
    )


async def outcomes_report(
    db: Any, campaign: Campaign, units: UnitRegistry, unit: str | None = None, until: datetime | None = None
) -> OutcomesReport:
    """The outcomes of one unit (None: the whole district), of the decisions released before ``until`` if given."""
    rows, notified = await outcome_rows(db, unit, until), await notification_rows(db, unit, until)
    return assemble_outcomes(campaign, units, unit, rows, notified)
