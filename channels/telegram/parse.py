"""Telegram ``Update`` JSON -> :class:`InboundMessage`, or the reason it is ignored.

Pure: no network, no database. The Bot API's objects are documented at
https://core.telegram.org/bots/api#update; we read the raw JSON (not PTB's ``Update.de_json``)
because the webhook hot path needs only a few fields.

What comes out, by ``channel_meta``:

- a private message: ``update_id``, ``chat_id``, ``message_id``; plus ``command`` and
  ``command_args`` for ``/start``, ``/status``, ``/new``, ``/human``, ``/help`` (and any other
  command sent alone, as ``help``), unless addressed to another bot (``/status@other_bot``:
  then it is the customer's text); ``contact`` for a shared
  contact; ``location`` (``latitude``, ``longitude``, a venue's ``title`` and ``address``) for
  a shared location, whose text is the place and a map link; ``files`` (Telegram's
  ``file_unique_id`` of each file) for a message with files; ``edit_date`` for an edited
  message (same ``external_id`` as the original; a live location's moves and edited commands
  are ignored);
- ``username``, the sender's Telegram username without its ``@``, or ``""`` when they have
  none (it is optional and can change: the console shows their latest message's, so one
  removed is no longer shown; an agent finds the person by it);
- ``reply_to`` when the user replied to one of the chat's messages (Telegram's "Reply");
- ``part_of``, Telegram's ``media_group_id``, for a photo or file sent in an album: Telegram
  sends a message per item, the caption on one of them, and the router routes the caption for
  them all (``gateway/parts.py``);
- a sticker is a file (WebP, WebM or Telegram's .tgs) with its emoji as the text;
- what is neither words nor a file (``content_kinds.py``), under its kind's name, its text
  the lines an agent reads: ``dice`` (``emoji``, ``value``), "🎲 5"; ``poll`` (``question``,
  ``options``), its question and an option a line; a forwarded ``story``, whose it is; a
  ``checklist``, its title and a line a task, ticked when done; ``paid_media``, how many and
  the price; a ``game``, an ``invoice``, a ``giveaway`` or ``giveaway_winners``, people or a
  chat shared (``users_shared``, ``chat_shared``), a ``gift`` or ``unique_gift``,
  ``web_app_data``. A message of a kind we do not know is stored as one ("... cannot show yet
  (<field>)", ``unknown_kind``: its ``fields``); a service message (a pin, a payment, a
  timer) is ignored, as ``unsupported_message``;
- ``text_from`` (``"location"``, ``"sticker"``, each of those kinds' names, or ``"contact"``
  for someone else's contact card, whose text is their name and number) when the text was
  made here, not written: the router does not put it to the knowledge base (nor the words
  after ``/human``, which ``commands.py`` stores with ``text_from = "human"``: written for
  people);
- a callback query from one of our inline keyboards: ``callback_query_id``, ``callback_data``;
- the user blocking or unblocking the bot (``my_chat_member`` in a private chat):
  ``member_status``, the bot's new status in the chat (``"kicked"`` or ``"member"``).

Attachments carry ``ref = "telegram-file:<file_id>"`` until they are downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from channels.base import ChannelInputError
from channels.telegram.content_kinds import Shown, shown, unknown
from gateway.models import Attachment, Channel, InboundMessage

COMMANDS = frozenset({"start", "status", "new", "human", "help"})
FILE_REF_PREFIX = "telegram-file:"
_PRIVATE = "private"
_GROUPS = frozenset({"group", "supergroup"})
_CHANNEL_UPDATES = ("channel_post", "edited_channel_post")


@dataclass(frozen=True, slots=True)
class Ignored:
    """An update we do not turn into a message; ``reason`` labels the rejected counter."""

    update_id: int
    reason: str
    chat_id: int | None = None
    """The group's chat, when the reason is ``group`` (it gets a one-time explanation)."""
    linked_chat_id: int | None = None
    """The group's other id, when this is the service message of its upgrade to a supergroup
    (``migrate_from_chat_id`` in the new chat, ``migrate_to_chat_id`` in the old one)."""


