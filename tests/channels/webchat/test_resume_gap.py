"""Resume and long poll after a message with a lower id committed late (the PostgreSQL gap).

On PostgreSQL a row takes its id from a sequence when it is inserted, but becomes visible when
its transaction commits, in any order: A takes id 100, B takes 101 and commits first, the widget
shows 101, drops its socket, resumes after 101 and, with ``id > after`` alone, never gets 100.
The rows here are written with explicit ids (the higher one first), which shows the same
interleaving on SQLite and PostgreSQL without racing two real transactions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aiohttp import ClientWebSocketResponse

from gateway.models import AuthorType, MessageKind
from gateway.store import Store
from gateway.store.types import utcnow
from tests.channels.webchat.conftest import Chat, message, receive, receive_until, stored_message

MakeChat = Callable[..., Awaitable[Chat]]


async def bot_answer(
    store: Store, ticket_number: str, text: str, *, message_id: int, created_at: datetime
) -> None:
    """Commit a bot answer with the id and ``created_at`` its transaction took earlier."""
    await stored_message(
        store,
        ticket_number,
        text,
        kind=MessageKind.OUTGOING,
        author=AuthorType.BOT,
        message_id=message_id,
        created_at=created_at,
    )


async def resume(ws: ClientWebSocketResponse, after: int) -> tuple[list[dict[str, Any]], int]:
    """The frames of one ``resume`` and the ``resumed`` cursor."""
    await ws.send_json({"type": "resume", "after": after})
    frames: list[dict[str, Any]] = []
    while (frame := await receive(ws))["type"] != "resumed":
        frames.append(frame)
    return frames, frame["after"]


async def poll(chat: Chat, token: str, after: int) -> dict[str, Any]:
    response = await chat.client.get(
        f"/api/v1/webchat/messages?after={after}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 200
    page: dict[str, Any] = await response.json()
    return page


async def started(chat: Chat) -> tuple[str, ClientWebSocketResponse, dict[str, Any]]:
    """A session whose first message (declined by the bot, so nothing else is stored) is acked."""
    token, _ = await chat.session(locale="en")
    ws = await chat.connect(token)
    await ws.send_json(message("my parcel is broken", "gap-1"))
    ack = await receive_until(ws, lambda f: f["type"] == "ack")
    await chat.drain()
    return token, ws, ack


async def shown_then_late(chat: Chat, shown_at: datetime) -> tuple[str, int, int]:
    """B (the higher id) is committed and shown at ``shown_at``, the socket drops, then A (the
    lower id, its clock read 50 ms before B's) commits. Returns the token, A's id and the
    widget's cursor."""
    token, ws, ack = await started(chat)
    first = ack["message_id"]
    late_id, shown_id = first + 10, first + 11
    await bot_answer(chat.store, ack["ticket"], "B", message_id=shown_id, created_at=shown_at)
    frames, upto = await resume(ws, first)
    assert [(f["message_id"], f["text"]) for f in frames if f["message_id"] > first] == [
        (shown_id, "B")
    ]
    assert upto == shown_id
    await ws.close()  # the socket drops for a moment
    late_at = shown_at - timedelta(milliseconds=50)
    await bot_answer(chat.store, ack["ticket"], "A", message_id=late_id, created_at=late_at)
    return token, late_id, upto


async def assert_late_one_arrives(chat: Chat, token: str, late_id: int, upto: int) -> None:
    """Over a new socket's ``resume`` and over the long poll: A comes, the cursor stays."""
    again = await chat.connect(token)
    frames, resumed = await resume(again, upto)
    assert [f["text"] for f in frames if f["message_id"] == late_id] == ["A"]
    assert [f["message_id"] for f in frames] == sorted(f["message_id"] for f in frames)
    assert resumed == upto  # the cursor never goes backwards
    await again.close()
    page = await poll(chat, token, upto)
    assert [m["text"] for m in page["messages"] if m["message_id"] == late_id] == ["A"]
    assert page["after"] == upto


async def test_a_lower_id_committed_after_a_higher_one_was_shown_still_arrives(
    make_chat: MakeChat,
) -> None:
    chat = await make_chat(deliver=False, webchat={"long_poll_seconds": 0.3})
    token, late_id, upto = await shown_then_late(chat, utcnow())
    await assert_late_one_arrives(chat, token, late_id, upto)


async def test_a_late_message_arrives_even_when_the_widget_resumes_long_after(
    make_chat: MakeChat,
) -> None:
    # The widget saw B an hour ago and has been offline since (a closed laptop): A, committed
    # just after B was shown, is still owed although both are older than the settling window.
    chat = await make_chat(deliver=False, webchat={"long_poll_seconds": 0.3})
    token, late_id, upto = await shown_then_late(chat, utcnow() - timedelta(hours=1))
    await assert_late_one_arrives(chat, token, late_id, upto)


async def test_a_message_older_than_the_settling_window_is_not_resent(
    make_chat: MakeChat,
) -> None:
    chat = await make_chat(deliver=False, webchat={"long_poll_seconds": 0.3})
    token, ws, ack = await started(chat)
    first = ack["message_id"]
    old_id, shown_id = first + 10, first + 11
    now = utcnow()
    await bot_answer(chat.store, ack["ticket"], "B", message_id=shown_id, created_at=now)
    _, upto = await resume(ws, first)
    assert upto == shown_id
    # An id at or below the cursor whose clock reading is far older than B's: no transaction
    # of ours stays open that long, so it is not a late commit and is not sent again.
    old_at = now - timedelta(hours=1)
    await bot_answer(chat.store, ack["ticket"], "old", message_id=old_id, created_at=old_at)

    frames, resumed = await resume(ws, upto)
    # The customer's message and B are recent: resent, and dropped by the widget as shown.
    assert [f["message_id"] for f in frames] == [first, shown_id]
    assert resumed == upto
    await ws.close()
    page = await poll(chat, token, upto)
    assert [m["message_id"] for m in page["messages"]] == [first, shown_id]
    assert page["after"] == upto
