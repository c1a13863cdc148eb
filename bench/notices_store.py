"""The notices benchmark's database side: tickets to owe notices on, the pending notices, and how
far their delivery and the SLA sweep have got."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from gateway.ingest import Ingest
from gateway.models import Channel, InboundMessage, OutboxKind, OutboxStatus
from gateway.outbox import outbox_values, write_outbox
from gateway.store import Store
from gateway.store.tables import OutboxRow, Ticket

TICKETS = 1000
SLA_DEADLINES = (10, 25, 40)
"""Seconds after the delivery run starts when the SLA tickets' first responses fall due."""


async def open_tickets(store: Store) -> list[tuple[int, int, Channel]]:
    """``TICKETS`` tickets, half by email and half on Telegram: (ticket, contact, channel)."""
    ingest = Ingest(store, zone=UTC, reopen_days=7)  # type: ignore[arg-type]

    def message(n: int) -> InboundMessage:
        email = n % 2 == 0
        user = f"customer{n}@example.org" if email else str(100_000 + n)
        return InboundMessage(
            channel=Channel.EMAIL if email else Channel.TELEGRAM,
            external_id=f"in-{n}",
            external_user_id=user,
            thread_key=user,
            text="My order has not arrived",
            subject="Order not arrived" if email else None,
            sender_name=f"Customer {n}",
            locale="en",
        )

    for first in range(0, TICKETS, 100):  # concurrent producers: ingest commits them in groups
        await asyncio.gather(*(ingest(message(n)) for n in range(first, first + 100)))
    async with store.write() as session:  # their acknowledgements are not part of the run
        await session.execute(update(OutboxRow).values(status=OutboxStatus.SENT.value))
        rows = await session.execute(select(Ticket.id, Ticket.contact_id, Ticket.channel))
        return [(t, c, Channel(ch)) for t, c, ch in rows.all()]


async def owe(store: Store, tickets: list[tuple[int, int, Channel]], count: int) -> None:
    now = datetime.now(UTC)
    rows = [
        outbox_values(
            kind=OutboxKind.NOTICE,
            template="progress",
            channel=channel,
            contact_id=contact,
            ticket_id=ticket,
            now=now,
            payload={"text": f"step {i}"},
        )
        for i in range(count)
        for ticket, contact, channel in [tickets[i % len(tickets)]]
    ]
    async with store.write() as session:
        await write_outbox(session, rows)


async def count_status(store: Store, status: OutboxStatus) -> int:
    async with store.read() as session:
        found = await session.scalar(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.status == status.value)
        )
        return int(found or 0)


async def sla_tickets(store: Store, started: datetime) -> list[tuple[int, datetime]]:
    """Escalated tickets whose first response falls due at ``SLA_DEADLINES`` after ``started``."""
    ingest = Ingest(store, zone=UTC, reopen_days=7)  # type: ignore[arg-type]
    due: list[tuple[int, datetime]] = []
    for n, seconds in enumerate(SLA_DEADLINES):
        result = await ingest(
            InboundMessage(
                channel=Channel.TELEGRAM,
                external_id=f"sla-{n}",
                external_user_id=str(900_000 + n),
                thread_key=str(900_000 + n),
                text="Nobody answers",
            )
        )
        due.append((result.ticket.id, started + timedelta(seconds=seconds)))
    async with store.write() as session:
        for ticket_id, at in due:
            await session.execute(
                update(Ticket)
                .where(Ticket.id == ticket_id)
                .values(escalated_at=started, first_response_due_at=at)
            )
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.status == OutboxStatus.PENDING.value)
            .values(status=OutboxStatus.SENT.value)
        )
    return due


async def flagged(store: Store, due: list[tuple[int, datetime]]) -> dict[int, datetime]:
    async with store.read() as session:
        rows = await session.execute(
            select(Ticket.id, Ticket.overdue_at).where(Ticket.id.in_([t for t, _ in due]))
        )
        return {t: at for t, at in rows.all() if at is not None}
