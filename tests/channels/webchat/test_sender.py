"""The sender: publishes to the session's channel; Redis down is a transient error."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis

from channels.base import TransientChannelError
from channels.registry import SENDERS
from channels.webchat.hub import session_channel
from channels.webchat.sender import WebchatSender
from gateway.models import Channel, OutboundMessage, OutboxKind
from tests.conftest import free_port, make_settings


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


async def test_the_sender_publishes_to_the_sessions_channel(redis_url: str) -> None:
    assert SENDERS[Channel.WEBCHAT] is WebchatSender
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(session_channel("session-1"))
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    receipt = await WebchatSender(make_settings(redis_url=redis_url)).send(outbound())
    got = None
    async with asyncio.timeout(5):
        while got is None:
            got = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
    event = json.loads(got["data"])
    assert event == {
        "type": "message",
        "message_id": None,
        "kind": "notice",
        "template": "escalated",
        "text": "Your ticket G20261122001 is with our team.",
        "ticket": "G20261122001",
        "outbox_id": 9,
    }
    assert receipt.external_id == "webchat-outbox-9"
    assert receipt.channel_meta == {"receivers": 1}
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await client.aclose()


async def test_redis_down_is_a_transient_error() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(TransientChannelError, match="fan-out unavailable"):
        await WebchatSender(make_settings(redis_url=dead)).send(outbound())
