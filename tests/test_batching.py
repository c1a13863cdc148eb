"""Group commit: what goes into a batch, and writers that share turns."""

from __future__ import annotations

import asyncio

import pytest

from gateway.batching import GroupCommit


class Recorder:
    """A batch writer that records its batches and how many of them ran at once."""

    def __init__(self, *, pause: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.running = 0
        self.most_at_once = 0
        self.pause = pause

    async def write(self, batch: list[int]) -> list[int]:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.pause)
            if any(item < 0 for item in batch):
                raise ValueError("negative")
            self.batches.append(batch)
            return [item * 10 for item in batch]
        finally:
            self.running -= 1


async def test_a_lone_item_is_written_at_once() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.write)
    assert await asyncio.wait_for(commit.submit(1), 1) == 10
    assert recorder.batches == [[1]]


async def test_items_that_arrive_while_the_writer_waits_for_its_turn_join_its_batch() -> None:
    recorder = Recorder()
    turns = asyncio.Semaphore(1)
    commit = GroupCommit(recorder.write, turns=lambda: turns)
    async with turns:  # another writer (the router's, say) has the database
        pending = [asyncio.create_task(commit.submit(n)) for n in range(5)]
        await asyncio.sleep(0.05)
        assert recorder.batches == []
    assert await asyncio.gather(*pending) == [0, 10, 20, 30, 40]
    # Without turns the first item would have been taken alone, before the wait.
    assert recorder.batches == [[0, 1, 2, 3, 4]]


async def test_group_commits_sharing_one_turn_never_write_at_once() -> None:
    recorder = Recorder(pause=0.01)
    turns = asyncio.Semaphore(1)
    ingest = GroupCommit(recorder.write, max_batch=3, max_writers=4, turns=lambda: turns)
    router = GroupCommit(recorder.write, max_batch=3, max_writers=4, turns=lambda: turns)
    results = await asyncio.gather(
        *(ingest.submit(n) for n in range(20)), *(router.submit(n) for n in range(20, 40))
    )
    assert results == [n * 10 for n in range(40)]
    assert recorder.most_at_once == 1
    assert sorted(item for batch in recorder.batches for item in batch) == list(range(40))


@pytest.mark.parametrize("shared", [False, True])
async def test_a_bad_item_fails_alone(shared: bool) -> None:
    recorder = Recorder()
    turns = asyncio.Semaphore(1)
    commit = GroupCommit(recorder.write, turns=(lambda: turns) if shared else None)
    async with turns:
        pending = [asyncio.create_task(commit.submit(n)) for n in (1, -1, 2)]
        await asyncio.sleep(0.01)
    results = await asyncio.gather(*pending, return_exceptions=True)
    assert results[0] == 10 and results[2] == 20
    assert isinstance(results[1], ValueError)
