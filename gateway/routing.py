"""The router: after ingest commits, the knowledge base answers or the ticket escalates.

Routing runs after the commit (the channel's ack never waits for the knowledge base). Each incoming
message records ``routed_at`` in the routing transaction; a message left unrouted by a crash is
routed again when the channel redelivers it or when the sweep finds it (:meth:`Router.sweep`).
A wordless part of what a customer sent as one may be left unrouted a little longer
(:attr:`Route.LATER`, :mod:`gateway.parts`): the pipeline routes it again after the delay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.batching import GroupCommit
from gateway.dispatch import known_vips
from gateway.events import defer_events, record_event, write_deferred_events
from gateway.ingest import IngestResult
from gateway.kb_misses import MissKind, record_miss
from gateway.models import AuthorType, Channel, EventKind, MessageKind, NeedType, OutboxKind
from gateway.outbox import defer_outbox, queue_outbox, reply_values, write_deferred_outbox
from gateway.parts import part_group
from gateway.store import Store
from gateway.store.tables import Contact, Ticket, TicketMessage
from gateway.store.types import utcnow
from knowledge_base.base import Answer, Clarify, Decline, KnowledgeBase, Verdict
from knowledge_base.escalation import EscalationIntent, escalation_intent

log = logging.getLogger(__name__)

MESSAGES: Table = TicketMessage.__table__  # type: ignore[assignment]

# Built once, not per batch: building one (ORM columns annotated, its cache key computed) was
# part of every routing batch's fixed cost.
_CLAIM = (
    update(MESSAGES)
    .where(MESSAGES.c.id.in_(bindparam("ids", expanding=True)), MESSAGES.c.routed_at.is_(None))
    .values(routed_at=bindparam("now"))
    .returning(MESSAGES.c.id, MESSAGES.c.ticket_id, MESSAGES.c.text)
)
_LOCK_TICKETS = (
    select(Ticket, Contact.vip)
    .join(Contact, Contact.id == Ticket.contact_id)
    .where(Ticket.id.in_(bindparam("ids", expanding=True)))
    .order_by(Ticket.id)
    .with_for_update(of=Ticket)
)


class Route(StrEnum):
    ANSWERED = "answered"
    CLARIFY = "clarify"
    ESCALATED = "escalated"
    WITH_AGENT = "with_agent"
    """A person already has the conversation: the bot stays silent."""
    SILENT = "silent"
    """Nothing to answer (an automatic mail, a message routed before)."""
    LATER = "later"
    """Not decided yet: a wordless part whose words may still come. Left unrouted, to be
    routed again after :attr:`RouteOutcome.wait` seconds (or by the sweep)."""


@dataclass(frozen=True, slots=True)
class RouteOutcome:
    route: Route
    bot_message_id: int | None = None
    wait: float | None = None
    """Seconds before routing it again (:attr:`Route.LATER`)."""


class Dispatcher(Protocol):
    """Assigns an escalated ticket to a team and agent (the agent console's issue builds it)."""

    async def dispatch(self, session: AsyncSession, ticket: Ticket, now: datetime) -> None: ...

    async def fill(self, session: AsyncSession, team_id: int | None, now: datetime) -> int:
        """Assign queued tickets of a team whose agents have room again; returns how many."""
        ...


class QueueOnly:
    """Leaves escalated tickets unassigned in the queue, for agents to claim."""

    async def dispatch(self, session: AsyncSession, ticket: Ticket, now: datetime) -> None:
        return None

    async def fill(self, session: AsyncSession, team_id: int | None, now: datetime) -> int:
        return 0


@dataclass(frozen=True, slots=True)
class _Decision:
    message_id: int
    verdict: Verdict | None
    """None: nothing was asked (an automatic or empty message, or people have the ticket)."""
    complaint: bool = False
    """The customer complained: the ticket escalates as a complaint."""
    asked_kb: bool = False
    """The verdict is the knowledge base's (not escalation words): a decline is a miss."""
    part_of: str | None = None
    """A wordless part escalating because no part of its group had words: looked at again
    under the ticket's lock, where words committed since go for it (:mod:`gateway.parts`)."""


class Router:
    """Decides what happens to each incoming message once it is stored."""

    def __init__(
        self,
        store: Store,
        kb: KnowledgeBase,
        *,
        dispatcher: Dispatcher | None = None,
        clock: Callable[[], datetime] = utcnow,
        part_wait: float = 3.0,
        part_cap: timedelta = timedelta(seconds=30),
    ) -> None:
        """A router asking ``kb``, handing escalated tickets to ``dispatcher``.

        Args:
            part_wait: seconds a wordless part of what a customer sent as one (``part_of``)
                waits, from the group's newest part, for the part with the words.
            part_cap: from the group's first part, how long a stream of parts is waited for
                at most. Not past the sweep's age, so the sweep always decides.
        """
        self.store = store
        self.kb = kb
        self.dispatcher = dispatcher or QueueOnly()
        self.clock = clock
        self.part_wait = part_wait
        self.part_cap = part_cap
        self._writes = GroupCommit(self._write, max_writers=store.writers, turns=store.write_turns)

    async def route(self, message_id: int, *, seen: IngestResult | None = None) -> RouteOutcome:
        """Route one stored incoming message (idempotent: a routed message is left alone).

        ``seen`` is what ingest returned for it, which saves reading it back; the decision is
        checked again under lock when it is written.
        """
        if seen is not None:
            # The stored rows, not the validated models: building those costs more than routing.
            with_agent = seen.ticket_row["escalated_at"] is not None
            if seen.routed:
                return RouteOutcome(Route.WITH_AGENT if with_agent else Route.SILENT)
            question, meta = seen.message_row["text"], seen.message_row["channel_meta"]
            attachments = seen.message_row["attachments"]
            ticket_id = seen.ticket_id
        else:
            async with self.store.read() as session:
                stored = await session.get_one(TicketMessage, message_id)
                if stored.routed_at is not None:
                    return RouteOutcome(Route.SILENT)
                found = await session.get_one(Ticket, stored.ticket_id)
                with_agent = found.escalated_at is not None
                question, meta = stored.text, stored.channel_meta
                attachments = stored.attachments
                ticket_id = stored.ticket_id
        locale = meta.get("locale")
        if with_agent or meta.get("auto_submitted"):
            return await self._writes.submit(_Decision(message_id, None))
        part_of = meta.get("part_of")
        if part_of and not question.strip():
            # One part of what the customer sent as one (an album's photo): it goes with the
            # part whose words are asked, and waits while the group's parts still come in.
            async with self.store.read() as session:
                group = await part_group(session, ticket_id, str(part_of))
            if group.asked:
                return await self._writes.submit(_Decision(message_id, None))
            wait = group.wait(self.clock(), quiet=self.part_wait, cap=self.part_cap)
            if wait is not None:
                return RouteOutcome(Route.LATER, wait=wait)
        if meta.get("text_from") or not question.strip():
            # Nothing to ask the knowledge base: only what the customer wrote is a question,
            # not the line a channel made of a shared location or a sticker's emoji, nor what
            # they wrote for people (``text_from``). That, and what they sent instead (a photo
            # or a voice note without a caption, a place, a sticker), only people can read:
            # it escalates, or agents would never see a new ticket that holds nothing else.
            # A message with nothing in it (a shared contact) is only stored.
            sent = bool(question.strip()) or bool(attachments)
            declined = Decline() if sent else None
            group_of = str(part_of) if part_of and not question.strip() else None
            return await self._writes.submit(_Decision(message_id, declined, part_of=group_of))
        intent = escalation_intent(question)
        if intent is not None:
            # "人工", "human", "投诉", "complaint": straight to people, no FAQ answer.
            complaint = intent is EscalationIntent.COMPLAINT
            return await self._writes.submit(_Decision(message_id, Decline(), complaint))
        # The knowledge base runs outside any transaction: a slow match holds no lock.
        verdict = await self.kb.match(question, locale=locale if isinstance(locale, str) else None)
        return await self._writes.submit(_Decision(message_id, verdict, asked_kb=True))

    async def _write(self, decisions: list[_Decision]) -> list[RouteOutcome]:
        """Write a batch of routing decisions in one transaction."""
        async with self.store.write() as session:
            now = self.clock()
            # The batch's events and notices are inserted at the end, one statement each,
            # in this transaction (invariant 3), rather than as an ORM object per row.
            defer_events(session)
            defer_outbox(session)
            # Claim the messages: one statement both marks them routed and, by its row locks,
            # keeps a second router (a redelivery, the sweep) from routing them again.
            claimed = {
                message_id: (ticket_id, text)
                for message_id, ticket_id, text in await session.execute(
                    _CLAIM, {"ids": list({d.message_id for d in decisions}), "now": now}
                )
            }
            # Lock the tickets (in id order: no deadlocks with other batches or with ingest):
            # two messages of one conversation routed at once must not both escalate it, or
            # answer after it escalated. Their contacts' VIP flags come along (escalation
            # raises a VIP's priority): a column, not a Contact entity per ticket.
            tickets: dict[int, Ticket] = {}
            if claimed:
                rows = await session.execute(
                    _LOCK_TICKETS, {"ids": list({ticket_id for ticket_id, _ in claimed.values()})}
                )
                vips = known_vips(session)
                for ticket, vip in rows:
                    tickets[ticket.id] = ticket
                    vips[ticket.contact_id] = vip
            routes: list[tuple[Route, TicketMessage | None]] = []
            for decision in decisions:
                if decision.message_id not in claimed:
                    routes.append((Route.SILENT, None))  # routed before
                    continue
                ticket_id, text = claimed[decision.message_id]
                if decision.part_of is not None:
                    # Read before the lock: words stored since (ingest locks the ticket too)
                    # are seen now, and the part goes with them instead of escalating beside
                    # the knowledge base's answer.
                    group = await part_group(session, ticket_id, decision.part_of)
                    if group.asked:
                        decision = _Decision(decision.message_id, None)
                routes.append(await self._decide(session, decision, tickets[ticket_id], text, now))
            replies = [(tickets[r.ticket_id], r) for _, r in routes if r is not None]
            if replies:
                await session.flush()  # one flush gives every bot reply its id
                for ticket, reply in replies:
                    payload = _kb_payload(reply)
                    queue_outbox(session, **reply_values(ticket, reply.id, now, payload=payload))
            await write_deferred_events(session)
            await write_deferred_outbox(session)
            return [RouteOutcome(route, reply.id if reply else None) for route, reply in routes]

    async def _decide(
        self,
        session: AsyncSession,
        decision: _Decision,
        ticket: Ticket,
        question: str,
        now: datetime,
    ) -> tuple[Route, TicketMessage | None]:
        verdict = decision.verdict
        if ticket.escalated_at is not None:
            return Route.WITH_AGENT, None
        if verdict is None:
            return Route.SILENT, None
        if isinstance(verdict, Answer):
            return Route.ANSWERED, _bot_reply(
                session, ticket, verdict.answer, now, entry_id=verdict.entry_id
            )
        if isinstance(verdict, Clarify):  # otherwise a Decline: people take it
            titles = "\n".join(c.title for c in verdict.candidates)
            choices = [c.entry_id for c in verdict.candidates]
            return Route.CLARIFY, _bot_reply(session, ticket, titles, now, choices=choices)
        if decision.complaint and ticket.need_type != NeedType.COMPLAINT:
            record_event(
                session, ticket, EventKind.NEED_TYPE, ticket.need_type, NeedType.COMPLAINT, now
            )
            ticket.need_type = NeedType.COMPLAINT.value
        if decision.asked_kb and isinstance(verdict, Decline) and verdict.top is not None:
            # A KB with entries had no confident answer: supervisors see the question. (With
            # no knowledge base at all there is nothing to grow, and no row to write.)
            await record_miss(session, MissKind.UNANSWERED, question, ticket_id=ticket.id, now=now)
        await self.escalate(session, ticket, now)
        return Route.ESCALATED, None

    async def escalate(
        self, session: AsyncSession, ticket: Ticket, now: datetime, *, note: str | None = None
    ) -> None:
        """Hand the ticket to people: mark it, dispatch it, tell the customer (who has it, or
        that it waits for the next free agent)."""
        if ticket.escalated_at is not None:
            return
        ticket.escalated_at = now
        ticket.updated_at = now
        record_event(session, ticket, EventKind.ESCALATED, None, "queue", now, note=note)
        unassigned = ticket.assignee_id is None
        await self.dispatcher.dispatch(session, ticket, now)
        if unassigned and ticket.assignee_id is not None:
            return  # dispatch's "assigned" notice names who has it: one notice, not two
        queue_outbox(
            session,
            kind=OutboxKind.NOTICE,
            template="escalated",
            channel=Channel(ticket.channel),
            contact_id=ticket.contact_id,
            ticket_id=ticket.id,
            now=now,
        )

    async def sweep(
        self, *, older_than: timedelta = timedelta(seconds=30), limit: int = 100
    ) -> int:
        """Route incoming messages a crash (or a shutdown) left unrouted; returns how many it
        routed, not counting those still waiting for the rest of their group."""
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
        routed = 0
        for message_id in ids:
            if (await self.route(message_id)).route is not Route.LATER:
                routed += 1
        return routed


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


def _kb_payload(reply: TicketMessage) -> dict[str, object]:
    """What a channel needs to offer "did this help?" (or the choices) with a bot answer."""
    return {k: v for k, v in reply.channel_meta.items() if k in ("kb_entry_id", "kb_choices")}