def parse_update(
    update: Mapping[str, Any], *, max_bytes: int | None = None, bot_username: str | None = None
) -> InboundMessage | Ignored:
    """Turn one Telegram update into an inbound message, or say why it is ignored.

    Args:
        update: the update's JSON.
        max_bytes: the attachment size cap: of the sizes Telegram made of a photo, the largest
            under it is taken (the largest of all when none is, or with no cap).
        bot_username: our bot's username (``getMe``): a command addressed to another
            (``/status@other_bot``) is text. Needed only when :func:`addressee` names one;
            without it every command is taken for ours.

    Raises:
        ChannelInputError: the JSON is not an update we can read.
    """
    try:
        update_id = int(update["update_id"])
        if "message" in update:
            return _message(
                update_id, update["message"], False, max_bytes=max_bytes, bot=bot_username
            )
        if "edited_message" in update:
            return _message(
                update_id, update["edited_message"], True, max_bytes=max_bytes, bot=bot_username
            )
        if "callback_query" in update:
            return _callback(update_id, update["callback_query"])
        if "my_chat_member" in update:
            return _membership(update_id, update["my_chat_member"])
        for kind in _CHANNEL_UPDATES:
            if kind in update:
                return Ignored(update_id, "channel_post", update[kind]["chat"]["id"])
        return Ignored(update_id, "unsupported_update")
    except (AttributeError, KeyError, TypeError, ValueError, ValidationError) as exc:
        # Valid JSON of the wrong shape (a string where the Bot API has an object: ``"from"``,
        # an entity, a sticker) fails on its first ``.get`` or ``[...]``: the update is the
        # sender's fault, acknowledged and counted, not a 500 Telegram would redeliver forever.
        raise ChannelInputError("malformed_update", type(exc).__name__) from exc


def addressee(update: Mapping[str, Any]) -> str | None:
    """The bot a command starting the update's message is addressed to (``/status@shop_bot``:
    ``shop_bot``), or None (no command, or one with no ``@``, or an update of another shape).

    Telegram's apps add the name when a command is picked in a chat with several bots, and it
    stays on when the command is copied into another chat
    (https://core.telegram.org/bots/features#commands)."""
    message = update.get("message") or update.get("edited_message")
    try:
        found = _command_token(message) if isinstance(message, Mapping) else None
    except (AttributeError, KeyError, TypeError, ValueError):
        return None  # malformed: parse_update says so
    if found is None or "@" not in found[0]:
        return None
    return found[0].split("@", 1)[1]


