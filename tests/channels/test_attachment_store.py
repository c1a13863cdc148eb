"""The attachment store: the same bytes from many threads at once land once, whole; bytes that
arrive a chunk at a time are read no further than the cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from channels.attachment_store import is_temporary, store_bytes, store_chunks


def test_the_same_bytes_from_many_threads_at_once_are_stored_once(tmp_path: Path) -> None:
    # Two mails with the same logo used to race on one temporary name (FileNotFoundError).
    data = b"logo" * 250_000
    with ThreadPoolExecutor(max_workers=8) as pool:
        paths = list(pool.map(lambda _: store_bytes(tmp_path / "files", data), range(32)))
    assert len(set(paths)) == 1
    assert paths[0].read_bytes() == data
    assert [p.name for p in (tmp_path / "files").iterdir()] == [paths[0].name]  # no temporaries


def test_different_bytes_get_different_files(tmp_path: Path) -> None:
    first, second = store_bytes(tmp_path, b"a"), store_bytes(tmp_path, b"b")
    assert first != second
    assert (first.read_bytes(), second.read_bytes()) == (b"a", b"b")


class Chunks:
    """``count`` chunks of ``chunk``, counting how many were taken."""

    def __init__(self, chunk: bytes, count: int) -> None:
        self.chunk = chunk
        self.count = count
        self.taken = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            self.taken += 1
            yield self.chunk


async def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in await asyncio.to_thread(directory.iterdir))


async def test_chunks_are_stored_as_the_same_bytes_whole(tmp_path: Path) -> None:
    whole = await asyncio.to_thread(store_bytes, tmp_path, b"logo" * 4)
    again = await store_chunks(tmp_path, Chunks(b"logo", 4), max_bytes=16)
    assert again == whole
    assert await listing(tmp_path) == [whole.name]  # no temporaries


async def test_chunks_past_the_cap_are_not_read_and_nothing_is_stored(tmp_path: Path) -> None:
    chunks = Chunks(b"x" * 10, 1000)
    assert await store_chunks(tmp_path, chunks, max_bytes=25) is None
    assert chunks.taken == 3  # the one that went past the cap, and no more
    assert await listing(tmp_path) == []


async def test_chunks_cut_short_leave_nothing_behind(tmp_path: Path) -> None:
    async def cut() -> AsyncIterator[bytes]:
        yield b"half a file"
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        await store_chunks(tmp_path, cut(), max_bytes=100)
    assert await listing(tmp_path) == []


def test_the_temporary_file_of_chunks_is_known_to_the_sweep() -> None:
    """Named before its digest is known; a crash mid-download leaves it for the sweep."""
    assert is_temporary(".partial.k2j4h1x8.tmp")
    assert not is_temporary(".partial.k2j4h1x8")
