"""The wait between attempts at something that failed (a notification, a webhook delivery)."""

from __future__ import annotations

import random
from datetime import timedelta


def backoff(failures: int, base: float, cap: float, rng: random.Random | None = None) -> timedelta:
    """Delay before the next attempt after ``failures`` failed ones: doubling from ``base`` up to ``cap`` seconds,
    then jittered to 50–100 % of that, so that what failed together (or every replica of a relay) does not all come
    back at the same instant."""
    ceiling = min(cap, base * 2 ** min(max(failures - 1, 0), 30))
    return timedelta(seconds=ceiling * (rng or random).uniform(0.5, 1.0))
