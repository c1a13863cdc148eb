"""What admins do with deliveries that failed for good: list them, send one again.

A notice or survey handed to email (``gateway/outbox_fallback.py``) failed on its channel, yet
is not undelivered: its email row owes it. It is neither listed nor sent again here: a retry
would owe the email a second time, or reach the customer twice once they unblocked the bot.
"""

from __future__ import annotations

from sqlalchemy import select

from gateway.models import OutboxStatus
from gateway.outbox import agents_words, show_outcome
from gateway.outbox_fallback import handed_to_email
from gateway.store import Store
from gateway.store.tables import OutboxRow, Ticket
from gateway.store.types import utcnow


class HandedToEmail(Exception):
    """The row was handed to email: its email row is the one to retry, if any."""

    def __init__(self, outbox_id: int, email_id: int) -> None:
        super().__init__(
            f"outbox row {outbox_id} was handed to email (outbox {email_id}); "
            f"retry outbox {email_id} if that delivery failed"
        )
        self.outbox_id = outbox_id
        self.email_id = email_id


async def failed_rows(store: Store) -> list[tuple[int, str, str, str, int, str]]:
    """Parked rows, oldest first: (id, channel, template, ticket number, attempts, reason).
    Rows handed to email are left out: their email row is listed if it fails."""
    async with store.read() as session:
        rows = await session.execute(
            select(OutboxRow, Ticket.number)
            .outerjoin(Ticket, Ticket.id == OutboxRow.ticket_id)
            .where(
                OutboxRow.status == OutboxStatus.FAILED.value,
                ~handed_to_email(OutboxRow.id, OutboxRow.contact_id).exists(),
            )
            .order_by(OutboxRow.id)
        )
        return [
            (r.id, r.channel, r.template, number or "-", r.attempts, r.last_error or "")
            for r, number in rows.all()
        ]


async def retry_row(store: Store, outbox_id: int) -> bool:
    """Make a parked row due again, its tries counted from zero (the relay picks it up);
    False if there is none.

    Raises:
        HandedToEmail: the row was handed to email, which owes it already.
    """
    async with store.write() as session:
        row = await session.get(OutboxRow, outbox_id, with_for_update=True)
        if row is None or row.status != OutboxStatus.FAILED.value:
            return False
        email_id = await session.scalar(handed_to_email(row.id, row.contact_id).limit(1))
        if email_id is not None:
            raise HandedToEmail(row.id, email_id)
        row.status = OutboxStatus.PENDING.value
        row.due_at = utcnow()
        row.last_error = None
        # A fresh start: kept, the tries would leave the row no deferral for a peer's "come
        # back in N seconds" (``workers.jobs.DEFER_AT_MOST``) and fail it again sooner.
        row.attempts = 0
        if row.ticket_id is not None and agents_words(row.kind, row.template):
            # The console's "not delivered" on the agent's words goes away, without a reload.
            await show_outcome(session, {row.ticket_id}, row.due_at)
        return True
