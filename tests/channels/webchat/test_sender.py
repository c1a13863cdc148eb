"""The sender: stores a notice, publishes to the session's channel; Redis down is transient."""

from __future__ import annotations

import asyncio
import json
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select

from channels.base import TransientChannelError
from channels.registry import SENDERS
from channels.webchat.hub import session_channel
from channels.webchat.sender import WebchatSender
from gateway.ingest import Ingest
from gateway.models import AuthorType, Channel, OutboundMessage, OutboxKind
from gateway.store import Store
from gateway.store.tables import TicketMessage
from tests.conftest import free_port, make_settings
from tests.factories import inbound


def outbound(**fields: object) -> OutboundMessage:
    values: dict[str, object] = {
        "outbox_id": 9,
        "channel": Channel.WEBCHAT,
        "recipient": "session-1",
        "text": "Your ticket G20261122001 is with our team.",
        "ticket_number": "G20261122001",
        "kind": OutboxKind.NOTICE,
        "template": "escalated",
    }
    values.update(fields)
    return OutboundMessage.model_validate(values)


async def webchat_ticket(store: Store) -> str:
    """A web chat conversation of session-1; returns its ticket number."""
    result = await Ingest(store, zone=ZoneInfo("UTC"))(
        inbound(channel=Channel.WEBCHAT, external_user_id="session-1", thread_key="session-1")
    )
    return result.ticket_number


async def test_a_notice_is_stored_then_published_to_the_sessions_channel(
    store: Store, db_url: str, redis_url: str
) -> None:
    assert SENDERS[Channel.WEBCHAT] is WebchatSender
    number = await webchat_ticket(store)
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(session_channel("session-1"))
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    sender = WebchatSender(make_settings(redis_url=redis_url, database_url=db_url))
    receipt = await sender.send(outbound(ticket_number=number))
    got = None
    async with asyncio.timeout(5):
        while got is None:
            got = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
    event = json.loads(got["data"])
    async with store.read() as session:
        stored = (
            await session.scalars(
                select(TicketMessage).where(TicketMessage.author_type == AuthorType.SYSTEM.value)
            )
        ).one()
    assert (stored.kind, stored.text) == ("outgoing", "Your ticket G20261122001 is with our team.")
    assert stored.channel_meta == {"outbox_kind": "notice", "template": "escalated"}
    assert event == {
        "type": "message",
        "message_id": stored.id,
        "kind": "notice",
        "template": "escalated",
        "text": "Your ticket G20261122001 is with our team.",
        "ticket": number,
        "outbox_id": 9,
    }
    assert receipt.external_id == "webchat-outbox-9"
    assert receipt.channel_meta == {"receivers": 1}
    # A retried job publishes the same stored message again, and stores nothing new.
    await sender.send(outbound(ticket_number=number))
    async with store.read() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(TicketMessage)
            .where(TicketMessage.author_type == AuthorType.SYSTEM.value)
        )
    assert count == 1
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await client.aclose()


async def test_redis_down_is_a_transient_error() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(TransientChannelError, match="fan-out unavailable"):
        await WebchatSender(make_settings(redis_url=dead)).send(outbound(ticket_number=None))
