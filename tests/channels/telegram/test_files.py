"""Downloading a message's files: the size cap holds however big the file says it is."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from channels.attachment_store import is_temporary
from gateway.store import Store
from tests.channels.telegram.conftest import (
    TOKEN,
    MakeGateway,
    load_fixture,
    messages,
    post_update,
    telegram_settings,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI

CAP = 64 * 1024
CHUNK = b"%PDF" * (16 * 1024)  # 64 KiB
LARGE = 1024  # chunks: 64 MiB, a thousand times the cap


def document(file_size: int | None) -> dict[str, Any]:
    """The ``document`` update, its ``file_size`` replaced (None: not given, as the Bot API
    allows)."""
    update = load_fixture("document")
    del update["message"]["document"]["file_size"]
    if file_size is not None:
        update["message"]["document"]["file_size"] = file_size
    return update


async def store_listing(directory: str) -> list[str]:
    """The names in the attachment store (none if it was never made)."""
    path = Path(directory)
    exists = await asyncio.to_thread(path.exists)
    return sorted(p.name for p in await asyncio.to_thread(path.iterdir)) if exists else []


async def on_local_server(fake: FakeBotAPI, directory: Path, data: bytes) -> Path:
    """``data`` as a ``--local`` Bot API server keeps a file: on its disk, ``getFile`` naming
    the absolute path (https://github.com/tdlib/telegram-bot-api#usage)."""
    on_disk = directory / "documents" / "file_1.pdf"
    await asyncio.to_thread(on_disk.parent.mkdir, parents=True)
    await asyncio.to_thread(on_disk.write_bytes, data)
    fake.add_file("doc-1", b"", str(on_disk), file_size=None)
    return on_disk


def our_log(caplog: pytest.LogCaptureFixture) -> str:
    """What we logged (the fake Bot API's own access log shows the token, as Telegram's would)."""
    formatter = logging.Formatter()
    return "\n".join(formatter.format(r) for r in caplog.records if r.name != "aiohttp.access")


@pytest.mark.parametrize("file_size", [None, 100], ids=["no_size", "false_size"])
async def test_a_file_larger_than_it_says_is_not_read_past_the_cap(
    file_size: int | None,
    fake: FakeBotAPI,
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    make_gateway: MakeGateway,
    db: Store,
) -> None:
    """Neither the update nor getFile has to give a ``file_size``, nor give it truly: the
    whole file used to be read into memory before the cap was checked (up to 2,000 MB from a
    local Bot API server)."""
    settings = telegram_settings(fake, db_url, redis_url, tmp_path, attachment_max_bytes=CAP)
    _, client = await make_gateway(settings)
    served = fake.add_file(
        "doc-1", CHUNK, "documents/file_1.pdf", repeat=LARGE, file_size=file_size
    )
    assert await post_update(client, document(file_size)) == 200
    [message] = await messages(db)
    assert message.text == "Here is my invoice"
    size = file_size or 0
    assert message.attachments == [
        {
            "filename": "invoice-A1024.pdf",
            "content_type": "application/pdf",
            "size": size,
            "ref": None,
        }
    ]
    assert message.channel_meta["skipped_files"] == [
        {"filename": "invoice-A1024.pdf", "size": size}
    ]
    # Stopped near the cap: what the sockets' buffers held on the way, not the whole file.
    assert served.served < len(CHUNK) * LARGE // 4
    assert await store_listing(settings.telegram.attachment_dir) == []


async def test_a_file_of_no_given_size_under_the_cap_is_stored_whole(
    fake: FakeBotAPI,
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    make_gateway: MakeGateway,
    db: Store,
) -> None:
    settings = telegram_settings(fake, db_url, redis_url, tmp_path, attachment_max_bytes=CAP * 4)
    _, client = await make_gateway(settings)
    fake.add_file("doc-1", CHUNK, "documents/file_1.pdf", repeat=4, file_size=None)
    for _ in range(2):  # and Telegram's redelivery: the same file, stored once
        assert await post_update(client, document(None)) == 200
    [message] = await messages(db)
    [attachment] = message.attachments
    assert attachment["size"] == len(CHUNK) * 4
    assert await asyncio.to_thread(Path(attachment["ref"]).read_bytes) == CHUNK * 4
    assert "skipped_files" not in message.channel_meta
    assert await store_listing(settings.telegram.attachment_dir) == [Path(attachment["ref"]).name]


@pytest.mark.parametrize(("repeat", "kept"), [(2, True), (LARGE, False)], ids=["fits", "over"])
async def test_a_file_a_local_bot_api_server_keeps_is_read_from_its_disk_up_to_the_cap(
    repeat: int,
    kept: bool,
    fake: FakeBotAPI,
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    make_gateway: MakeGateway,
    db: Store,
) -> None:
    """A Bot API server started with ``--local`` answers getFile with the file's absolute path
    on its disk (https://github.com/tdlib/telegram-bot-api#usage), which python-telegram-bot
    read whole."""
    settings = telegram_settings(fake, db_url, redis_url, tmp_path, attachment_max_bytes=CAP)
    _, client = await make_gateway(settings)
    await on_local_server(fake, tmp_path / "bot-api-server", CHUNK[: CAP // 4] * repeat)
    assert await post_update(client, document(None)) == 200
    [message] = await messages(db)
    [attachment] = message.attachments
    if kept:
        assert await asyncio.to_thread(Path(attachment["ref"]).read_bytes) == CHUNK[: CAP // 4] * 2
    else:
        assert attachment["ref"] is None
        assert message.channel_meta["skipped_files"] == [
            {"filename": "invoice-A1024.pdf", "size": 0}
        ]
        assert await store_listing(settings.telegram.attachment_dir) == []


async def test_a_local_servers_file_we_may_not_read_is_skipped_and_the_message_kept(
    fake: FakeBotAPI,
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    make_gateway: MakeGateway,
    db: Store,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``--local`` server's file we see but may not read (the server runs as another user):
    the update failed with a 500 each time Telegram sent it, and the customer's words were
    never stored. The file is skipped as one Telegram will not serve is, and its path, which
    holds the token on a real server, is not logged. (Tests run as root, who may read any
    file: the refusal is made by hand.)"""
    caplog.set_level(logging.DEBUG)
    settings = telegram_settings(fake, db_url, redis_url, tmp_path, attachment_max_bytes=CAP)
    _, client = await make_gateway(settings)
    on_disk = await on_local_server(fake, tmp_path / TOKEN, CHUNK)

    opened = Path.open

    def refused(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == on_disk:
            raise PermissionError(13, "Permission denied", str(self))
        return opened(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refused)
    assert await post_update(client, document(None)) == 200
    monkeypatch.undo()
    [message] = await messages(db)
    assert message.attachments[0]["ref"] is None
    assert message.channel_meta["skipped_files"] == [{"filename": "invoice-A1024.pdf", "size": 0}]
    ours = our_log(caplog)
    assert "not readable" in ours
    assert TOKEN.split(":")[1] not in ours


async def test_a_download_cut_short_comes_again_and_names_no_token(
    fake: FakeBotAPI,
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    make_gateway: MakeGateway,
    db: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A connection lost mid-file is a network failure: the update is not acknowledged, and
    neither the error nor a log line shows the file's URL, which holds the token."""
    caplog.set_level(logging.DEBUG)
    settings = telegram_settings(fake, db_url, redis_url, tmp_path, attachment_max_bytes=CAP * 4)
    _, client = await make_gateway(settings)
    file = fake.add_file("doc-1", CHUNK, "documents/file_1.pdf", repeat=4, file_size=None)
    file.cut_after = 2
    assert await post_update(client, document(None)) == 500  # Telegram saw no 200: sends again
    assert await messages(db) == []
    assert [
        n for n in await store_listing(settings.telegram.attachment_dir) if is_temporary(n)
    ] == []
    file.cut_after = None
    assert await post_update(client, document(None)) == 200
    [message] = await messages(db)
    assert message.attachments[0]["size"] == len(CHUNK) * 4
    ours = our_log(caplog)
    assert "Error handling request" in ours
    assert TOKEN.split(":")[1] not in ours


async def test_a_local_servers_file_our_store_cannot_keep_fails_the_update_not_the_file(
    fake: FakeBotAPI,
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    make_gateway: MakeGateway,
    db: Store,
) -> None:
    """Our own attachment store failing to write (its disk full, its directory gone or not a
    directory) is our passing fault, not a file the server will not let us read: it was
    swallowed with the server's refusals, the update acknowledged, and the customer's file
    lost for good. The update now fails, and Telegram's next delivery stores the file."""
    settings = telegram_settings(fake, db_url, redis_url, tmp_path, attachment_max_bytes=CAP)
    _, client = await make_gateway(settings)
    await on_local_server(fake, tmp_path / "bot-api-server", CHUNK)
    store = Path(settings.telegram.attachment_dir)
    await asyncio.to_thread(store.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(store.write_bytes, b"not a directory")
    assert await post_update(client, document(None)) == 500
    assert await messages(db) == []
    await asyncio.to_thread(store.unlink)
    assert await post_update(client, document(None)) == 200
    [message] = await messages(db)
    [attachment] = message.attachments
    assert await asyncio.to_thread(Path(attachment["ref"]).read_bytes) == CHUNK
