"""The wait between attempts shared by the notifier and the webhook relay."""

from __future__ import annotations

import random
from datetime import timedelta

from minsheng_core.backoff import backoff


def test_backoff_doubles_from_the_base_up_to_the_cap_jittered_to_half_or_more():
    rng = random.Random(7)
    for failures, ceiling in [(0, 10), (1, 10), (2, 20), (3, 40), (6, 320), (7, 600), (40, 600), (10_000, 600)]:
        for _ in range(50):
            delay = backoff(failures, 10, 600, rng)
            assert timedelta(seconds=ceiling / 2) <= delay <= timedelta(seconds=ceiling)


def test_backoff_is_jittered_so_failures_together_do_not_come_back_together():
    assert len({backoff(3, 30, 3600).total_seconds() for _ in range(20)}) > 1