def _message(
    update_id: int,
    message: Mapping[str, Any],
    edited: bool,
    *,
    max_bytes: int | None,
    bot: str | None,
) -> InboundMessage | Ignored:
    chat = message["chat"]
    chat_id = int(chat["id"])
    if chat["type"] in _GROUPS:
        linked = message.get("migrate_from_chat_id") or message.get("migrate_to_chat_id")
        return Ignored(update_id, "group", chat_id, int(linked) if linked else None)
    if chat["type"] != _PRIVATE:
        return Ignored(update_id, "channel_post", chat_id)
    sender = message.get("from")
    if not sender or sender.get("is_bot"):
        return Ignored(update_id, "from_bot")
    meta: dict[str, Any] = {
        "update_id": update_id,
        "chat_id": chat_id,
        "message_id": int(message["message_id"]),
    }
    meta["username"] = _username(sender)
    if message.get("media_group_id"):
        meta["part_of"] = str(message["media_group_id"])
    replied = message.get("reply_to_message")
    if replied and "message_id" in replied:
        meta["reply_to"] = int(replied["message_id"])  # this chat's message it answers
    command = _command(message, bot)
    if edited:
        if "location" in message:
            # A live location moves by editing its message, every few seconds for up to a
            # day: the position first shared stays; its moves are not edits of what was said.
            return Ignored(update_id, "live_location")
        if command is not None and not _command_words(message["text"], command[1]):
            # A command is answered, not stored: its edit has no message to change.
            return Ignored(update_id, "edited_command")
        meta["edit_date"] = int(message.get("edit_date") or message["date"])
    text = message.get("text") or message.get("caption") or ""
    if text:
        entities = message.get("entities" if message.get("text") else "caption_entities")
        text = _with_links(text, entities)
    if edited and command is not None:
        # Only the words after a command may be stored (``/human my parcel G-123``, under the
        # command's ids): the edit corrects them, and changes nothing if there are none
        # ("/status please" stored would open a ticket with it as the question).
        meta["command_edit"] = command[0]
        text = _command_words(text, command[1])
    if not text and "location" in message:
        text, meta["location"] = _location(message)
        meta["text_from"] = "location"
    elif not text and "sticker" in message:
        text = str(message["sticker"].get("emoji") or "")
        meta["text_from"] = "sticker"
    elif (content := shown(message)) is not None:
        # A paid media's caption, the only words one of these can carry, follows its line.
        text = _made(meta, content, text)
    if command is not None and not edited:
        meta["command"] = command[0]
        meta["command_args"] = _command_words(text, command[1])
    phone = None
    phone_verified = False
    if "contact" in message:
        shared = message["contact"]
        phone = _phone(str(shared["phone_number"]))
        # Only the person themself can share a contact whose user_id is their own id: that makes
        # the number theirs (https://core.telegram.org/bots/api#contact).
        phone_verified = shared.get("user_id") == sender["id"]
        meta["contact"] = {
            "phone": phone,
            "first_name": shared.get("first_name"),
            "user_id": shared.get("user_id"),
        }
        if not phone_verified:
            # Someone else's number: kept in the metadata, not put on this contact, and a line
            # an agent reads ("call my colleague"), which the router hands to people.
            name = " ".join(str(shared.get(k) or "") for k in ("first_name", "last_name")).strip()
            text = f"📇 {name}: {phone}" if name else f"📇 {phone}"
            meta["text_from"] = "contact"
            phone = None
    attachments, file_ids = _attachments(message, max_bytes)
    if attachments:
        # Telegram's lasting ids of the files: an edit that replaces the file changes them.
        meta["files"] = file_ids
    if not text and not attachments and "contact" not in message:
        content = unknown(message)
        if content is None:
            return Ignored(update_id, "unsupported_message")  # a service message
        # Something the customer sent that we cannot show: stored, so an agent sees that they
        # wrote and can ask, where it was dropped.
        text = _made(meta, content, "")
    return InboundMessage(
        channel=Channel.TELEGRAM,
        external_id=f"{chat_id}:{meta['message_id']}",
        external_user_id=str(sender["id"]),
        text=text,
        thread_key=str(chat_id),
        sender_name=_name(sender),
        phone=phone,
        phone_verified=phone_verified,
        locale=sender.get("language_code"),
        attachments=attachments,
        channel_meta=meta,
    )


def _made(meta: dict[str, Any], content: Shown, written: str) -> str:
    """The text of a message whose content is made into words here: they are marked so
    (``text_from``: for people, not the knowledge base), the content kept under its kind."""
    meta[content.kind] = content.meta
    meta["text_from"] = content.kind
    return f"{content.text}\n{written}" if written else content.text


def _callback(update_id: int, query: Mapping[str, Any]) -> InboundMessage:
    sender = query["from"]
    message = query.get("message") or {}
    chat_id = int(message["chat"]["id"]) if "chat" in message else int(sender["id"])
    meta: dict[str, Any] = {
        "update_id": update_id,
        "chat_id": chat_id,
        "callback_query_id": str(query["id"]),
        "callback_data": str(query.get("data") or ""),
    }
    if "message_id" in message:
        meta["message_id"] = int(message["message_id"])
    return _wordless(f"cb:{query['id']}", sender, chat_id, meta)


