"""Group commit: the same small write from many concurrent handlers, sent to the database as one command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from pymongo import DeleteOne, InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

_DUPLICATE_KEY = 11000
Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """Callers ``submit`` one item each and wait for its result; the items submitted while a command is in flight
    (and those of the same turn of the event loop) go together in the next one. Under load one round trip serves
    many handlers; alone, a caller waits for nobody. ``flush`` gets a batch and returns one result per item, in order;
    if it raises, every caller of that batch gets the error."""

    def __init__(self, flush: Callable[[list[Item]], Awaitable[Sequence[Result]]], max_batch: int = 100) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the handlers of this turn of the loop join the first command
        while self._pending:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            try:
                results = await self._flush([item for item, _ in batch])
            except Exception as exc:  # every caller decides what the failure means for its own item
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)


WriteOp = InsertOne | UpdateOne | DeleteOne
# Statements per command. FerretDB 1.24 keeps the query of every statement of an update command open until the whole
# command ends, each on one of the database's 100 SQLite connections: an update command of about a hundred statements
# waits for ever for a connection its own earlier statements hold (a benchmark burst stalled on exactly that).
MAX_BULK = 20


class BulkWrites:
    """Single-document writes of concurrent handlers to one collection, sent as one unordered bulk write.

    Under load one round trip, and the driver's and the server's handling of one command, serves many writers (the
    store and classifier went from about 18 commands per suggestion to about 5); the work per document stays.
    Each caller gets the outcome of its own write: it returns, or raises ``DuplicateKeyError`` (an insert whose ``_id``
    is taken) or ``WriteError``; a failure of the whole command reaches every caller of the batch.
    Writes to one document must not be submitted concurrently (they would go in one batch in no set order): callers
    hold the document's lock.
    """

    def __init__(self, collection: Any, max_batch: int = MAX_BULK) -> None:
        self._collection = collection
        self._group: GroupCommit[WriteOp, WriteError | None] = GroupCommit(self._write, max_batch)

    async def __call__(self, op: WriteOp) -> None:
        error = await self._group.submit(op)
        if error is not None:
            raise error

    async def _write(self, ops: list[WriteOp]) -> list[WriteError | None]:
        outcomes: list[WriteError | None] = [None] * len(ops)
        try:
            await self._collection.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            if exc.details.get("writeConcernErrors"):
                raise
            for error in exc.details.get("writeErrors", []):  # indexes are those of `ops`, whatever the driver split
                kind = DuplicateKeyError if error.get("code") == _DUPLICATE_KEY else WriteError
                outcomes[error["index"]] = kind(error.get("errmsg", ""), error.get("code"), error)
        return outcomes
