"""Dispatch (派单): escalated tickets go to the least-loaded online agent of their team.

Categories map to teams. Among the team's online agents under their capacity (open tickets each),
the one with the fewest open tickets wins, ties to the one idle longest. When nobody has room the
ticket waits in the team queue and :meth:`LeastLoaded.fill` assigns it as capacity frees.
A complaint or a VIP contact raises a normal ticket to urgent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.events import record_event
from gateway.models import (
    OPEN_STATUSES,
    AgentRole,
    Channel,
    EventKind,
    NeedType,
    OutboxKind,
    Priority,
    TicketStatus,
)
from gateway.outbox import queue_outbox
from gateway.sla import DEFAULT_POLICY, SlaPolicy
from gateway.store.tables import Agent, Category, Contact, Ticket

_OPEN = [s.value for s in OPEN_STATUSES]
_ONLINE_AGENTS = select(Agent).where(
    Agent.active.is_(True),
    Agent.online.is_(True),
    Agent.role.in_([AgentRole.AGENT.value, AgentRole.SUPERVISOR.value]),
)
"""Built once: the router asks it every batch, and building a statement costs CPU each time."""


class LeastLoaded:
    """The dispatcher the router hands escalated tickets to."""

    def __init__(self, sla: SlaPolicy = DEFAULT_POLICY) -> None:
        self.sla = sla

    async def dispatch(self, session: AsyncSession, ticket: Ticket, now: datetime) -> None:
        await self._raise_priority(session, ticket, now)
        if ticket.team_id is None and ticket.category_id is not None:
            with session.no_autoflush:  # a lookup; flushing the batch here costs a round each
                category = await session.get(Category, ticket.category_id)
            if category is not None and category.team_id is not None:
                ticket.team_id = category.team_id
        if ticket.assignee_id is not None:
            return  # a reopened ticket goes back to whoever had it
        await self._assign(session, ticket, now)

    async def fill(self, session: AsyncSession, team_id: int | None, now: datetime) -> int:
        """Assign queued tickets of ``team_id`` while agents have room; returns how many."""
        queued = await session.scalars(
            select(Ticket)
            .where(
                Ticket.assignee_id.is_(None),
                Ticket.escalated_at.is_not(None),
                Ticket.status.in_(_OPEN),
                Ticket.team_id.is_(None) if team_id is None else Ticket.team_id == team_id,
            )
            .order_by(Ticket.first_response_due_at, Ticket.id)
            .limit(50)
        )
        assigned = 0
        for ticket in queued.all():
            if not await self._assign(session, ticket, now):
                break
            assigned += 1
        return assigned

    async def _assign(self, session: AsyncSession, ticket: Ticket, now: datetime) -> bool:
        # Who is online does not change inside one transaction: ask once per team and batch.
        # No autoflush: flushing the batch's pending rows before every lookup would turn the
        # router's one batched write into a round of INSERTs per ticket (3x slower).
        cache: dict[int | None, list[Agent]] = session.info.setdefault("dispatch_agents", {})
        if ticket.team_id not in cache:
            query = _ONLINE_AGENTS
            if ticket.team_id is not None:
                query = query.where(Agent.team_id == ticket.team_id)
            with session.no_autoflush:
                cache[ticket.team_id] = list((await session.scalars(query)).all())
        agents = cache[ticket.team_id]
        if not agents:
            return False
        loads = await _open_tickets(session, agents)
        with_room = [a for a in agents if loads.get(a.id, 0) < a.capacity]
        if not with_room:
            return False
        # Fewest open tickets first; ties to the one idle longest (never assigned: first).
        agent = min(
            with_room,
            key=lambda a: (
                loads.get(a.id, 0),
                a.last_assigned_at is not None,
                a.last_assigned_at or now,
                a.id,
            ),
        )
        record_event(session, ticket, EventKind.ASSIGNMENT, None, str(agent.id), now)
        ticket.assignee_id = agent.id
        queue_outbox(  # the customer hears who has their ticket (issue 8's "assigned" notice)
            session,
            kind=OutboxKind.NOTICE,
            template="assigned",
            channel=Channel(ticket.channel),
            contact_id=ticket.contact_id,
            ticket_id=ticket.id,
            now=now,
            payload={"agent": agent.name},
        )
        if ticket.status in (TicketStatus.NEW, TicketStatus.REOPENED):
            record_event(
                session, ticket, EventKind.STATUS, ticket.status, TicketStatus.ASSIGNED, now
            )
            ticket.status = TicketStatus.ASSIGNED.value
        ticket.updated_at = now
        agent.last_assigned_at = now
        loads[agent.id] = loads.get(agent.id, 0) + 1
        return True

    async def _raise_priority(self, session: AsyncSession, ticket: Ticket, now: datetime) -> None:
        if ticket.priority != Priority.NORMAL:
            return
        vip = known_vips(session).get(ticket.contact_id)
        if vip is None:  # the router reads the flags with the tickets; elsewhere, one lookup
            with session.no_autoflush:
                contact = await session.get(Contact, ticket.contact_id)
            vip = contact is not None and contact.vip
        if ticket.need_type == NeedType.COMPLAINT or vip:
            record_event(session, ticket, EventKind.PRIORITY, ticket.priority, Priority.URGENT, now)
            ticket.priority = Priority.URGENT.value
            ticket.first_response_due_at = self.sla.first_response_due(
                Priority.URGENT, ticket.created_at
            )
            ticket.resolution_due_at = self.sla.resolution_due(Priority.URGENT, ticket.created_at)


def known_vips(session: AsyncSession) -> dict[int, bool]:
    """Contacts' VIP flags (by contact id) read earlier in this transaction: the router reads
    them with the tickets it locks, so escalating a batch looks up no contact."""
    vips: dict[int, bool] = session.info.setdefault("contact_vips", {})
    return vips


async def _open_tickets(session: AsyncSession, agents: list[Agent]) -> dict[int, int]:
    """Open tickets per agent, counted once per transaction and kept up to date by ``_assign``.

    Counting again for every ticket of a batch would flush the batch's pending rows before
    each count (a round of single-row statements per ticket): the counts are read once,
    after one flush, and each assignment adds to them.
    """
    loads: dict[int, int] = session.info.setdefault("dispatch_loads", {})
    missing = [a.id for a in agents if a.id not in loads]
    if missing:
        # Only for these (few) agents: uses the assignee index.
        counted = dict(
            (
                await session.execute(
                    select(Ticket.assignee_id, func.count())
                    .where(Ticket.assignee_id.in_(missing), Ticket.status.in_(_OPEN))
                    .group_by(Ticket.assignee_id)
                )
            ).all()
        )
        for agent_id in missing:
            loads[agent_id] = counted.get(agent_id, 0)
    return loads