def _membership(update_id: int, change: Mapping[str, Any]) -> InboundMessage | Ignored:
    """The bot's status in a chat changed: in a private chat, Telegram sends this only when the
    user blocks the bot or unblocks it (https://core.telegram.org/bots/api#update). In a group
    the bot was added or removed: counted, with no explanation (it may no longer be there)."""
    chat = change["chat"]
    if chat["type"] != _PRIVATE:
        return Ignored(update_id, "group" if chat["type"] in _GROUPS else "channel_post")
    chat_id = int(chat["id"])
    meta = {
        "update_id": update_id,
        "chat_id": chat_id,
        "member_status": str(change["new_chat_member"]["status"]),
    }
    return _wordless(f"member:{update_id}", change["from"], chat_id, meta)


def _wordless(
    external_id: str, sender: Mapping[str, Any], chat_id: int, meta: dict[str, Any]
) -> InboundMessage:
    """What the user did without writing (a button press, a block): who, where, and what."""
    return InboundMessage(
        channel=Channel.TELEGRAM,
        external_id=external_id,
        external_user_id=str(sender["id"]),
        thread_key=str(chat_id),
        sender_name=_name(sender),
        locale=sender.get("language_code"),
        # The username too: a press can be stored as the customer's message (a question
        # picked from a list), the latest, which then decides the name shown.
        channel_meta={**meta, "username": _username(sender)},
    )


def _command(message: Mapping[str, Any], bot: str | None) -> tuple[str, int] | None:
    """A ``/command`` at the start of the text, marked by a ``bot_command`` entity: its name
    and its length (the words after it are :func:`_command_words`).

    Telegram marks commands only through entities; a text that merely starts with ``/`` is not
    one (https://core.telegram.org/bots/api#messageentity). One of ours is that command; any
    other alone (``/help``, which Telegram's apps suggest, ``/settings``, ``/cancel``) is
    ``help``: answered with what the bot can do, where stored it opened a ticket of "/help"
    for an agent. Another with words after it stays a message: "/order42 never came". So does
    one addressed to a bot other than ``bot`` (usernames compare without case, as Telegram's
    do): "/status@other_bot" was answered as ours, the customer's words lost.
    """
    found = _command_token(message)
    if found is None:
        return None
    token, length = found
    name, _, to = token[1:].partition("@")
    if to and bot is not None and to.lower() != bot.lower():
        return None
    name = name.lower()
    if name in COMMANDS:
        return name, length
    if not str(message.get("text") or "")[length:].strip():
        return "help", length
    return None


def _command_token(message: Mapping[str, Any]) -> tuple[str, int] | None:
    """The ``bot_command`` entity starting the text (``/status@shop_bot``), and its length."""
    text = message.get("text") or ""
    for entity in message.get("entities") or ():
        if entity.get("type") == "bot_command" and entity.get("offset") == 0:
            length = int(entity["length"])
            return text[:length], length
    return None


def _command_words(text: str, length: int) -> str:
    """The words after the command (``length`` long) in ``text``: the message's, its links'
    addresses added after the command (plain ASCII at the start), without NUL."""
    return text[length:].strip().replace("\x00", "")


def _with_links(text: str, entities: Any) -> str:
    """``text`` with each text link's address after its words ("the form (https://...)"):
    Telegram sends the address beside the text, and agents saw only the words. Entity
    offsets count UTF-16 code units (https://core.telegram.org/api/entities)."""
    links = sorted(
        (int(e["offset"]), int(e["length"]), str(e["url"]))
        for e in entities or ()
        if e.get("type") == "text_link" and e.get("url")
    )
    if not links:
        return text
    units = text.encode("utf-16-le", "surrogatepass")
    pieces, cursor = [], 0
    for offset, length, url in links:
        end = max(cursor, min(len(units), 2 * (offset + length)))
        pieces += [units[cursor:end].decode("utf-16-le", "replace"), f" ({url})"]
        cursor = end
    pieces.append(units[cursor:].decode("utf-16-le", "replace"))
    return "".join(pieces)


