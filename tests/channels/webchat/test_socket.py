"""Over a raw WebSocket: acks after commit, idempotent resends, limits, and isolation."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import WSMsgType
from sqlalchemy import func, select

from channels.webchat.tokens import SessionClaims, sign_token, verify_token
from gateway.appkeys import PIPELINE
from gateway.ingest import Ingest, IngestResult
from gateway.models import AuthorType, Channel, InboundMessage, OutboxKind
from gateway.outbox import add_outbox
from gateway.store.tables import Ticket, TicketMessage
from gateway.store.types import utcnow
from tests.channels.webchat.conftest import (
    REFUND_EN,
    Chat,
    agent_reply,
    delivered,
    incoming_count,
    internal_note,
    message,
    receive,
    receive_until,
    stored_count,
)

MakeChat = Callable[..., Awaitable[Chat]]


class GatedIngest:
    """Holds every ingest until the test opens the gate (a slow commit, made visible)."""

    def __init__(self, inner: Ingest) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def __call__(self, inbound: InboundMessage) -> IngestResult:
        self.entered.set()
        await self.gate.wait()
        return await self.inner(inbound)


def gate(chat: Chat) -> GatedIngest:
    pipeline = chat.app[PIPELINE]
    gated = GatedIngest(pipeline.ingest)
    pipeline.ingest = gated  # type: ignore[assignment]
    return gated


async def test_the_ack_comes_only_after_the_message_is_committed(chat: Chat) -> None:
    token, _ = await chat.session()
    ws = await chat.connect(token)
    gated = gate(chat)
    await ws.send_json(message("where is my order?", "c-1"))
    await asyncio.wait_for(gated.entered.wait(), 5)
    with pytest.raises(asyncio.TimeoutError):
        await ws.receive(timeout=0.3)  # no ack while the commit has not happened
    assert await incoming_count(chat.store) == 0
    gated.gate.set()
    ack = await receive(ws)
    # By the time the ack is read, the message is visible to any other reader.
    async with chat.store.read() as session:
        stored = await session.get_one(TicketMessage, ack["message_id"])
        ticket = await session.get_one(Ticket, stored.ticket_id)
    assert ack == {
        "type": "ack",
        "client_id": "c-1",
        "message_id": stored.id,
        "ticket": ticket.number,
    }
    claims = verify_token(token, chat.settings.secret_key.get_secret_value())  # type: ignore[union-attr]
    assert stored.external_id == f"{claims.session_id}:c-1"
    assert stored.text == "where is my order?"
    assert (ticket.channel, ticket.thread_key, ticket.contact_id) == (
        "webchat",
        claims.session_id,
        claims.contact_id,
    )
    await ws.close()


async def test_a_resent_client_id_gets_the_same_ack_and_stores_nothing_new(chat: Chat) -> None:
    token, _ = await chat.session()
    ws = await chat.connect(token)
    await ws.send_json(message("hello", "same-id"))
    first = await receive_until(ws, lambda f: f["type"] == "ack")
    await ws.send_json(message("hello", "same-id"))
    second = await receive_until(ws, lambda f: f["type"] == "ack")
    assert first == second
    assert await incoming_count(chat.store) == 1
    await ws.close()


async def test_socket_killed_between_send_and_ack_then_resent_stores_one_message(
    chat: Chat,
) -> None:
    token, _ = await chat.session()
    ws = await chat.connect(token)
    gated = gate(chat)
    await ws.send_json(message("is anyone there?", "lost-ack"))
    await asyncio.wait_for(gated.entered.wait(), 5)
    await ws.close()  # the browser tab dies before the ack
    gated.gate.set()
    await asyncio.sleep(0.2)
    again = await chat.connect(token)
    await again.send_json(message("is anyone there?", "lost-ack"))
    ack = await receive_until(again, lambda f: f["type"] == "ack")
    assert ack["client_id"] == "lost-ack"
    assert await incoming_count(chat.store) == 1
    assert await stored_count(chat.store, id=ack["message_id"]) == 1
    await again.close()


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        pytest.param("{not json", "bad_json", None, id="malformed-json"),
        pytest.param("[1, 2]", "bad_json", None, id="not-an-object"),
        pytest.param('{"type": "shout", "text": "hi"}', "unknown_type", "type", id="unknown-type"),
        pytest.param('{"text": "hi"}', "invalid", "type", id="no-type"),
        pytest.param(json.dumps(message("x" * 4097)), "too_large", "text", id="oversize-text"),
        pytest.param(json.dumps(message("好" * 1366)), "too_large", "text", id="oversize-utf8"),
        pytest.param(json.dumps(message("   ")), "invalid", "text", id="empty-text"),
        pytest.param(
            json.dumps({"type": "message", "client_id": "a b", "text": "x"}),
            "invalid",
            "client_id",
            id="bad-client-id",
        ),
    ],
)
async def test_bad_frames_get_an_error_frame_store_nothing_and_keep_the_socket(
    chat: Chat, raw: str, code: str, field: str | None
) -> None:
    token, _ = await chat.session()
    ws = await chat.connect(token)
    await ws.send_str(raw)
    error = await receive(ws)
    assert error["type"] == "error"
    assert error["code"] == code
    assert error.get("field") == field
    assert await incoming_count(chat.store) == 0
    # The socket stays open and usable.
    await ws.send_json(message("x" * 4096, "fits"))
    assert (await receive_until(ws, lambda f: f["type"] == "ack"))["client_id"] == "fits"
    await ws.close()


async def test_a_frame_above_max_msg_size_closes_the_socket_and_stores_nothing(
    chat: Chat,
) -> None:
    token, _ = await chat.session()
    ws = await chat.connect(token)
    await ws.send_str(json.dumps(message("y" * (chat.settings.webchat.max_frame_bytes + 10))))
    closed = await ws.receive(timeout=5)
    assert closed.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert ws.close_code == 1009  # RFC 6455 7.4.1: message too big
    assert await incoming_count(chat.store) == 0


async def test_rate_limit_answers_excess_with_error_frames_and_keeps_the_socket(
    make_chat: MakeChat,
) -> None:
    chat = await make_chat(webchat={"rate_burst": 20, "rate_per_second": 0.01})
    token, _ = await chat.session()
    ws = await chat.connect(token)
    for n in range(25):
        await ws.send_json(message(f"message {n}", f"m{n}"))
    frames: list[dict[str, Any]] = []
    while len([f for f in frames if f["type"] in ("ack", "error")]) < 25:
        frames.append(await receive(ws))
    acks = [f for f in frames if f["type"] == "ack"]
    limited = [f for f in frames if f["type"] == "error"]
    assert len(acks) == 20
    assert [f["code"] for f in limited] == ["rate_limited"] * 5
    assert {f["client_id"] for f in limited} == {f"m{n}" for n in range(20, 25)}
    assert await incoming_count(chat.store) == 20
    assert not ws.closed
    await ws.close()


async def test_a_token_for_contact_a_cannot_read_or_write_contact_b(chat: Chat) -> None:
    token_a, contact_a = await chat.session(name="A")
    token_b, contact_b = await chat.session(name="B")
    ws_b = await chat.connect(token_b)
    await ws_b.send_json(message("my refund please", "b-1"))
    ack_b = await receive_until(ws_b, lambda f: f["type"] == "ack")
    bot_b = await receive_until(ws_b, lambda f: f["type"] == "message" and f["author"] == "bot")

    ws_a = await chat.connect(token_a)
    await ws_a.send_json({"type": "resume", "after": 0})
    assert await receive(ws_a) == {"type": "resumed", "after": 0}  # nothing of B's
    await ws_a.send_json({"type": "feedback", "message_id": bot_b["message_id"], "helpful": False})
    assert (await receive(ws_a))["code"] == "not_found"
    await ws_a.send_json({"type": "rating", "ticket": ack_b["ticket"], "score": 1})
    assert (await receive(ws_a))["code"] == "not_found"
    # Writing: A's message never lands on B's ticket, even under B's client id.
    await ws_a.send_json(message("hello", "b-1"))
    ack_a = await receive_until(ws_a, lambda f: f["type"] == "ack")
    assert ack_a["ticket"] != ack_b["ticket"]
    async with chat.store.read() as session:
        ticket_b = (
            await session.scalars(select(Ticket).where(Ticket.number == ack_b["ticket"]))
        ).one()
        assert ticket_b.contact_id == contact_b
        assert ticket_b.escalated_at is None  # A's "not helpful" did nothing
    # A forged token (B's session under another signature) is refused at the handshake.
    secret = chat.settings.secret_key.get_secret_value()  # type: ignore[union-attr]
    b_claims = verify_token(token_b, secret)
    forged = sign_token(b_claims, "another-secret-key-xxxxxxxxx")
    refused = await chat.client.get(f"/api/v1/webchat/ws?token={forged}")
    assert refused.status == 401
    assert (await refused.json())["error"] == "invalid_token"
    # Tampering with the payload (A's signature over B's claims) is refused too.
    version, _, signature = token_a.split(".")
    payload = (
        base64.urlsafe_b64encode(json.dumps({"s": b_claims.session_id, "c": contact_b}).encode())
        .rstrip(b"=")
        .decode()
    )
    tampered = f"{version}.{payload}.{signature}"
    assert (await chat.client.get(f"/api/v1/webchat/ws?token={tampered}")).status == 401
    assert contact_a != contact_b
    await ws_a.close()
    await ws_b.close()


async def test_the_bot_answers_and_not_helpful_hands_the_ticket_to_people(chat: Chat) -> None:
    token, _ = await chat.session(locale="en")
    ws = await chat.connect(token)
    await ws.send_json(message("When do I get my refund?", "q-1"))
    ack = await receive_until(ws, lambda f: f["type"] == "ack")
    answer = await receive_until(ws, lambda f: f["type"] == "message" and f["author"] == "bot")
    assert answer["text"] == REFUND_EN
    assert answer["ticket"] == ack["ticket"]
    assert answer["kind"] == "reply"
    await ws.send_json(
        {
            "type": "feedback",
            "message_id": answer["message_id"],
            "helpful": False,
            "client_id": "f1",
        }
    )
    assert (await receive_until(ws, lambda f: f["type"] == "ack"))["client_id"] == "f1"
    notice = await receive_until(ws, lambda f: f.get("template") == "escalated")
    assert notice["author"] == "system"
    async with chat.store.read() as session:
        bot = await session.get_one(TicketMessage, answer["message_id"])
        ticket = await session.get_one(Ticket, bot.ticket_id)
    assert bot.channel_meta["feedback"]["helpful"] is False
    assert ticket.escalated_at is not None
    await ws.close()


async def test_talk_to_a_person_escalates_without_a_bot_answer_and_the_agent_reply_arrives(
    chat: Chat,
) -> None:
    token, _ = await chat.session(locale="en")
    ws = await chat.connect(token)
    await ws.send_json(message("refund — I want a person", "h-1", handoff=True))
    ack = await receive_until(ws, lambda f: f["type"] == "ack")
    await receive_until(ws, lambda f: f.get("template") == "escalated")
    outbox_id = await agent_reply(chat.store, ack["ticket"], "Hi, I'm Li Lei. Let me check.")
    reply = await receive_until(ws, lambda f: f["type"] == "message" and f["author"] == "agent")
    assert reply["name"] == "Li Lei"
    assert reply["text"] == "Hi, I'm Li Lei. Let me check."
    assert reply["ticket"] == ack["ticket"]
    assert outbox_id > 0
    await chat.drain()
    assert await stored_count(chat.store, author_type=AuthorType.BOT.value) == 0
    async with chat.store.read() as session:
        ticket = (await session.scalars(select(Ticket).where(Ticket.number == ack["ticket"]))).one()
    assert ticket.escalated_at is not None
    await ws.close()


async def test_a_reply_to_one_message_carries_its_words_and_a_plain_reply_none(
    chat: Chat,
) -> None:
    """The widget cannot point at a message: the live frame quotes the one answered."""
    token, _ = await chat.session(locale="en")
    ws = await chat.connect(token)
    await ws.send_json(message("  refund — I want a person\n", "q-1", handoff=True))
    ack = await receive_until(ws, lambda f: f["type"] == "ack")
    await receive_until(ws, lambda f: f.get("template") == "escalated")
    await agent_reply(chat.store, ack["ticket"], "About the refund:", reply_to=ack["message_id"])
    quoting = await receive_until(ws, lambda f: f.get("author") == "agent")
    assert (quoting["text"], quoting["quote"]) == ("About the refund:", "refund — I want a person")
    await agent_reply(chat.store, ack["ticket"], "Anything else?")
    plain = await receive_until(ws, lambda f: f.get("author") == "agent")
    assert plain["text"] == "Anything else?"
    assert "quote" not in plain
    await ws.close()


async def test_resume_returns_the_history_in_order_without_internal_notes(chat: Chat) -> None:
    token, _ = await chat.session(locale="en")
    ws = await chat.connect(token)
    await ws.send_json(message("refund?", "r-1"))
    ack = await receive_until(ws, lambda f: f["type"] == "ack")
    await receive_until(ws, lambda f: f.get("author") == "bot")
    await ws.close()
    await internal_note(chat.store, ack["ticket"], "VIP, be nice")
    await agent_reply(chat.store, ack["ticket"], "Anything else?")
    await asyncio.sleep(0.3)  # delivered to nobody: the customer is offline

    await delivered(chat.store)

    async def resume(after: int) -> tuple[list[dict[str, Any]], int]:
        await again.send_json({"type": "resume", "after": after})
        frames: list[dict[str, Any]] = []
        while (frame := await receive(again))["type"] != "resumed":
            frames.append(frame)
        return frames, frame["after"]

    again = await chat.connect(token)
    frames, upto = await resume(0)
    assert [(f["author"], f["text"]) for f in frames if f["author"] != "system"] == [
        ("customer", "refund?"),
        ("bot", REFUND_EN),
        ("agent", "Anything else?"),
    ]
    # The "we got your message" notice is part of the record too (stored when it was sent).
    assert [f["template"] for f in frames if f["author"] == "system"] == ["ticket_received"]
    assert frames[0]["client_id"] == "r-1"
    assert [f["message_id"] for f in frames] == sorted(f["message_id"] for f in frames)
    assert upto == frames[-1]["message_id"]
    bot = next(f for f in frames if f["author"] == "bot")
    later, _ = await resume(bot["message_id"])
    assert "Anything else?" in [f["text"] for f in later]
    # Ids up to the cursor come again only if recent (a lower id may commit late; see
    # test_resume_gap.py), and they are ones shown already.
    shown = {f["message_id"] for f in frames if f["message_id"] <= bot["message_id"]}
    assert {f["message_id"] for f in later if f["message_id"] <= bot["message_id"]} <= shown
    assert [f["message_id"] for f in later] == sorted(f["message_id"] for f in later)
    await again.close()


async def test_a_notice_sent_while_the_customer_is_offline_arrives_on_resume(chat: Chat) -> None:
    token, _ = await chat.session(locale="en")
    ws = await chat.connect(token)
    await ws.send_json(message("human please", "h-1"))
    ack = await receive_until(ws, lambda f: f["type"] == "ack")
    await receive_until(ws, lambda f: f.get("template") == "escalated")
    await delivered(chat.store)
    await ws.close()
    async with chat.store.read() as session:
        last_seen = await session.scalar(select(func.max(TicketMessage.id)))
        ticket = (await session.scalars(select(Ticket).where(Ticket.number == ack["ticket"]))).one()
    async with chat.store.write() as session:  # the ticket is solved while nobody listens
        add_outbox(
            session,
            kind=OutboxKind.NOTICE,
            template="waiting_customer",
            channel=Channel.WEBCHAT,
            contact_id=ticket.contact_id,
            ticket_id=ticket.id,
            now=utcnow(),
        )
    await delivered(chat.store)

    again = await chat.connect(token)
    await again.send_json({"type": "resume", "after": last_seen})
    frames = []
    while (frame := await receive(again))["type"] != "resumed":
        frames.append(frame)
    # Recent ones up to ``last_seen`` come again (see test_resume_gap.py); one is new.
    [notice] = [f for f in frames if f["message_id"] > last_seen]
    assert (notice["type"], notice["author"], notice["kind"]) == ("message", "system", "notice")
    assert notice["template"] == "waiting_customer"
    assert notice["ticket"] == ack["ticket"]
    assert notice["text"]
    assert frame == {"type": "resumed", "after": notice["message_id"]}
    await again.close()


async def test_origins_outside_the_allow_list_are_refused(make_chat: MakeChat) -> None:
    chat = await make_chat(webchat={"origins": ["https://shop.example"]})
    token, _ = await chat.session()
    evil = await chat.client.get(
        f"/api/v1/webchat/ws?token={token}", headers={"Origin": "https://evil.example"}
    )
    assert evil.status == 403
    assert (await evil.json())["error"] == "origin_not_allowed"
    ws = await chat.connect(token, origin="https://shop.example")
    await ws.send_json(message("hi", "o-1"))
    assert (await receive_until(ws, lambda f: f["type"] == "ack"))["client_id"] == "o-1"
    await ws.close()


async def test_fan_out_survives_a_redis_restart(chat: Chat, redis_server: Any) -> None:
    token, _ = await chat.session(locale="en")
    ws = await chat.connect(token)
    await ws.send_json(message("hello there", "x-1", handoff=True))
    ack = await receive_until(ws, lambda f: f["type"] == "ack")
    await receive_until(ws, lambda f: f.get("template") == "escalated")
    redis_server.stop()
    redis_server.start()
    from channels.webchat.state import WEBCHAT

    await asyncio.wait_for(chat.app[WEBCHAT].hub.ready.wait(), 15)
    await agent_reply(chat.store, ack["ticket"], "Back again")
    reply = await receive_until(ws, lambda f: f.get("author") == "agent", wait=15)
    assert reply["text"] == "Back again"
    await ws.close()


def test_tokens_round_trip_and_reject_tampering() -> None:
    claims = SessionClaims("abc", 7, "zh-CN")
    token = sign_token(claims, "k" * 20)
    assert verify_token(token, "k" * 20) == claims
    for bad in ("", "v1.x", token + "x", token.replace("v1", "v2", 1), "v1.e30." + token[-10:]):
        with pytest.raises(ValueError, match=r"token|signature|claims"):
            verify_token(bad, "k" * 20)
