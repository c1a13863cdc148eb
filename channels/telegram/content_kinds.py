"""What a customer sends in Telegram that is neither words nor a file we fetch (a dice, a poll, a
forwarded story, a checklist, paid media, ...), made into the lines an agent reads.

Pure, like ``parse.py``, which calls it: :func:`shown` for the kinds we know, :func:`unknown`
for a message holding nothing we can show. The Bot API's objects are documented at
https://core.telegram.org/bots/api#message; each kind's name is the message's field, and
becomes the stored message's ``text_from`` (made here, so for people, not the knowledge base)
and the ``channel_meta`` key keeping what an agent or a report may want of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

UNKNOWN = "unknown_kind"
"""The ``text_from`` (and ``channel_meta`` key) of a message of a kind we cannot show."""

ENVELOPE = frozenset(
    {
        "message_id",
        "message_thread_id",
        "direct_messages_topic",
        "is_topic_message",
        "from",
        "sender_chat",
        "sender_boost_count",
        "sender_business_bot",
        "sender_tag",
        "business_connection_id",
        "is_from_offline",
        "date",
        "edit_date",
        "chat",
        "forward_origin",
        # Before Bot API 7.0, a forward said where it came from in these.
        "forward_from",
        "forward_from_chat",
        "forward_from_message_id",
        "forward_signature",
        "forward_sender_name",
        "forward_date",
        "is_automatic_forward",
        "reply_to_message",
        "external_reply",
        "quote",
        "reply_to_story",
        "reply_to_checklist_task_id",
        "reply_to_poll_option_id",
        "via_bot",
        "guest_bot_caller_user",
        "guest_bot_caller_chat",
        "guest_query_id",
        "has_protected_content",
        "is_paid_post",
        "paid_star_count",
        "suggested_post_info",
        "media_group_id",
        "author_signature",
        "entities",
        "caption_entities",
        "link_preview_options",
        "effect_id",
        "show_caption_above_media",
        "has_media_spoiler",
        "reply_markup",
    }
)
"""A message's fields about it (who, when, where, what it replies to or was forwarded from,
how it looks), not what it holds."""

SERVICE = frozenset(
    {
        # Telegram's own notes in a private chat: nobody wrote them to us.
        "pinned_message",
        "message_auto_delete_timer_changed",
        "write_access_allowed",
        "connected_website",
        "successful_payment",
        "refunded_payment",
        "passport_data",
        "proximity_alert_triggered",
        "chat_background_set",
        "checklist_tasks_done",
        "checklist_tasks_added",
        "boost_added",
        "direct_message_price_changed",
        "paid_message_price_changed",
        "gift_upgrade_sent",
        "giveaway_created",
        "giveaway_completed",
        "poll_option_added",
        "poll_option_deleted",
        "managed_bot_created",
        "suggested_post_approved",
        "suggested_post_approval_failed",
        "suggested_post_declined",
        "suggested_post_paid",
        "suggested_post_refunded",
        "forum_topic_created",
        "forum_topic_edited",
        "forum_topic_closed",
        "forum_topic_reopened",
        "general_forum_topic_hidden",
        "general_forum_topic_unhidden",
        # A group's: ignored as a group's message before this is asked, listed so that one
        # reaching a private chat by mistake is not taken for content.
        "new_chat_members",
        "left_chat_member",
        "new_chat_title",
        "new_chat_photo",
        "delete_chat_photo",
        "group_chat_created",
        "supergroup_chat_created",
        "channel_chat_created",
        "migrate_to_chat_id",
        "migrate_from_chat_id",
        "video_chat_scheduled",
        "video_chat_started",
        "video_chat_ended",
        "video_chat_participants_invited",
        "chat_owner_changed",
        "chat_owner_left",
    }
)
"""Service messages: what happened in the chat, which no one sent (ignored, counted as
``unsupported_message``)."""

_WORDS = frozenset({"text", "caption"})


@dataclass(frozen=True, slots=True)
class Shown:
    """A message's content as an agent reads it."""

    kind: str
    """The message's field it came from (``"story"``), or :data:`UNKNOWN`."""
    text: str
    """The lines an agent reads ("📖 A story from Shop News")."""
    meta: dict[str, Any]
    """What is kept of it, in ``channel_meta[kind]``."""


def shown(message: Mapping[str, Any]) -> Shown | None:
    """The message's content of a kind we show as text, or None when it holds none."""
    for kind, render in _KINDS.items():
        if kind in message:
            try:
                text, meta = render(message[kind])
            except (AttributeError, KeyError, TypeError, ValueError):
                # Not the shape we read (a later Bot API's gift, say): stored as a kind we
                # cannot show, named, where the whole update was refused as malformed.
                return _not_shown([kind])
            return Shown(kind, text, meta)
    return None


