"""What admins do with deliveries that failed for good: list them, send one again."""

from __future__ import annotations

from sqlalchemy import select

from gateway.models import OutboxStatus
from gateway.outbox import agents_words, show_outcome
from gateway.store import Store
from gateway.store.tables import OutboxRow, Ticket
from gateway.store.types import utcnow


async def failed_rows(store: Store) -> list[tuple[int, str, str, str, int, str]]:
    """Parked rows, oldest first: (id, channel, template, ticket number, attempts, reason)."""
    async with store.read() as session:
        rows = await session.execute(
            select(OutboxRow, Ticket.number)
            .outerjoin(Ticket, Ticket.id == OutboxRow.ticket_id)
            .where(OutboxRow.status == OutboxStatus.FAILED.value)
            .order_by(OutboxRow.id)
        )
        return [
            (r.id, r.channel, r.template, number or "-", r.attempts, r.last_error or "")
            for r, number in rows.all()
        ]


async def retry_row(store: Store, outbox_id: int) -> bool:
    """Make a parked row due again (the relay picks it up); False if there is none."""
    async with store.write() as session:
        row = await session.get(OutboxRow, outbox_id, with_for_update=True)
        if row is None or row.status != OutboxStatus.FAILED.value:
            return False
        row.status = OutboxStatus.PENDING.value
        row.due_at = utcnow()
        row.last_error = None
        if row.ticket_id is not None and agents_words(row.kind, row.template):
            # The console's "not delivered" on the agent's words goes away, without a reload.
            await show_outcome(session, {row.ticket_id}, row.due_at)
        return True
