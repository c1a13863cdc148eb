"""The SLA sweep: warns the assignee at 80% of a target, flags breaches, enforces the 24-hour
progress rule. Run it at least once a minute (``gateway cron`` registers it with RQ's cron
scheduler every 30 s); it is idempotent, so two schedulers cannot double a warning.

Targets are the due times stored on the ticket (first response, resolution); the clock is paused
while the ticket waits for the customer (``waiting_since``), which moves the resolution target
later when it resumes. Only tickets people own are swept: the bot's own conversations owe no
human response.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.events import record_event
from gateway.models import OPEN_STATUSES, EventKind, Priority
from gateway.settings import Settings
from gateway.sla import SlaPolicy
from gateway.store import Store
from gateway.store.tables import Ticket, TicketEvent
from gateway.store.types import utcnow

_OPEN = [s.value for s in OPEN_STATUSES]
_BUMP = {
    Priority.NORMAL.value: Priority.URGENT.value,
    Priority.URGENT.value: Priority.CRITICAL.value,
}


@dataclass(frozen=True, slots=True)
class SweepReport:
    warned: int = 0
    breached: int = 0
    reminded: int = 0


def _target(ticket: Ticket) -> tuple[str, datetime, datetime | None, datetime]:
    """The target the ticket runs against now: name, clock start, due, and since when a
    warning about it counts (a warning about the first response does not cover resolution)."""
    if ticket.first_response_at is None:
        start = ticket.escalated_at or ticket.created_at
        return "first_response", start, ticket.first_response_due_at, start
    return "resolution", ticket.created_at, ticket.resolution_due_at, ticket.first_response_at


async def sweep(store: Store, now: datetime, policy: SlaPolicy, *, limit: int = 500) -> SweepReport:
    """One pass over the open tickets people own."""
    warned = breached = reminded = 0
    async with store.write() as session:
        tickets = (
            await session.scalars(
                select(Ticket)
                .where(
                    Ticket.status.in_(_OPEN),
                    Ticket.escalated_at.is_not(None),
                    Ticket.waiting_since.is_(None),
                    or_(Ticket.overdue_at.is_(None), Ticket.assignee_id.is_not(None)),
                )
                .order_by(Ticket.id)
                .limit(limit)
            )
        ).all()
        for ticket in tickets:
            name, start, due, counts_since = _target(ticket)
            if due is not None and ticket.overdue_at is None:
                if now >= due:
                    _breach(session, ticket, name, now)
                    breached += 1
                    continue
                warn_at = start + (due - start) * policy.warn_at
                fresh = ticket.sla_warned_at is None or ticket.sla_warned_at < counts_since
                if now >= warn_at and fresh:
                    record_event(
                        session,
                        ticket,
                        EventKind.SLA_WARNING,
                        name,
                        due.isoformat(),
                        now,
                        note=f"{round(policy.warn_at * 100)}% of the {name} target",
                    )
                    ticket.sla_warned_at = now
                    warned += 1
            if ticket.assignee_id is not None and await _owes_update(session, ticket, now, policy):
                record_event(
                    session,
                    ticket,
                    EventKind.UPDATE_REMINDER,
                    None,
                    None,
                    now,
                    note="no progress update to the customer in 24 hours",
                )
                reminded += 1
    return SweepReport(warned, breached, reminded)


def _breach(session: AsyncSession, ticket: Ticket, name: str, now: datetime) -> None:
    """Mark it overdue, alert the supervisor (the event the console shows), escalate priority."""
    ticket.overdue_at = now
    record_event(
        session,
        ticket,
        EventKind.SLA_BREACH,
        name,
        None,
        now,
        note=f"{name} target missed: supervisor alerted",
    )
    bumped = _BUMP.get(ticket.priority)
    if bumped is not None:
        record_event(
            session,
            ticket,
            EventKind.PRIORITY,
            ticket.priority,
            bumped,
            now,
            note="raised after an SLA breach",
        )
        ticket.priority = bumped
    ticket.updated_at = now


async def _owes_update(
    session: AsyncSession, ticket: Ticket, now: datetime, policy: SlaPolicy
) -> bool:
    last = ticket.last_update_at or ticket.first_response_at or ticket.escalated_at
    if last is None or now - last < policy.update_every:
        return False
    reminded = await session.scalar(
        select(
            exists().where(
                TicketEvent.ticket_id == ticket.id,
                TicketEvent.kind == EventKind.UPDATE_REMINDER.value,
                TicketEvent.created_at > last,
            )
        )
    )
    return not reminded


def sla_sweep_job() -> str:
    """The RQ job: one sweep with the settings of the worker's environment."""
    settings = Settings()

    async def run() -> SweepReport:
        store = Store(settings.database_url)
        try:
            return await sweep(store, utcnow(), SlaPolicy.from_settings(settings.sla))
        finally:
            await store.close()

    report = asyncio.run(run())
    return f"warned {report.warned}, breached {report.breached}, reminded {report.reminded}"
