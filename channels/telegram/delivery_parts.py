"""The messages one Telegram delivery is sent as, each a call ``part(bot, chat_id)``.

:func:`parts` makes them from an :class:`OutboundMessage`: its text cut to Telegram's length
(the keyboard on the last piece), then its files as photos, videos, songs or voice notes where
Telegram shows or plays them, else documents; the first quotes the customer's message the agent
answers (pointing at it, or, when it is not this chat's, with its words: ``blockquote.py``).
``sender.py`` sends them in order and decides what a failure means; :func:`check_files` lets it
fail a delivery before its first part when a file is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from telegram import Bot, InlineKeyboardMarkup, Message, MessageEntity, ReplyParameters
from telegram.error import BadRequest

from channels.attachment_store import check_stored, read_stored
from channels.telegram.blockquote import Blockquote, blockquote
from channels.telegram.keyboards import choices_keyboard, helpful_keyboard, rating_keyboard
from channels.telegram.split import split_text, utf16_units
from channels.telegram.texts import text
from gateway.models import Attachment, OutboundMessage, OutboxKind

log = logging.getLogger(__name__)

PHOTO_BYTES = 10 * 1024 * 1024
"""``sendPhoto`` takes photos of up to 10 MB (https://core.telegram.org/bots/api#sendphoto);
a larger image goes as a document (up to 50 MB)."""

Part = Callable[[Bot, int], Awaitable[Message]]
"""One message of a delivery, sent by ``part(bot, chat_id)``."""


def parts(msg: OutboundMessage) -> list[Part]:
    """The delivery's messages, in order: its text (cut to Telegram's length, the keyboard on
    the last piece), then its files; the first one quotes the message the agent answers, as a
    person's reply does in Telegram's apps, or starts with its words where it cannot (another
    channel's message, another chat's). The same message gives the same parts on every
    attempt."""
    body = msg.text
    if msg.channel_meta.get("kb_choices") and body.strip():
        body = f"{text('which_one', msg.locale)}\n{body}"
    quoted = _quoted(msg)
    words = blockquote(msg.quoted_text) if quoted is None and msg.quoted_text else None
    lead = words.lead if words else ""
    chunks = split_text(body, ahead=utf16_units(lead)) if body.strip() else []
    markup = _keyboard(msg)
    made: list[Part] = [
        partial(
            _send_text,
            words=lead + chunk if index == 0 else chunk,
            markup=markup if index == len(chunks) - 1 else None,
            reply=quoted if index == 0 else None,
            entities=words.entities if words and index == 0 else None,
        )
        for index, chunk in enumerate(chunks)
    ]
    if made:  # the text quotes; files alone, the first file does
        quoted = words = None
    made.extend(
        partial(
            _send_file,
            attachment=attachment,
            reply=quoted if index == 0 else None,
            caption=words if index == 0 else None,
        )
        for index, attachment in enumerate(msg.attachments)
    )
    return made


def _quoted(msg: OutboundMessage) -> ReplyParameters | None:
    """The customer's message the agent answers, as the Bot API's reply parameters
    (https://core.telegram.org/bots/api#replyparameters), when the agent chose one.

    Its ``message_id`` must be one of this chat's: a private chat's message ids are its own
    count, so one from the contact's other Telegram account would quote an unrelated message.
    ``allow_sending_without_reply``: a message the customer deleted since must not fail the
    answer to it (without it Telegram refuses the send, "message to be replied not found").
    """
    message_id, chat_id = msg.reply_meta.get("message_id"), msg.reply_meta.get("chat_id")
    if not msg.quote or not isinstance(message_id, int) or str(chat_id) != msg.recipient:
        return None
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


async def _send_text(
    bot: Bot,
    chat_id: int,
    *,
    words: str,
    markup: InlineKeyboardMarkup | None,
    reply: ReplyParameters | None = None,
    entities: tuple[MessageEntity, ...] | None = None,
) -> Message:
    return await bot.send_message(
        chat_id, words, reply_markup=markup, reply_parameters=reply, entities=entities
    )


def _keyboard(msg: OutboundMessage) -> InlineKeyboardMarkup | None:
    if msg.ticket_number is None:
        return None
    if msg.kind is OutboxKind.SURVEY:
        return rating_keyboard(msg.ticket_number)
    if msg.kind is OutboxKind.REPLY and msg.channel_meta.get("kb_entry_id") and msg.message_id:
        return helpful_keyboard(msg.message_id, msg.locale)
    if msg.kind is OutboxKind.REPLY and msg.channel_meta.get("kb_choices") and msg.message_id:
        # The bot's "which one?": its text is the questions, one a line (the router's).
        return choices_keyboard(msg.message_id, msg.text.splitlines())
    return None


async def check_files(files: tuple[Attachment, ...]) -> None:
    """Check that ``files`` (those still to go) can be read: one gone from the store fails the
    delivery before its first part goes, not after its text went (which left an admin's retry
    to send the text again). Each is read only when its turn comes: a reply may carry ten
    files of up to 50 MB, and a job has several sends under way."""

    def check_all() -> None:
        for file in files:
            check_stored(file)

    if files:
        await asyncio.to_thread(check_all)


async def _send_file(
    bot: Bot,
    chat_id: int,
    attachment: Attachment,
    reply: ReplyParameters | None = None,
    caption: Blockquote | None = None,
) -> Message:
    """A photo, video, song or voice note as Telegram shows and plays it; anything else, or
    one Telegram refuses that way, as a document (a file to download). ``caption``: the
    quote of the message answered, when the reply is files alone (its caption, 1,024
    characters at most, holds one)."""
    data = await asyncio.to_thread(read_stored, attachment)
    media = _media_method(bot, attachment.content_type, len(data))
    write, read = upload_timeouts(len(data))
    sending: dict[str, Any] = {
        "filename": attachment.filename,
        "write_timeout": write,
        "read_timeout": read,
        "reply_parameters": reply,
    }
    if caption is not None:
        sending.update(caption=caption.words, caption_entities=caption.entities)
    if media is not None:
        try:
            return await media(chat_id, data, **sending)
        except BadRequest as exc:
            # Refused that way (a photo's sides, a user who takes no voice notes): nothing was
            # sent, so it goes as a file.
            log.info(
                "media refused, sending it as a document",
                extra={"content_type": attachment.content_type, "error": exc.message},
            )
    return await bot.send_document(chat_id, data, **sending)


UPLOAD_BYTES_PER_SECOND = 512 * 1024
"""The upload rate a file's send is given time for: PTB's 20 s for any upload timed a 50 MB
file (the largest an agent may attach) out on every try below 2.5 MB/s."""


def upload_timeouts(size: int) -> tuple[float, float]:
    """PTB's write and read timeouts for sending a file of ``size`` bytes: its upload at
    :data:`UPLOAD_BYTES_PER_SECOND`, and Telegram's taking it in, after 20 s each as for any
    request. 50 MB gets 165 s: within RQ's 180 s for a job."""
    return 20 + size / UPLOAD_BYTES_PER_SECOND, 20 + size / (4 * UPLOAD_BYTES_PER_SECOND)


def _media_method(
    bot: Bot, content_type: str, size: int
) -> Callable[..., Awaitable[Message]] | None:
    """The Bot API method that sends a file of this type as media, if one does
    (https://core.telegram.org/bots/api#sendphoto and the methods after it)."""
    if content_type in ("image/jpeg", "image/png"):
        return bot.send_photo if size <= PHOTO_BYTES else None
    if content_type == "video/mp4":  # "Telegram clients support MPEG4 videos"
        return bot.send_video
    if content_type in ("audio/mpeg", "audio/mp4", "audio/x-m4a"):  # "MP3 or M4A format"
        return bot.send_audio
    if content_type == "audio/ogg":  # a voice note: OGG with OPUS
        return bot.send_voice
    return None
