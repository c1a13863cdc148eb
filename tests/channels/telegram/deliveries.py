"""What the delivery tests deliver: the first notice's outbox row, made an agent's reply if
need be, one more identity for its contact, and a bare outbound message."""

from __future__ import annotations

from sqlalchemy import insert, update

from gateway.appkeys import PIPELINE
from gateway.models import Channel, OutboundMessage
from gateway.store import Store
from gateway.store.tables import ContactIdentity, OutboxRow, TicketMessage
from tests.channels.telegram.conftest import Gateway, outbox, post_fixture


async def first_notice(gateway: Gateway, db: Store) -> OutboxRow:
    """Li writes in: the acknowledgement notice is outbox row 1."""
    app, client = gateway
    assert await post_fixture(client, "private_text") == 200
    await app[PIPELINE].drain()
    return (await outbox(db))[0]


async def add_identity(db: Store, row: OutboxRow, channel: str, user_id: str) -> None:
    """Give the contact of ``row`` one more (reachable) identity."""
    async with db.write() as session:
        await session.execute(
            insert(ContactIdentity).values(
                contact_id=row.contact_id,
                channel=channel,
                external_user_id=user_id,
                reachable=True,
                created_at=row.created_at,
            )
        )


def outbound(text: str, **fields: object) -> OutboundMessage:
    """Outbox row 1's message to chat 888 about G20261122001, ``fields`` replaced."""
    values: dict[str, object] = {
        "outbox_id": 1,
        "channel": Channel.TELEGRAM,
        "recipient": "888",
        "text": text,
        "ticket_number": "G20261122001",
    }
    values.update(fields)
    return OutboundMessage.model_validate(values)


async def as_agent_reply(db: Store, row: OutboxRow, text: str) -> None:
    """Make outbox ``row`` the delivery of an agent's reply saying ``text``."""
    async with db.write() as session:
        reply = TicketMessage(
            ticket_id=row.ticket_id,
            kind="outgoing",
            author_type="agent",
            channel="telegram",
            text=text,
            attachments=[],
            channel_meta={},
            created_at=row.created_at,
        )
        session.add(reply)
        await session.flush()
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row.id)
            .values(kind="reply", template="message", message_id=reply.id)
        )
