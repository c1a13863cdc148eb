"""Downloading a message's files (photos, documents, voice, video) before it is stored.

Each file goes through ``getFile`` and the Bot API's file URL
(https://core.telegram.org/bots/api#getfile) into the attachment store the email channel uses
too (``<attachment_dir>/<sha256>``, ``ref`` = that path), so a redelivered update writes nothing
new. A file over the size cap, or one Telegram will not serve (``getFile`` stops at 20 MB), is
kept as a name without bytes and listed in ``channel_meta["skipped_files"]``; a network failure
or Telegram's flood control (429) raises :class:`TransientChannelError`, so the update is not
acknowledged and comes again.

``file_size`` is optional in the update and in ``getFile``'s answer, and need not be true: the
file is streamed into the store and the download stops once more than the cap has come (with a
local Bot API server, files of up to 2,000 MB; python-telegram-bot reads a file whole). Its URL
holds the token (``<base>/file/bot<token>/<path>``), as the paths of a ``--local`` server's
files do: no error raised or logged here names either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import aiohttp
from telegram import Bot
from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut

from channels.attachment_store import store_chunks
from channels.base import TransientChannelError
from channels.telegram.bot import retry_seconds
from channels.telegram.parse import FILE_REF_PREFIX
from gateway.models import Attachment, InboundMessage

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
"""Bytes read at a time: a download reads at most this much past the cap."""
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=20)
"""As the bot's requests (``bot.py``); no total, so a large file may take its time."""


async def download_attachments(
    bot: Bot, inbound: InboundMessage, *, directory: Path, max_bytes: int
) -> InboundMessage:
    """``inbound`` with its Telegram files saved in the attachment store."""
    if not inbound.attachments:
        return inbound
    kept: list[Attachment] = []
    skipped: list[dict[str, object]] = []
    for attachment in inbound.attachments:
        ref = attachment.ref or ""
        if not ref.startswith(FILE_REF_PREFIX):
            kept.append(attachment)
            continue
        stored = await _download(
            bot, attachment, ref.removeprefix(FILE_REF_PREFIX), directory, max_bytes
        )
        if stored is None:
            skipped.append({"filename": attachment.filename, "size": attachment.size})
            kept.append(attachment.model_copy(update={"ref": None}))
        else:
            kept.append(stored)
    meta = dict(inbound.channel_meta)
    if skipped:
        meta["skipped_files"] = skipped
    return inbound.model_copy(update={"attachments": tuple(kept), "channel_meta": meta})


async def _download(
    bot: Bot, attachment: Attachment, file_id: str, directory: Path, max_bytes: int
) -> Attachment | None:
    if attachment.size > max_bytes:
        log.info("attachment over the size cap", extra={"size": attachment.size})
        return None
    try:
        file = await bot.get_file(file_id)
    except BadRequest as exc:
        # "file is too big" and the like: the sender's file, not a fault of ours.
        log.info("attachment not served by Telegram", extra={"error": exc.message})
        return None
    except RetryAfter as exc:
        # Flood control: the file is fine, Telegram asks us to wait.
        raise TransientChannelError(
            "downloading an attachment: flood control", retry_after=retry_seconds(exc)
        ) from None
    except (TimedOut, NetworkError) as exc:
        raise TransientChannelError(f"downloading an attachment: {type(exc).__name__}") from None
    if not file.file_path or (file.file_size is not None and file.file_size > max_bytes):
        return None
    path = await _store(bot, file.file_path, directory, max_bytes)
    if path is None:
        return None
    size = (await asyncio.to_thread(path.stat)).st_size
    return attachment.model_copy(update={"size": size, "ref": str(path)})


async def _store(bot: Bot, file_path: str, directory: Path, max_bytes: int) -> Path | None:
    """The file ``getFile`` named stored, from its URL or a local server's disk."""
    if urlsplit(file_path).scheme in ("http", "https"):
        return await _fetch(file_path, directory, max_bytes)
    if Path(file_path).is_absolute():
        return await _copy_local(Path(file_path), directory, max_bytes)
    # ``Bot.get_file`` leaves a relative path as it is when a file of that name happens to be
    # in our working directory: the file is still the server's.
    return await _fetch(f"{bot.base_file_url}/{file_path}", directory, max_bytes)


async def _fetch(url: str, directory: Path, max_bytes: int) -> Path | None:
    """The file at ``url`` stored; None if over the cap or not served."""
    try:
        # trust_env: a proxy in HTTPS_PROXY is used, as python-telegram-bot's httpx does.
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT, trust_env=True) as http,
            http.get(url) as response,
        ):
            if response.status == 429 or response.status >= 500:
                raise TransientChannelError(f"downloading an attachment: HTTP {response.status}")
            if response.status != 200:
                log.warning("attachment not served by Telegram", extra={"status": response.status})
                return None
            if (response.content_length or 0) > max_bytes:
                return None
            chunks = response.content.iter_chunked(CHUNK)
            path = await store_chunks(directory, chunks, max_bytes=max_bytes)
            if path is None:
                response.close()  # drop the connection rather than read the rest
            return path
    except (aiohttp.ClientError, TimeoutError) as exc:
        # Their messages may name the URL, and with it the token.
        raise TransientChannelError(f"downloading an attachment: {type(exc).__name__}") from None


async def _copy_local(source: Path, directory: Path, max_bytes: int) -> Path | None:
    """A file a ``--local`` Bot API server keeps on a disk we share, stored; None if over the
    cap, or if the server's file may not be read (https://github.com/tdlib/telegram-bot-api#usage).

    Only opening the server's file is forgiven: an ``OSError`` of our own store (its disk full,
    its directory unusable) passes, and the update fails and comes again rather than being
    stored without its file."""
    try:
        file = await asyncio.to_thread(source.open, "rb")
    except OSError as exc:
        # Not a disk we share, most likely: failing the update would lose the customer's words
        # with the file, each time Telegram sent it again. The server keeps a bot's files under
        # a directory named by its token: no path here.
        log.warning(
            "attachment not readable on the Bot API server's disk", extra={"error": exc.strerror}
        )
        return None
    try:
        return await store_chunks(directory, _read(file), max_bytes=max_bytes)
    finally:
        await asyncio.to_thread(file.close)


async def _read(file: BinaryIO) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(file.read, CHUNK):
        yield chunk
