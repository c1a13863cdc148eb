"""Typing signals both ways, and the satisfaction rating."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select

from channels.webchat.hub import CUSTOMER_TYPING, publish, publish_agent_typing
from channels.webchat.tokens import verify_token
from gateway.models import MessageKind
from gateway.store.tables import TicketMessage
from tests.channels.webchat.conftest import Chat, message, receive, receive_until


async def test_typing_goes_to_the_agents_and_comes_back_to_the_customer(
    chat: Chat, redis_url: str
) -> None:
    token, contact_id = await chat.session()
    claims = verify_token(token, chat.settings.secret_key.get_secret_value())  # type: ignore[union-attr]
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(CUSTOMER_TYPING)
    await pubsub.get_message(timeout=1)
    ws = await chat.connect(token)
    await ws.send_json({"type": "typing"})
    got = None
    async with asyncio.timeout(5):
        while got is None:
            got = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
    assert json.loads(got["data"]) == {"session_id": claims.session_id, "contact_id": contact_id}

    await publish_agent_typing(client, claims.session_id, "Li Lei")
    assert await receive(ws) == {"type": "typing", "author": "agent", "name": "Li Lei"}
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await client.aclose()
    await ws.close()


async def test_an_event_naming_another_sessions_message_is_not_shown(
    chat: Chat, redis_url: str
) -> None:
    token_a, _ = await chat.session()
    token_b, _ = await chat.session()
    secret = chat.settings.secret_key.get_secret_value()  # type: ignore[union-attr]
    ws_b = await chat.connect(token_b)
    await ws_b.send_json(message("secret of B", "b"))
    ack_b = await receive_until(ws_b, lambda f: f["type"] == "ack")
    ws_a = await chat.connect(token_a)
    client = aioredis.Redis.from_url(redis_url)
    # A forged event on A's channel naming B's message: the hub reads it back and drops it.
    session_a = verify_token(token_a, secret).session_id
    await publish(client, session_a, {"type": "message", "message_id": ack_b["message_id"]})
    await publish_agent_typing(client, session_a, None)
    assert (await receive(ws_a))["type"] == "typing"
    with pytest.raises(asyncio.TimeoutError):
        await ws_a.receive(timeout=0.5)  # and B's message never arrives
    await client.aclose()
    await ws_a.close()
    await ws_b.close()


async def test_a_rating_is_stored_once_per_ticket_and_can_be_changed(chat: Chat) -> None:
    token, _ = await chat.session()
    ws = await chat.connect(token)
    await ws.send_json(message("thanks, all good", "r"))
    ack = await receive_until(ws, lambda f: f["type"] == "ack")
    rating = {
        "type": "rating",
        "ticket": ack["ticket"],
        "score": 2,
        "comment": "slow",
        "client_id": "k1",
    }
    await ws.send_json(rating)
    first = await receive_until(ws, lambda f: f["type"] == "ack" and f["client_id"] == "k1")
    # A NUL (PostgreSQL's text cannot hold one) is dropped, not a refused frame.
    await ws.send_json({**rating, "score": 5, "comment": "actually great\x00", "client_id": "k2"})
    second = await receive_until(ws, lambda f: f["type"] == "ack" and f["client_id"] == "k2")
    assert first["message_id"] == second["message_id"]
    async with chat.store.read() as session:
        stored = (
            await session.scalars(
                select(TicketMessage).where(TicketMessage.kind == MessageKind.SYSTEM.value)
            )
        ).all()
    assert [(m.channel_meta["rating"], m.text) for m in stored] == [(5, "actually great")]
    # A rating is not shown as a chat message on resume.
    await ws.send_json({"type": "resume", "after": 0})
    frames = []
    while (frame := await receive(ws))["type"] != "resumed":
        frames.append(frame)
    assert all(f.get("author") != "customer" or f["text"] != "actually great" for f in frames)
    await ws.close()
