"""An agent's reply to one of the customer's messages quotes its words: live, on resume and in
the long poll; never the words of another conversation's message, whatever id a reply names."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientWebSocketResponse
from sqlalchemy import event

from channels.webchat.state import WEBCHAT
from channels.webchat.tokens import verify_token
from tests.channels.webchat.conftest import (
    Chat,
    agent_reply,
    delivered,
    message,
    receive,
    receive_until,
)

MakeChat = Callable[..., Awaitable[Chat]]
ASKED = "  refund — I want a person\n"
QUOTE = "refund — I want a person"


async def resumed(ws: ClientWebSocketResponse, after: int = 0) -> list[dict[str, Any]]:
    """Every message frame of a resume from ``after``."""
    await ws.send_json({"type": "resume", "after": after})
    frames: list[dict[str, Any]] = []
    while (frame := await receive(ws))["type"] != "resumed":
        frames.append(frame)
    return frames


async def long_polled(chat: Chat, token: str) -> list[dict[str, Any]]:
    page = await chat.client.get(
        "/api/v1/webchat/messages?after=0", headers={"Authorization": f"Bearer {token}"}
    )
    assert page.status == 200, await page.text()
    messages: list[dict[str, Any]] = (await page.json())["messages"]
    return messages


def agents(frames: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(f["text"], f.get("quote")) for f in frames if f["author"] == "agent"]


async def test_resume_and_long_poll_quote_what_a_reply_answers_as_live_frames_do(
    chat: Chat,
) -> None:
    token, _ = await chat.session(locale="en")
    ws = await chat.connect(token)
    await ws.send_json(message(ASKED, "q-1", handoff=True))
    ack = await receive_until(ws, lambda f: f["type"] == "ack")
    await agent_reply(chat.store, ack["ticket"], "About the refund:", reply_to=ack["message_id"])
    live = await receive_until(ws, lambda f: f.get("author") == "agent")
    await agent_reply(chat.store, ack["ticket"], "Anything else?")
    await receive_until(ws, lambda f: f.get("author") == "agent")
    await delivered(chat.store)
    await ws.close()
    assert live["quote"] == QUOTE

    expected = [("About the refund:", QUOTE), ("Anything else?", None)]
    again = await chat.connect(token)  # a reload: the widget resumes from nothing shown
    frames = await resumed(again)
    assert agents(frames) == expected
    quoting = next(f for f in frames if f.get("quote"))
    event_only = {"kind", "template"}  # what a live event adds to the stored message
    assert {k: v for k, v in quoting.items() if k not in event_only} == {
        k: v for k, v in live.items() if k not in event_only
    }
    assert "quote" not in next(f for f in frames if f["author"] == "customer")
    await again.close()
    assert agents(await long_polled(chat, token)) == expected


async def test_a_reply_naming_another_conversations_message_quotes_nothing(chat: Chat) -> None:
    """Regression guard: the quote is looked up by the id a reply stores; an id of another
    session's message (or of anything but the customer's message on the reply's ticket) must
    never bring its words into this conversation."""
    token_a, _ = await chat.session()
    token_b, _ = await chat.session()
    ws_b = await chat.connect(token_b)
    await ws_b.send_json(message("secret of B: card 4111", "b-1", handoff=True))
    ack_b = await receive_until(ws_b, lambda f: f["type"] == "ack")
    await ws_b.close()
    ws_a = await chat.connect(token_a)
    await ws_a.send_json(message("hello from A", "a-1", handoff=True))
    ack_a = await receive_until(ws_a, lambda f: f["type"] == "ack")
    # Written past the agent API's check (it refuses both): B's message, and an agent's own.
    await agent_reply(chat.store, ack_a["ticket"], "To B's?", reply_to=ack_b["message_id"])
    live = await receive_until(ws_a, lambda f: f.get("author") == "agent")
    own = live["message_id"]
    await agent_reply(chat.store, ack_a["ticket"], "To mine?", reply_to=own)
    await receive_until(ws_a, lambda f: f.get("text") == "To mine?")
    await delivered(chat.store)
    frames = await resumed(ws_a)
    await ws_a.close()
    polled = await long_polled(chat, token_a)

    assert agents(frames) == agents(polled) == [("To B's?", None), ("To mine?", None)]
    assert "quote" not in live
    for shown in (frames, polled):
        assert "secret of B" not in json.dumps(shown, ensure_ascii=False)


async def test_a_resume_looks_the_quotes_up_in_its_own_query(make_chat: MakeChat) -> None:
    """Not one query per quoting reply: the history reads the same number of statements with
    one reply that quotes as with six."""
    chat = await make_chat(deliver=False)
    token, _ = await chat.session(locale="en")
    ws = await chat.connect(token)
    await ws.send_json(message(ASKED, "q-1", handoff=True))
    ack = await receive_until(ws, lambda f: f["type"] == "ack")
    await ws.close()
    await chat.drain()
    secret = chat.settings.secret_key.get_secret_value()  # type: ignore[union-attr]
    conversation = chat.app[WEBCHAT].conversation(verify_token(token, secret))
    engine = chat.store.read_engine.sync_engine
    statements: list[str] = []

    def seen(*args: Any) -> None:
        if "thread_key" in str(args[2]):  # this session's reads, not a sweep's meanwhile
            statements.append(str(args[2]))

    async def read_history() -> tuple[int, list[dict[str, Any]]]:
        statements.clear()
        event.listen(engine, "before_cursor_execute", seen)
        try:
            frames = await conversation.history(after=0, limit=200)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        return len(statements), frames

    await agent_reply(chat.store, ack["ticket"], "reply 0", reply_to=ack["message_id"])
    one, frames = await read_history()
    for n in range(1, 6):
        await agent_reply(chat.store, ack["ticket"], f"reply {n}", reply_to=ack["message_id"])
    six, frames = await read_history()
    assert [quote for _, quote in agents(frames)] == [QUOTE] * 6
    assert 0 < one <= 2  # the cursor's time, then the page
    assert six == one
