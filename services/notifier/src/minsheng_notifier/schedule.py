"""When a message may go out: quiet hours in the campaign's time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class QuietHours:
    """No message from ``start`` to ``end`` local time (overnight when start is later than end; none when equal)."""

    start: time
    end: time
    zone: ZoneInfo

    def is_quiet(self, at: datetime) -> bool:
        """Whether the instant falls in the quiet hours."""
        if self.start == self.end:
            return False
        local = at.astimezone(self.zone).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_allowed(self, at: datetime) -> datetime:
        """``at`` itself when messages may go out, else the end of these quiet hours."""
        if not self.is_quiet(at):
            return at
        local = at.astimezone(self.zone)
        end = datetime.combine(local.date(), self.end, self.zone)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.end, self.zone)
        return end.astimezone(at.tzinfo)
