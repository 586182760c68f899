"""Group commit: concurrent submissions share commands, each gets its own result, failures reach every caller."""

import asyncio

import pytest

from minsheng_core.batching import GroupCommit


async def test_concurrent_items_go_together_and_each_gets_its_own_result():
    batches: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0.01)
        return [i * 10 for i in items]

    group = GroupCommit(flush, max_batch=4)
    results = await asyncio.gather(*(group.submit(i) for i in range(10)))
    assert results == [i * 10 for i in range(10)]
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert max(len(b) for b in batches) == 4 and len(batches) == 3  # 4 + 4 + 2, never one command per item
    assert await group.submit(7) == 70  # alone: served at once


async def test_a_failed_command_fails_every_caller_of_that_batch_only():
    async def flush(items: list[int]) -> list[int]:
        if 3 in items:
            raise RuntimeError("database away")
        return items

    group = GroupCommit(flush)
    outcomes = await asyncio.gather(*(group.submit(i) for i in (1, 3)), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert await group.submit(5) == 5
    with pytest.raises(RuntimeError):
        await group.submit(3)
