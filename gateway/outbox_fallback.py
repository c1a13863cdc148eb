"""A notice or survey that cannot reach its contact on its channel goes to their email instead.

A Telegram user who blocked the bot (or deleted their account) cannot be written to there,
yet their ticket goes on: it is escalated, answered, closed, surveyed. Every notice and survey
owed to them from then on, not only the one that met the block, is owed on their email when
they have one we can write to: an email identity (they wrote to us from that address), never
an address only typed into a form, which anyone could have typed. Replies are not handed
over: an agent wrote them for the conversation on that channel, and the agent sees the failed
delivery.

The delivery job calls :func:`hand_to_email` for a row it cannot deliver because of its
recipient (``channels.base.RecipientUnreachable``, or no reachable identity on the row's
channel). The row is marked failed in the same transaction that owes the email: a retry after
a crash finds it failed and does not owe the email twice. A row handed over stays failed for
good: the email row owes its notice now, so an admin's retry is refused
(``gateway/outbox_admin.py``), and were the row delivered again it would not owe a second email.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, SQLColumnExpression, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from gateway.models import Channel, OutboxKind, OutboxStatus
from gateway.outbox import OUTBOX, add_outbox
from gateway.store.tables import ContactIdentity, OutboxRow

HANDED = frozenset({OutboxKind.NOTICE.value, OutboxKind.SURVEY.value})
"""What is handed to email: what the gateway tells the customer, not what an agent wrote."""

_UNSETTLED = (OutboxStatus.PENDING.value, OutboxStatus.QUEUED.value)

_HANDED_TO = aliased(OutboxRow, name="handed_to")


def handed_to_email(
    outbox_id: int | SQLColumnExpression[int], contact_id: int | SQLColumnExpression[int]
) -> Select[int]:
    """The email row that owes what row ``outbox_id`` (of contact ``contact_id``) could not
    deliver; correlates when given the columns of an enclosing query. A contact merge moves
    both rows alike, and the contact narrows the search to that contact's rows."""
    return select(_HANDED_TO.id).where(
        _HANDED_TO.contact_id == contact_id,
        _HANDED_TO.channel == Channel.EMAIL.value,
        _HANDED_TO.payload["fallback_from"].as_integer() == outbox_id,
    )


async def hand_to_email(
    session: AsyncSession, outbox_id: int, reason: str, now: datetime
) -> int | None:
    """Fail row ``outbox_id`` with ``reason`` and owe a notice or survey on the contact's email;
    in the caller's transaction. Returns the id of the email row that owes it (the one owed
    before, if the row was handed over already), or None when nothing was owed: the row was
    settled already, is a reply, is an email, or its contact has no email identity."""
    failed = await session.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id == outbox_id, OUTBOX.c.status.in_(_UNSETTLED))
        .values(status=OutboxStatus.FAILED.value, last_error=reason)
        .returning(
            OUTBOX.c.kind,
            OUTBOX.c.template,
            OUTBOX.c.channel,
            OUTBOX.c.contact_id,
            OUTBOX.c.ticket_id,
            OUTBOX.c.message_id,
            OUTBOX.c.payload,
        )
    )
    row = failed.first()
    if row is None or row.kind not in HANDED or row.channel == Channel.EMAIL.value:
        return None
    owed = await session.scalar(handed_to_email(outbox_id, row.contact_id).limit(1))
    if owed is not None:
        return owed
    email = await session.scalar(
        select(ContactIdentity.id)
        .where(
            ContactIdentity.contact_id == row.contact_id,
            ContactIdentity.channel == Channel.EMAIL.value,
            ContactIdentity.reachable.is_(True),
        )
        .limit(1)
    )
    if email is None:
        return None
    handed = add_outbox(
        session,
        kind=OutboxKind(row.kind),
        template=row.template,
        channel=Channel.EMAIL,
        contact_id=row.contact_id,
        ticket_id=row.ticket_id,
        message_id=row.message_id,
        payload={**row.payload, "fallback_from": outbox_id},
        now=now,
    )
    await session.flush()
    return handed.id
