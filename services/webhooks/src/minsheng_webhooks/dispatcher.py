"""Sending due deliveries: one subscription at a time in the order its events occurred, with backoff and a give-up."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog

from minsheng_core.backoff import backoff
from minsheng_webhooks.deliveries import Deliveries, Leases
from minsheng_webhooks.settings import WebhookSettings
from minsheng_webhooks.signing import sign
from minsheng_webhooks.subscriptions import Subscription, Subscriptions

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
USER_AGENT = "minsheng-webhooks/1"


class Dispatcher:
    """Looks for due deliveries every ``dispatch_interval_seconds`` (or at once when woken) and sends them.

    Per subscription only the oldest pending delivery is tried; while it backs off the later ones wait, so a
    subscriber that comes back after an outage receives everything in the order it occurred. Subscriptions are
    served in parallel, each under a lease, with one request at a time."""

    def __init__(
        self,
        settings: WebhookSettings,
        subscriptions: Subscriptions,
        deliveries: Deliveries,
        leases: Leases,
        client: httpx.AsyncClient,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._subscriptions = subscriptions
        self._deliveries = deliveries
        self._leases = leases
        self._client = client
        self._clock = clock
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}

    def wake(self) -> None:
        """Look for due deliveries now (a new one was recorded, or one was replayed)."""
        self._wake.set()

    async def run(self) -> None:
        """Forever: start a drain for each active subscription not being served yet."""
        try:
            while True:
                self._wake.clear()
                try:
                    await self.tick()
                except Exception as exc:  # database away: try again on the next round
                    log.warning("webhook_dispatch_failed", error=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._settings.dispatch_interval_seconds)
        finally:
            tasks = list(self._running.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def tick(self) -> None:
        for subscription in await self._subscriptions.active():
            if subscription.id in self._running:
                continue
            if len(self._running) >= self._settings.max_parallel_subscriptions:
                return
            task = asyncio.create_task(self._drain(subscription))
            self._running[subscription.id] = task
            task.add_done_callback(lambda _t, key=subscription.id: self._running.pop(key, None))

    async def _drain(self, subscription: Subscription) -> None:
        """Send the subscription's due deliveries in order until none is due or one fails."""
        if not await self._leases.acquire(subscription.id, self._clock()):
            return
        try:
            secret = self._subscriptions.secret(subscription)
            for doc in await self._deliveries.due_sidelined(subscription.id, self._clock()):
                await self._attempt(subscription, secret, doc)
            while True:
                current = await self._subscriptions.get(subscription.id)
                if current is None or not current.active:
                    return
                head = await self._deliveries.head(subscription.id)
                if head is None or _aware(head["next_attempt_at"]) > self._clock():
                    return
                if not await self._attempt(current, secret, head):
                    return
                await self._leases.renew(subscription.id, self._clock())
        except Exception as exc:  # the database or the vault: the next round tries again
            log.warning("webhook_drain_failed", subscription_id=subscription.id, error=type(exc).__name__)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._leases.release(subscription.id))

    async def _attempt(self, subscription: Subscription, secret: str, doc: dict[str, Any]) -> bool:
        """POST one delivery and log the attempt; True when the later deliveries may go on (this one was taken,
        given up, or sidelined), False when they wait behind it."""
        now = self._clock()
        body = doc["body"].encode()
        timestamp = str(int(now.timestamp()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "X-Minsheng-Event-Id": doc["event_id"],
            "X-Minsheng-Event-Type": doc["event_type"],
            "X-Minsheng-Routing-Key": doc["routing_key"],
            "X-Minsheng-Delivery-Id": doc["_id"],
            "X-Minsheng-Attempt": str(doc["attempts"] + 1),
            "X-Minsheng-Timestamp": timestamp,
            "X-Minsheng-Signature": sign(secret, timestamp, body),
        }
        status: int | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            # Streamed and never read: a subscriber's answer body is of no interest, however large it is.
            async with self._client.stream("POST", subscription.url, content=body, headers=headers) as response:
                status = response.status_code
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        if status is not None and not 200 <= status < 300:
            error = f"HTTP {status}"
        attempt = {"at": now, "status": status, "error": error, "duration_ms": duration_ms}
        fields = {"subscription_id": subscription.id, "delivery_id": doc["_id"], "host": subscription.host}
        if error is None:
            if not await self._deliveries.delivered(doc, attempt):
                log.warning("webhook_delivery_no_longer_pending", **fields)
            log.info("webhook_delivered", status=status, attempts=doc["attempts"] + 1, ms=duration_ms, **fields)
            return True
        attempts = doc["attempts"] + 1
        # The subscriber is up and refuses this one delivery (4xx other than timeout and rate limit, or a redirect):
        # it is retried on its own, and the later deliveries no longer wait behind it.
        sideline = status is not None and 300 <= status < 500 and status not in (408, 425, 429)
        give_up_at = _aware(doc["window_started_at"]) + timedelta(hours=self._settings.give_up_after_hours)
        if now >= give_up_at:
            await self._deliveries.attempt_failed(doc, attempt, None, sideline=sideline)
            log.warning("webhook_delivery_given_up", error=error, attempts=attempts, **fields)
            return True
        delay = backoff(attempts, self._settings.retry_base_seconds, self._settings.retry_cap_seconds, self._rng)
        await self._deliveries.attempt_failed(doc, attempt, now + delay, sideline=sideline)
        log.info("webhook_attempt_failed", error=error, attempts=attempts, retry_in_s=round(delay.total_seconds(), 1), **fields)
        return sideline


def _aware(value: datetime) -> datetime:
    """Stored datetimes come back aware (tz_aware client); a naive one is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