def _location(message: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A shared location (or a venue: a named place) as a line an agent reads, with a map
    link, and as metadata."""
    point = message["location"]
    latitude, longitude = float(point["latitude"]), float(point["longitude"])
    meta: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    place = f"{latitude:.6f}, {longitude:.6f}"
    venue = message.get("venue")
    if venue:
        meta.update(title=str(venue.get("title") or ""), address=str(venue.get("address") or ""))
        place = ", ".join(part for part in (meta["title"], meta["address"]) if part) or place
    link = (
        f"https://www.openstreetmap.org/?mlat={latitude:.6f}&mlon={longitude:.6f}"
        f"#map=17/{latitude:.6f}/{longitude:.6f}"
    )
    return f"📍 {place}\n{link}", meta


def _attachments(
    message: Mapping[str, Any], max_bytes: int | None
) -> tuple[tuple[Attachment, ...], list[str]]:
    """The message's files, and Telegram's ``file_unique_id`` of each, in the same order."""
    found = []
    items: list[Mapping[str, Any]] = []
    if message.get("photo"):
        photo = _photo_size(message["photo"], max_bytes)
        found.append(_file(photo, f"photo_{photo['file_unique_id']}.jpg", "image/jpeg"))
        items.append(photo)
    sticker = message.get("sticker")
    if sticker:
        # A still sticker is a WebP image, a video sticker WebM, an animated one Telegram's
        # own gzipped Lottie (.tgs), which only Telegram apps play.
        if sticker.get("is_animated"):
            content_type, extension = "application/x-tgsticker", ".tgs"
        elif sticker.get("is_video"):
            content_type, extension = "video/webm", ".webm"
        else:
            content_type, extension = "image/webp", ".webp"
        name = f"sticker_{sticker['file_unique_id']}{extension}"
        found.append(_file(sticker, name, content_type))
        items.append(sticker)
    for kind, default_type, extension in (
        ("document", "application/octet-stream", ""),
        ("voice", "audio/ogg", ".ogg"),
        ("audio", "audio/mpeg", ".mp3"),
        ("video", "video/mp4", ".mp4"),
        ("video_note", "video/mp4", ".mp4"),
    ):
        item = message.get(kind)
        if item:
            name = item.get("file_name") or f"{kind}_{item['file_unique_id']}{extension}"
            found.append(_file(item, name, item.get("mime_type") or default_type))
            items.append(item)
    return tuple(found), [str(item["file_unique_id"]) for item in items]


def _photo_size(sizes: Sequence[Mapping[str, Any]], max_bytes: int | None) -> Mapping[str, Any]:
    """Telegram sends every size it made of a photo, smallest first
    (https://core.telegram.org/bots/api#photosize): the largest known to be under the cap,
    where taking the largest of all kept none when it was over. ``file_size`` is optional: with
    none known to fit, the largest of unknown size (the download checks), else the largest."""
    if max_bytes is not None:
        fitting = [s for s in sizes if s.get("file_size") and int(s["file_size"]) <= max_bytes]
        if fitting:
            return fitting[-1]
        unknown = [s for s in sizes if not s.get("file_size")]
        if unknown:
            return unknown[-1]
    return sizes[-1]


def _file(item: Mapping[str, Any], filename: str, content_type: str) -> Attachment:
    return Attachment(
        filename=filename,
        content_type=content_type,
        size=int(item.get("file_size") or 0),
        ref=FILE_REF_PREFIX + str(item["file_id"]),
    )


def _username(user: Mapping[str, Any]) -> str:
    """The user's Telegram username without its ``@``, or "" when they have none: said either
    way, so the latest message shows a name removed (``directory_routes.latest_usernames``)."""
    username = user.get("username")
    return username if isinstance(username, str) else ""


def _name(user: Mapping[str, Any]) -> str | None:
    parts = [user.get("first_name"), user.get("last_name")]
    name = " ".join(p for p in parts if p)
    return name or None


def _phone(number: str) -> str:
    """E.164 with its ``+``: Telegram sends the digits, sometimes without the plus."""
    digits = number.strip().replace(" ", "").replace("-", "")
    return digits if digits.startswith("+") else "+" + digits
