"""Durable local outbox of an intake service: what was accepted is kept here until the broker confirms it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
import structlog

from minsheng_core.bus import Publisher, PublishFailed
from minsheng_core.events import SuggestionReceived

log = structlog.get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    submission_key TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    suggestion_id TEXT NOT NULL UNIQUE,
    tracking_code TEXT NOT NULL UNIQUE,
    event_json TEXT NOT NULL,
    accepted_at TEXT NOT NULL,
    published_at TEXT
);
"""


class SubmissionKeyConflict(Exception):
    """The same submission key was used for a different request."""


@dataclass(frozen=True)
class Accepted:
    """An accepted submission as the outbox holds it."""

    suggestion_id: str
    tracking_code: str
    published: bool
    new: bool


class Outbox:
    """SQLite in WAL mode; one row per accepted submission, keyed by the channel's submission key."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self._drain_lock = asyncio.Lock()

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self._path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=FULL")
        await self._db.executescript(_SCHEMA)
        await self._db.commit()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("outbox not open")
        return self._db

    async def accept(self, submission_key: str, fingerprint: str, event: SuggestionReceived) -> Accepted:
        """Store the event durably, or return the earlier acceptance of the same key."""
        cursor = await self.db.execute(
            "INSERT OR IGNORE INTO outbox (submission_key, fingerprint, suggestion_id, tracking_code, event_json, accepted_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                submission_key,
                fingerprint,
                event.suggestion_id,
                event.body.tracking_code,
                event.model_dump_json(),
                datetime.now(UTC).isoformat(),
            ),
        )
        await self.db.commit()
        if cursor.rowcount == 1:
            return Accepted(event.suggestion_id, event.body.tracking_code, published=False, new=True)
        async with self.db.execute(
            "SELECT fingerprint, suggestion_id, tracking_code, published_at FROM outbox WHERE submission_key = ?",
            (submission_key,),
        ) as rows:
            row = await rows.fetchone()
        if row is None or row[0] != fingerprint:
            raise SubmissionKeyConflict(submission_key)
        return Accepted(row[1], row[2], published=row[3] is not None, new=False)

    async def find_by_tracking_code(self, tracking_code: str) -> SuggestionReceived | None:
        async with self.db.execute("SELECT event_json FROM outbox WHERE tracking_code = ?", (tracking_code,)) as rows:
            row = await rows.fetchone()
        return SuggestionReceived.model_validate_json(row[0]) if row else None

    async def publish(self, publisher: Publisher, suggestion_id: str) -> bool:
        """Try to publish one accepted event now; True once the broker confirmed it."""
        async with self.db.execute(
            "SELECT event_json, published_at FROM outbox WHERE suggestion_id = ?", (suggestion_id,)
        ) as rows:
            row = await rows.fetchone()
        if row is None:
            raise KeyError(suggestion_id)
        if row[1] is not None:
            return True
        try:
            await publisher.publish(SuggestionReceived.model_validate_json(row[0]))
        except PublishFailed as exc:
            log.warning("outbox_publish_deferred", error=str(exc)[:200])
            return False
        await self._mark_published(suggestion_id)
        return True

    async def drain(self, publisher: Publisher, batch: int = 200) -> int:
        """Publish what is still pending, oldest first; stop at the first failure. Returns how many went out."""
        sent = 0
        async with self._drain_lock:
            async with self.db.execute(
                "SELECT suggestion_id, event_json FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?", (batch,)
            ) as rows:
                pending = await rows.fetchall()
            for suggestion_id, event_json in pending:
                try:
                    await publisher.publish(SuggestionReceived.model_validate_json(event_json))
                except PublishFailed:
                    break
                await self._mark_published(suggestion_id)
                sent += 1
        if sent:
            log.info("outbox_drained", published=sent)
        return sent

    async def run_drainer(self, publisher: Publisher, interval: float = 2.0) -> None:
        """Background task: keep draining until cancelled."""
        while True:
            try:
                await self.drain(publisher)
            except Exception as exc:  # never let the drainer die; the next round tries again
                log.error("outbox_drain_failed", error=type(exc).__name__)
            await asyncio.sleep(interval)

    async def _mark_published(self, suggestion_id: str) -> None:
        await self.db.execute(
            "UPDATE outbox SET published_at = ? WHERE suggestion_id = ? AND published_at IS NULL",
            (datetime.now(UTC).isoformat(), suggestion_id),
        )
        await self.db.commit()
