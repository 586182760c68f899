"""Group commit: the same small write from many concurrent handlers, sent to the database as one command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

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
