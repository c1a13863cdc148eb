"""A bounce marks the delivery it reports as failed, instead of opening a ticket (RFC 3464)."""

from __future__ import annotations

from sqlalchemy import update

from channels.email.ids import Signer
from channels.email.parse import Rejected
from gateway.models import Channel, OutboxStatus
from gateway.outbox import agents_words, show_outcome
from gateway.store import Store
from gateway.store.tables import OutboxRow
from gateway.store.types import utcnow


async def record_bounce(store: Store, bounce: Rejected, signer: Signer) -> int:
    """Mark the outbox rows the bounce reports on as failed; how many it marked.

    Only ids we signed count, so a forged report cannot fail someone else's delivery.
    """
    ours = [i for i in bounce.bounced_ids if signer.verify_message_id(i) is not None]
    if not ours:
        return 0
    async with store.write() as session:
        result = await session.execute(
            update(OutboxRow)
            .where(OutboxRow.channel == Channel.EMAIL.value, OutboxRow.external_id.in_(ours))
            .values(status=OutboxStatus.FAILED.value, last_error=bounce.detail[:1000])
            .returning(OutboxRow.ticket_id, OutboxRow.kind, OutboxRow.template)
        )
        failed = result.all()
        # An agent's bounced reply shows as not delivered on the open ticket, without a reload.
        tickets = {
            t for t, kind, template in failed if t is not None and agents_words(kind, template)
        }
        await show_outcome(session, tickets, utcnow())
    return len(failed)