def unknown(message: Mapping[str, Any]) -> Shown | None:
    """A message with no words, no file and nothing :func:`shown` knows: what it is, when the
    customer sent it; None for a service message (or one holding nothing at all).

    The rule: a Bot API message has one field saying what it is (``text``, ``photo``,
    ``story``) among fields about it (:data:`ENVELOPE`), or it is a service message
    (:data:`SERVICE`). What remains without the envelope is what the customer sent: its name is
    all we can tell an agent, who at least sees that the customer wrote and can ask. A field
    Telegram adds tomorrow is in neither list, so it counts as content: a new kind of message
    is stored, not lost, and a new service note costs an agent a look; a new field about the
    message shows beside the kind's name, and changes nothing on a message we can show.
    """
    keys = set(message)
    if keys & SERVICE:
        return None
    fields = sorted(keys - ENVELOPE - _WORDS)
    return _not_shown(fields) if fields else None


def _not_shown(fields: list[str]) -> Shown:
    text = f"A Telegram message of a kind the gateway cannot show yet ({', '.join(fields)})"
    return Shown(UNKNOWN, text, {"fields": fields})


def _dice(dice: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A dice (or dart, ball, slot machine) the user threw: its emoji and the value Telegram
    drew (https://core.telegram.org/bots/api#dice), as the line an agent reads ("🎲 5")."""
    emoji, value = str(dice["emoji"]), int(dice["value"])
    return f"{emoji} {value}", {"emoji": emoji, "value": value}


def _poll(poll: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A poll the user sent: its question and options (https://core.telegram.org/bots/api#poll),
    a line each, as an agent reads it; votes are not followed (a poll's later updates come
    only for the bot's own polls)."""
    question = str(poll["question"])
    options = [str(option["text"]) for option in poll["options"]]
    text = "\n".join([f"📊 {question}", *(f"- {option}" for option in options)])
    return text, {"question": question, "options": options}


def _story(story: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A forwarded story: Telegram sends only whose it is and its id
    (https://core.telegram.org/bots/api#story), not what it shows."""
    chat = story["chat"]
    who = _chat_name(chat)
    meta = {"chat_id": int(chat["id"]), "id": int(story["id"]), "from": who}
    return f"📖 A story from {who}", meta


def _checklist(checklist: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A checklist (Bot API 9.1): its title, and a line a task, ticked when done. A task not
    done has no ``completed_by_*`` and a ``completion_date`` of 0 or none
    (https://core.telegram.org/bots/api#checklisttask)."""
    title = str(checklist["title"])
    tasks = [
        {
            "id": int(task["id"]),
            "text": str(task["text"]),
            "done": bool(
                task.get("completion_date")
                or task.get("completed_by_user")
                or task.get("completed_by_chat")
            ),
        }
        for task in checklist["tasks"]
    ]
    lines = [f"- [{'x' if task['done'] else ' '}] {task['text']}" for task in tasks]
    return "\n".join([f"☑️ {title}", *lines]), {"title": title, "tasks": tasks}


def _paid_media(paid: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Photos or videos the customer must be paid Telegram Stars to open
    (https://core.telegram.org/bots/api#paidmediainfo): how many, and the price."""
    stars = int(paid["star_count"])
    types = [str(item["type"]) for item in paid["paid_media"]]
    text = f"⭐ Paid media ({_count(len(types), 'item')}, {_count(stars, 'star')})"
    return text, {"star_count": stars, "types": types}


def _game(game: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A game, sent through an inline bot (https://core.telegram.org/bots/api#game)."""
    title = str(game["title"])
    return f"🎮 {title}", {"title": title, "description": str(game.get("description") or "")}


def _invoice(invoice: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """An invoice, sent through an inline bot (https://core.telegram.org/bots/api#invoice),
    with its total in the currency's units."""
    title, currency = str(invoice["title"]), str(invoice["currency"])
    total = int(invoice["total_amount"])
    meta = {
        "title": title,
        "description": str(invoice.get("description") or ""),
        "currency": currency,
        "total_amount": total,
    }
    return f"🧾 {title}: {_amount(total, currency)} {currency}", meta


def _giveaway(giveaway: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A channel's giveaway, forwarded (https://core.telegram.org/bots/api#giveaway)."""
    winners = int(giveaway["winner_count"])
    prize = str(giveaway.get("prize_description") or "")
    text = f"🎁 A giveaway ({_count(winners, 'winner')})" + (f"\n{prize}" if prize else "")
    meta = {
        "winner_count": winners,
        "prize_description": prize,
        "winners_selection_date": int(giveaway["winners_selection_date"]),
    }
    return text, meta


def _giveaway_winners(won: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A giveaway's winners, forwarded (https://core.telegram.org/bots/api#giveawaywinners)."""
    names = [_person(user) for user in won["winners"]]
    text = f"🎁 A giveaway's winners: {', '.join(names)}"
    return text, {"winner_count": int(won["winner_count"]), "winners": names}


def _users_shared(shared: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """People the customer picked to share (https://core.telegram.org/bots/api#usersshared)."""
    keys = ("user_id", "first_name", "last_name", "username")
    users = [{key: user[key] for key in keys if key in user} for user in shared["users"]]
    names = [_person({"id": user["user_id"], **user}) for user in users]
    return f"👤 {', '.join(names)}", {"users": users}


def _chat_shared(shared: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A chat the customer picked to share (https://core.telegram.org/bots/api#chatshared)."""
    meta = {key: shared[key] for key in ("chat_id", "title", "username") if key in shared}
    return f"👥 {_chat_name({'id': shared['chat_id'], **meta})}", meta


def _gift(info: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A gift the customer sent (https://core.telegram.org/bots/api#giftinfo), with the words
    they wrote on it."""
    gift = info["gift"]
    emoji = str((gift.get("sticker") or {}).get("emoji") or "")
    words = str(info.get("text") or "")
    text = "🎁 A gift" + (f" {emoji}" if emoji else "") + (f"\n{words}" if words else "")
    return text, {"id": str(gift["id"]), "star_count": int(gift["star_count"]), "text": words}


def _unique_gift(info: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A unique gift the customer sent (https://core.telegram.org/bots/api#uniquegiftinfo)."""
    gift = info["gift"]
    name, number = str(gift["base_name"]), int(gift["number"])
    meta = {"name": str(gift["name"]), "base_name": name, "number": number}
    return f"🎁 A gift: {name} #{number}", meta


def _web_app_data(data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """What a Web App sent from the customer's chat (https://core.telegram.org/bots/api#webappdata),
    under the label of the button that opened it."""
    button, sent = str(data["button_text"]), str(data["data"])
    return f"🌐 {button}\n{sent}", {"button_text": button, "data": sent}


_KINDS: dict[str, Callable[[Any], tuple[str, dict[str, Any]]]] = {
    "dice": _dice,
    "poll": _poll,
    "story": _story,
    "checklist": _checklist,
    "paid_media": _paid_media,
    "game": _game,
    "invoice": _invoice,
    "giveaway": _giveaway,
    "giveaway_winners": _giveaway_winners,
    "users_shared": _users_shared,
    "chat_shared": _chat_shared,
    "gift": _gift,
    "unique_gift": _unique_gift,
    "web_app_data": _web_app_data,
}

# Telegram's payments count amounts in a currency's smallest units, as many decimals as its
# ``exp`` in https://core.telegram.org/bots/payments/currencies.json: 0 for these (and Telegram
# Stars, XTR, counted whole), 2 for the rest of its list. The ISO 4217 currencies of three
# decimals are not in that list; should Telegram add one, it keeps its three.
_WHOLE_UNITS = frozenset({"CLP", "ISK", "JPY", "KRW", "PYG", "UGX", "VND", "XTR"})
_THOUSANDTHS = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})


def _amount(total: int, currency: str) -> str:
    """``total`` smallest units of ``currency`` in its units: 1250 USD is "12.50"."""
    exp = 0 if currency in _WHOLE_UNITS else 3 if currency in _THOUSANDTHS else 2
    return f"{Decimal(total).scaleb(-exp):.{exp}f}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _chat_name(chat: Mapping[str, Any]) -> str:
    """A chat as people know it: its title, else @username, else its person's name, else id."""
    if chat.get("title"):
        return str(chat["title"])
    if chat.get("username"):
        return f"@{chat['username']}"
    return _person(chat)


def _person(user: Mapping[str, Any]) -> str:
    """A person as an agent finds them: "Ann Lee (@ann)", else their name, @username or id."""
    name = " ".join(str(user[key]) for key in ("first_name", "last_name") if user.get(key))
    handle = f"@{user['username']}" if user.get("username") else ""
    if name and handle:
        return f"{name} ({handle})"
    return name or handle or str(user["id"])
