"""``SENDERS[Channel.WEBCHAT]``: delivers an outbox row to the customer's open sockets.

Runs in an RQ worker: it publishes the message on the session's Redis channel (the recipient is
the session id, the identity's ``external_user_id``), and every gateway process holding a socket
or long poll of that session forwards it (``hub.py``). Stored replies also reach a customer who is
offline now, on their next ``resume``; a notice published while nobody listens is not kept.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from channels.base import TransientChannelError
from channels.webchat.hub import publish
from gateway.models import DeliveryReceipt, OutboundMessage
from gateway.settings import Settings


class WebchatSender:
    """Publishes outbound messages to the web chat fan-out."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, msg: OutboundMessage) -> DeliveryReceipt:
        event: dict[str, object] = {
            "type": "message",
            "message_id": msg.message_id,
            "kind": msg.kind.value,
            "template": msg.template,
            "text": msg.text,
            "ticket": msg.ticket_number,
            "outbox_id": msg.outbox_id,
        }
        # The client is bound to this job's event loop: made and closed here (STYLE.md).
        client = aioredis.Redis.from_url(
            self.settings.redis_url, socket_connect_timeout=2, socket_timeout=5
        )
        try:
            receivers = await publish(client, msg.recipient, event)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise TransientChannelError(f"web chat fan-out unavailable: {exc}") from exc
        finally:
            await client.aclose()
        return DeliveryReceipt(
            external_id=f"webchat-outbox-{msg.outbox_id}", channel_meta={"receivers": receivers}
        )
