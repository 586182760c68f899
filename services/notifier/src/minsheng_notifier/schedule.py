"""When a message may go out: quiet hours in the campaign's time zone, and the backoff between attempts."""

from __future__ import annotations

import random
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


def backoff(failures: int, base: float, cap: float, rng: random.Random | None = None) -> timedelta:
    """Delay before the next attempt after ``failures`` failed ones: exponential, capped, with jitter (50–100 %)
    so that messages that failed together do not all come back at the same instant."""
    delay = min(cap, base * 2 ** max(failures - 1, 0))
    return timedelta(seconds=delay * (rng or random).uniform(0.5, 1.0))
