"""Downloading a message's files (photos, documents, voice, video) before it is stored.

Each file goes through ``getFile`` and the Bot API's file URL
(https://core.telegram.org/bots/api#getfile) into the attachment store the email channel uses
too (``<attachment_dir>/<sha256>``, ``ref`` = that path), so a redelivered update writes nothing
new. A file over the size cap, or one Telegram will not serve (``getFile`` stops at 20 MB), is
kept as a name without bytes and listed in ``channel_meta["skipped_files"]``; a network failure
or Telegram's flood control (429) raises :class:`TransientChannelError`, so the update is not
acknowledged and comes again.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from telegram import Bot
from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut

from channels.attachment_store import store_bytes
from channels.base import TransientChannelError
from channels.telegram.bot import retry_seconds
from channels.telegram.parse import FILE_REF_PREFIX
from gateway.models import Attachment, InboundMessage

log = logging.getLogger(__name__)


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
        if file.file_size is not None and file.file_size > max_bytes:
            return None
        data = bytes(await file.download_as_bytearray())
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
    if len(data) > max_bytes:
        return None
    path = await asyncio.to_thread(store_bytes, directory, data)
    return attachment.model_copy(update={"size": len(data), "ref": str(path)})
