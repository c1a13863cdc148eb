"""The SLA sweep: warns the assignee at 80% of a target, flags breaches, enforces the 24-hour
progress rule. Run it at least once a minute (``gateway cron`` registers it with RQ's cron
scheduler every 30 s); it is idempotent, so two schedulers cannot double a warning.

Targets are the due times stored on the ticket (first response, resolution); the clock is paused
while the ticket waits for the customer (``waiting_since``), which moves the resolution target
later when it resumes. Only tickets people own are swept: the bot's own conversations owe no
human response. A team with business hours (``gateway/sla.py``) is measured in working time
instead: the sweep counts it, minus the waits, and writes the due times it implies; so is the
progress rule (24 working hours without an update, not 24 hours of nights and weekends).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.events import record_event
from gateway.models import OPEN_STATUSES, EventKind, Priority, TicketStatus
from gateway.settings import Settings
from gateway.sla import BusinessHours, SlaPolicy
from gateway.store import Store
from gateway.store.tables import Team, Ticket, TicketEvent
from gateway.store.types import utcnow

QUEUE = "sla"
"""The sweep's own RQ queue, which workers take first: a backlog of notices cannot hold up the
breach check (``gateway cron`` enqueues it here)."""

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
        rows = (
            await session.execute(
                select(Ticket, Team.name)
                .outerjoin(Team, Team.id == Ticket.team_id)
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
        for ticket, team in rows:
            name, start, due, counts_since = _target(ticket)
            calendar = policy.calendar(team)
            if due is not None and ticket.overdue_at is None:
                if calendar is None:
                    late, warn = now >= due, now >= start + (due - start) * policy.warn_at
                else:
                    late, warn, due = await _business_clock(
                        session, ticket, name, start, now, policy, calendar
                    )
                if late:
                    _breach(session, ticket, name, now)
                    breached += 1
                    continue
                fresh = ticket.sla_warned_at is None or ticket.sla_warned_at < counts_since
                if warn and fresh:
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
            if ticket.assignee_id is not None and await _owes_update(
                session, ticket, now, policy, calendar
            ):
                hours = f"{policy.update_every.total_seconds() / 3600:g}"
                kind = "working hours" if calendar is not None else "hours"
                record_event(
                    session,
                    ticket,
                    EventKind.UPDATE_REMINDER,
                    None,
                    None,
                    now,
                    note=f"no progress update to the customer in {hours} {kind}",
                )
                reminded += 1
    return SweepReport(warned, breached, reminded)


async def _business_clock(
    session: AsyncSession,
    ticket: Ticket,
    name: str,
    start: datetime,
    now: datetime,
    policy: SlaPolicy,
    calendar: BusinessHours,
) -> tuple[bool, bool, datetime]:
    """Late, worth a warning, and the due time, counting only the team's working time (minus
    the time the ticket waited for the customer, for the resolution target)."""
    targets = policy.first_response if name == "first_response" else policy.resolution
    target = targets[Priority(ticket.priority)]
    paused = timedelta()
    if name == "resolution":
        for since, until in await _pauses(session, ticket.id, now):
            paused += calendar.between(since, until)
    elapsed = calendar.between(start, now) - paused
    due = calendar.add(start, target + paused)
    # The stored due times follow the calendar (the console and the queue order read them).
    if name == "first_response":
        ticket.first_response_due_at = due
    else:
        ticket.resolution_due_at = due
    return elapsed >= target, elapsed >= target * policy.warn_at, due


async def _pauses(
    session: AsyncSession, ticket_id: int, now: datetime
) -> list[tuple[datetime, datetime]]:
    """When the ticket waited for the customer, from its status changes."""
    changes = await session.execute(
        select(TicketEvent.old_value, TicketEvent.new_value, TicketEvent.created_at)
        .where(TicketEvent.ticket_id == ticket_id, TicketEvent.kind == EventKind.STATUS.value)
        .order_by(TicketEvent.id)
    )
    waiting = TicketStatus.WAITING_CUSTOMER.value
    pauses: list[tuple[datetime, datetime]] = []
    since: datetime | None = None
    for _, new, at in changes.all():
        if new == waiting and since is None:
            since = at
        elif new != waiting and since is not None:
            pauses.append((since, at))
            since = None
    if since is not None:
        pauses.append((since, now))
    return pauses


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
    session: AsyncSession,
    ticket: Ticket,
    now: datetime,
    policy: SlaPolicy,
    calendar: BusinessHours | None,
) -> bool:
    last = ticket.last_update_at or ticket.first_response_at or ticket.escalated_at
    if last is None:
        return False
    since = now - last if calendar is None else calendar.between(last, now)
    if since < policy.update_every:
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
            policy = SlaPolicy.from_settings(settings.sla, zone=settings.zone)
            return await sweep(store, utcnow(), policy)
        finally:
            await store.close()

    report = asyncio.run(run())
    return f"warned {report.warned}, breached {report.breached}, reminded {report.reminded}"
