"""The attachment store: the same bytes from many threads at once land once, whole."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from channels.attachment_store import store_bytes


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
