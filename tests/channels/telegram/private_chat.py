"""A customer's private chat with the bot: the updates they send, typed or as a Reply."""

from __future__ import annotations

from typing import Any

from tests.channels.telegram.conftest import Client, load_fixture, post_update

# Every message gets fresh update and message ids: a repeated one is taken for a redelivery.
_next_id = iter(range(2000, 9999))


def text_from(user_id: int, text: str, *, language: str = "en") -> dict[str, Any]:
    """A private message from ``user_id``; a leading ``/word`` is marked as a command."""
    update = load_fixture("private_text")
    n = next(_next_id)
    message = update["message"]
    update["update_id"] = n
    message["message_id"] = n
    message["chat"] = {"id": user_id, "type": "private", "first_name": f"U{user_id}"}
    message["from"] = {
        "id": user_id,
        "is_bot": False,
        "first_name": f"U{user_id}",
        "language_code": language,
    }
    message["text"] = text
    if text.startswith("/"):
        message["entities"] = [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]
    return update


async def say(client: Client, user_id: int, text: str, **kwargs: Any) -> None:
    """``user_id`` sends ``text`` through the webhook, which must take it."""
    assert await post_update(client, text_from(user_id, text, **kwargs)) == 200


def replying_to(user_id: int, text: str, to: dict[str, Any]) -> dict[str, Any]:
    """A private message sent with Telegram's "Reply" to the chat's message ``to``."""
    update = text_from(user_id, text)
    update["message"]["reply_to_message"] = {
        "message_id": to["message_id"],
        "chat": update["message"]["chat"],
        "date": update["message"]["date"],
        "text": to["text"],
    }
    return update
