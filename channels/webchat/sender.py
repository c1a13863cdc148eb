"""``SENDERS[Channel.WEBCHAT]``: delivers an outbox row to the customer's open sockets.

Runs in an RQ worker: it publishes the message on the session's Redis channel (the recipient is
the session id, the identity's ``external_user_id``), and every gateway process holding a socket
or long poll of that session forwards it (``hub.py``).

A customer who is offline gets every message on their next ``resume``, which reads the store:
a reply is stored already; a notice or survey is stored here, before it is published, as an
outgoing message of the system (kept once per outbox row, so a retried job publishes the same
message again and the widget shows it once).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from channels.base import TransientChannelError
from channels.webchat.hub import publish
from gateway.models import (
    AuthorType,
    Channel,
    DeliveryReceipt,
    MessageKind,
    OutboundMessage,
)
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import Ticket, TicketMessage
from gateway.store.types import utcnow


class WebchatSender:
    """Publishes outbound messages to the web chat fan-out (stores notices for resume)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._redis: aioredis.Redis | None = None
        self._store: Store | None = None
        self._kept = False

    async def open(self) -> None:
        """Keep one Redis client and one store for the worker process's jobs."""
        self._kept = True

    async def aclose(self) -> None:
        self._kept = False
        await self._close()

    async def send(self, msg: OutboundMessage) -> DeliveryReceipt:
        try:
            message_id = msg.message_id
            if message_id is None and msg.ticket_number is not None:
                message_id = await self._stored_notice(msg)
            event: dict[str, object] = {
                "type": "message",
                "message_id": message_id,
                "kind": msg.kind.value,
                "template": msg.template,
                "text": msg.text,
                "ticket": msg.ticket_number,
                "outbox_id": msg.outbox_id,
            }
            if msg.quoted_text is not None:
                # The customer's message an agent's reply answers: the widget has no way to
                # point at one, so the words go with the reply (from any channel).
                event["quote"] = msg.quoted_text
            if self._redis is None:
                self._redis = aioredis.Redis.from_url(
                    self.settings.redis_url, socket_connect_timeout=2, socket_timeout=5
                )
            receivers = await publish(self._redis, msg.recipient, event)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            await self._close()
            raise TransientChannelError(f"web chat fan-out unavailable: {exc}") from exc
        except SQLAlchemyError as exc:
            await self._close()
            raise TransientChannelError(f"web chat notice not stored: {exc}") from exc
        finally:
            if not self._kept:
                # A sender used for one send (not kept by a worker) leaves nothing open.
                await self._close()
        return DeliveryReceipt(
            external_id=f"webchat-outbox-{msg.outbox_id}", channel_meta={"receivers": receivers}
        )

    async def _stored_notice(self, msg: OutboundMessage) -> int | None:
        """The notice as the conversation's record: its message id (the same on a retry)."""
        if self._store is None:
            self._store = Store(self.settings.database_url)
        external_id = f"outbox-{msg.outbox_id}"
        async with self._store.write() as session:
            found = await session.scalar(
                select(TicketMessage.id).where(
                    TicketMessage.channel == Channel.WEBCHAT.value,
                    TicketMessage.external_id == external_id,
                )
            )
            if found is not None:
                return int(found)
            ticket_id = await session.scalar(
                select(Ticket.id).where(Ticket.number == msg.ticket_number)
            )
            if ticket_id is None:
                return None  # nothing to attach it to: shown live only
            now = utcnow()
            meta: dict[str, Any] = {"outbox_kind": msg.kind.value, "template": msg.template}
            stored = TicketMessage(
                ticket_id=ticket_id,
                kind=MessageKind.OUTGOING.value,
                author_type=AuthorType.SYSTEM.value,
                author_id=None,
                channel=Channel.WEBCHAT.value,
                external_id=external_id,
                text=msg.text,
                attachments=[],
                channel_meta=meta,
                created_at=now,
                routed_at=now,
            )
            session.add(stored)
            await session.flush()
            return stored.id

    async def _close(self) -> None:
        redis, self._redis = self._redis, None
        store, self._store = self._store, None
        if redis is not None:
            await redis.aclose()
        if store is not None:
            await store.close()
