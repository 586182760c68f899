"""Serialising writes to one document, within the store process and, given a lease collection, across its replicas."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import structlog
from pymongo import DeleteOne, InsertOne
from pymongo.errors import DuplicateKeyError, PyMongoError

from minsheng_core.batching import BulkWrites

log = structlog.get_logger(__name__)
# A lease's life. Its holder renews it every third of that while its write sequence runs, so only a holder that died
# (or lost the database that long) loses it, and a restarted replica waits at most this long for a killed one's keys.
LEASE_SECONDS = 15.0


@dataclass
class _Lease:
    key: str
    token: str
    renewed: float  # monotonic time the claim or last renewal that succeeded was sent: the lease's life counts from there


class StripedLocks:
    """One lock per stripe of document ids: writes to one document run one after another.

    MongoDB applies each update atomically, but FerretDB 1.x reads, modifies and writes a document back without a
    transaction, so two concurrent updates of one document can lose one of them; and a sequence of writes (an upsert
    racing another upsert, a tally moved after reading where it was) needs one writer at a time on either. The
    in-process lock covers one replica; with ``leases`` (a collection) each key is also claimed there by an insert
    on the unique ``_id``, so several store replicas serialise too. A lease a crashed replica left expires.
    """

    def __init__(self, stripes: int = 256, leases: Any = None, scope: str = "") -> None:
        self._locks = [asyncio.Lock() for _ in range(stripes)]
        self._leases = leases
        self._scope = scope
        self._releasing: set[asyncio.Task[None]] = set()
        # Claims and releases of concurrent handlers go to the database together: one command, not one each.
        self._writes = BulkWrites(leases) if leases is not None else None

    def __call__(self, key: str) -> AbstractAsyncContextManager[Any]:
        local = self._locks[zlib.crc32(key.encode()) % len(self._locks)]
        return local if self._leases is None else self._held(local, f"{self._scope}:{key}")

    @contextlib.asynccontextmanager
    async def _held(self, local: asyncio.Lock, key: str) -> AsyncIterator[None]:
        async with local:
            lease = await self._claim(key)
            keeper = asyncio.create_task(self._keep(lease))
            try:
                yield
            finally:
                keeper.cancel()
                await self._release(lease)

    async def _keep(self, lease: _Lease) -> None:
        """Renew the lease while its holder works (most holds end long before the first renewal is due)."""
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            sent = time.monotonic()
            try:
                # Token in the filter: FerretDB reads every lease for it, which is fine for the rare long hold.
                renewed = await self._leases.update_one(
                    {"_id": lease.key, "token": lease.token}, {"$set": {"until": time.time() + LEASE_SECONDS}}
                )
            except PyMongoError as exc:  # the database is away: the next beat tries again
                log.warning("lease_renewal_failed", lease=lease.key, error=type(exc).__name__)
                continue
            if renewed.matched_count == 0:
                log.error("lease_lost", lease=lease.key)
                return
            lease.renewed = sent

    async def _release(self, lease: _Lease) -> None:
        key, token = lease.key, lease.token
        try:
            if time.monotonic() - lease.renewed < LEASE_SECONDS / 2:
                # Not expired, so still ours (only an expired lease is taken over, and clocks differ by far less than
                # half a lease): deleted by its bare _id, which FerretDB finds by index; with the token in the filter
                # it would read every lease to find it.
                await self._writes(DeleteOne({"_id": key}))
            else:
                await self._leases.delete_one({"_id": key, "token": token})
        except PyMongoError:
            # The database is away: keep trying once it is back, or every writer of this key (every tally of the
            # day) waits until the lease expires, long after the database returned.
            self._release_later(key, token)
            raise

    def _release_later(self, key: str, token: str) -> None:
        task = asyncio.create_task(self._release_when_possible(key, token))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _release_when_possible(self, key: str, token: str) -> None:
        deadline, delay = time.time() + LEASE_SECONDS, 0.2
        while time.time() < deadline:
            await asyncio.sleep(delay)
            try:
                await self._leases.delete_one({"_id": key, "token": token})
                return
            except PyMongoError:
                delay = min(delay * 2, 2.0)

    async def _claim(self, key: str) -> _Lease:
        token, delay = uuid.uuid4().hex, 0.002
        while True:
            sent = time.monotonic()
            try:
                await self._writes(InsertOne({"_id": key, "token": token, "until": time.time() + LEASE_SECONDS}))
                return _Lease(key, token, sent)
            except DuplicateKeyError:  # held: by whom, and for how long, is read below
                pass
            except PyMongoError:
                self._release_later(key, token)  # the insert may have gone through before the connection broke
                raise
            held = await self._leases.find_one({"_id": key})
            if held is not None and held["token"] == token:  # ours: the driver retried an insert that went through
                return _Lease(key, token, sent)
            if held is not None and held["until"] < time.time():  # its holder died: remove exactly that lease
                log.warning("lease_expired", lease=key)
                await self._leases.delete_one({"_id": key, "token": held["token"]})
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
