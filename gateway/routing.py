"""The router: after ingest commits, the knowledge base answers or the ticket escalates.

Routing runs after the commit (the channel's ack never waits for the knowledge base). Each incoming
message records ``routed_at`` in the routing transaction; a message left unrouted by a crash is
routed again when the channel redelivers it or when the sweep finds it (:meth:`Router.sweep`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.events import record_event
from gateway.models import AuthorType, Channel, EventKind, MessageKind, OutboxKind
from gateway.outbox import add_outbox
from gateway.store import Store
from gateway.store.tables import Ticket, TicketMessage
from gateway.store.types import utcnow
from knowledge_base.base import Answer, Clarify, KnowledgeBase

log = logging.getLogger(__name__)


class Route(StrEnum):
    ANSWERED = "answered"
    CLARIFY = "clarify"
    ESCALATED = "escalated"
    WITH_AGENT = "with_agent"
    """A person already has the conversation: the bot stays silent."""
    SILENT = "silent"
    """Nothing to answer (an automatic mail, a message routed before)."""


@dataclass(frozen=True, slots=True)
class RouteOutcome:
    route: Route
    bot_message_id: int | None = None


class Dispatcher(Protocol):
    """Assigns an escalated ticket to a team and agent (the agent console's issue builds it)."""

    async def dispatch(self, session: AsyncSession, ticket: Ticket, now: datetime) -> None: ...


class QueueOnly:
    """Leaves escalated tickets unassigned in the queue, for agents to claim."""

    async def dispatch(self, session: AsyncSession, ticket: Ticket, now: datetime) -> None:
        return None


class Router:
    """Decides what happens to each incoming message once it is stored."""

    def __init__(
        self,
        store: Store,
        kb: KnowledgeBase,
        *,
        dispatcher: Dispatcher | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.kb = kb
        self.dispatcher = dispatcher or QueueOnly()
        self.clock = clock

    async def route(self, message_id: int) -> RouteOutcome:
        """Route one stored incoming message (idempotent: a routed message is left alone)."""
        async with self.store.read() as session:
            message = await session.get_one(TicketMessage, message_id)
            if message.routed_at is not None:
                return RouteOutcome(Route.SILENT)
            ticket = await session.get_one(Ticket, message.ticket_id)
            with_agent = ticket.assignee_id is not None or ticket.escalated_at is not None
            question, locale = message.text, message.channel_meta.get("locale")
            auto_submitted = bool(message.channel_meta.get("auto_submitted"))
        verdict = None
        if not with_agent and not auto_submitted and question.strip():
            # The knowledge base runs outside any transaction: a slow match holds no lock.
            verdict = await self.kb.match(
                question, locale=locale if isinstance(locale, str) else None
            )
        async with self.store.write() as session:
            message = await session.get_one(TicketMessage, message_id, with_for_update=True)
            if message.routed_at is not None:
                return RouteOutcome(Route.SILENT)
            now = self.clock()
            message.routed_at = now
            # Lock the ticket: two messages of one conversation routed at once must not both
            # escalate it (or both answer after one escalated).
            ticket = await session.get_one(Ticket, message.ticket_id, with_for_update=True)
            if with_agent or ticket.assignee_id is not None or ticket.escalated_at is not None:
                return RouteOutcome(Route.WITH_AGENT)
            if verdict is None:
                return RouteOutcome(Route.SILENT)
            if isinstance(verdict, Answer):
                reply = _bot_reply(session, ticket, verdict.answer, now, entry_id=verdict.entry_id)
                await session.flush()
                _owe_reply(session, ticket, reply, now)
                return RouteOutcome(Route.ANSWERED, reply.id)
            if isinstance(verdict, Clarify):  # otherwise a Decline: people take it
                titles = [c.title for c in verdict.candidates]
                reply = _bot_reply(
                    session,
                    ticket,
                    "\n".join(titles),
                    now,
                    choices=[c.entry_id for c in verdict.candidates],
                )
                await session.flush()
                _owe_reply(session, ticket, reply, now)
                return RouteOutcome(Route.CLARIFY, reply.id)
            await self.escalate(session, ticket, now)
            return RouteOutcome(Route.ESCALATED)

    async def escalate(
        self, session: AsyncSession, ticket: Ticket, now: datetime, *, note: str | None = None
    ) -> None:
        """Hand the ticket to people: mark it, tell the customer, dispatch it."""
        if ticket.escalated_at is not None:
            return
        ticket.escalated_at = now
        ticket.updated_at = now
        record_event(session, ticket, EventKind.ESCALATED, None, "queue", now, note=note)
        add_outbox(
            session,
            kind=OutboxKind.NOTICE,
            template="escalated",
            channel=Channel(ticket.channel),
            contact_id=ticket.contact_id,
            ticket_id=ticket.id,
            now=now,
        )
        await self.dispatcher.dispatch(session, ticket, now)

    async def sweep(
        self, *, older_than: timedelta = timedelta(seconds=30), limit: int = 100
    ) -> int:
        """Route incoming messages a crash left unrouted; returns how many it routed."""
        cutoff = self.clock() - older_than
        async with self.store.read() as session:
            ids = (
                await session.scalars(
                    select(TicketMessage.id)
                    .where(
                        TicketMessage.routed_at.is_(None),
                        TicketMessage.kind == MessageKind.INCOMING.value,
                        TicketMessage.created_at < cutoff,
                    )
                    .order_by(TicketMessage.id)
                    .limit(limit)
                )
            ).all()
        for message_id in ids:
            await self.route(message_id)
        return len(ids)


def _bot_reply(
    session: AsyncSession,
    ticket: Ticket,
    text: str,
    now: datetime,
    *,
    entry_id: str | None = None,
    choices: list[str] | None = None,
) -> TicketMessage:
    meta: dict[str, object] = {}
    if entry_id is not None:
        meta["kb_entry_id"] = entry_id
    if choices is not None:
        meta["kb_choices"] = choices
    reply = TicketMessage(
        ticket_id=ticket.id,
        kind=MessageKind.OUTGOING.value,
        author_type=AuthorType.BOT.value,
        channel=ticket.channel,
        text=text,
        attachments=[],
        channel_meta=meta,
        created_at=now,
    )
    session.add(reply)
    ticket.updated_at = now
    return reply


def _owe_reply(session: AsyncSession, ticket: Ticket, reply: TicketMessage, now: datetime) -> None:
    add_outbox(
        session,
        kind=OutboxKind.REPLY,
        template="message",
        channel=Channel(ticket.channel),
        contact_id=ticket.contact_id,
        ticket_id=ticket.id,
        message_id=reply.id,
        now=now,
    )
