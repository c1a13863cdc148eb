"""The router: the knowledge base answers, asks which one, or hands the ticket to people."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from gateway.dispatch import LeastLoaded
from gateway.models import AgentRole, AuthorType, EventKind, MessageKind, OutboxKind
from gateway.pipeline import Pipeline
from gateway.routing import Route, Router
from gateway.store import Store
from gateway.store.tables import Agent, OutboxRow, Ticket, TicketEvent, TicketMessage
from knowledge_base.base import Answer, Candidate, Clarify, Decline, NeverMatches, Verdict
from tests.factories import Clock, inbound, make_ingest


class TableKB:
    """A knowledge base that knows a fixed table of questions."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def match(self, text: str, *, locale: str | None = None) -> Verdict:
        self.asked.append(text)
        if "invoice" in text:
            return Answer(
                entry_id="inv", title="Invoices", answer="Invoices are in Orders.", score=0.9
            )
        if "return" in text:
            return Clarify(
                candidates=(
                    Candidate(entry_id="ret", title="How do I return an item?", score=0.6),
                    Candidate(entry_id="ref", title="When is my refund paid?", score=0.58),
                )
            )
        return Decline(top=Candidate(entry_id="inv", title="Invoices", score=0.1))


async def outbox(store: Store) -> list[tuple[str, str]]:
    async with store.read() as session:
        rows = (await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all()
        return [(r.kind, r.template) for r in rows]


async def test_a_confident_answer_is_sent_at_once(store: Store) -> None:
    kb = TableKB()
    stored = await make_ingest(store)(inbound(text="where is my invoice?", locale="en"))
    outcome = await Router(store, kb).route(stored.message.id)
    assert outcome.route is Route.ANSWERED
    async with store.read() as session:
        reply = await session.get_one(TicketMessage, outcome.bot_message_id)
        routed = await session.get_one(TicketMessage, stored.message.id)
    assert (reply.kind, reply.author_type) == (MessageKind.OUTGOING, AuthorType.BOT)
    assert reply.text == "Invoices are in Orders."
    assert reply.channel_meta["kb_entry_id"] == "inv"
    assert routed.routed_at is not None
    assert await outbox(store) == [("notice", "ticket_received"), ("reply", "message")]


async def test_close_candidates_make_the_bot_ask_which_one(store: Store) -> None:
    stored = await make_ingest(store)(inbound(text="return"))
    outcome = await Router(store, TableKB()).route(stored.message.id)
    assert outcome.route is Route.CLARIFY
    async with store.read() as session:
        reply = await session.get_one(TicketMessage, outcome.bot_message_id)
    assert reply.channel_meta["kb_choices"] == ["ret", "ref"]
    assert "How do I return an item?" in reply.text


async def test_a_declined_question_escalates_once(store: Store) -> None:
    stored = await make_ingest(store)(inbound(text="my parcel arrived broken"))
    router = Router(store, TableKB())
    assert (await router.route(stored.message.id)).route is Route.ESCALATED
    assert (await router.route(stored.message.id)).route is Route.SILENT  # idempotent
    async with store.read() as session:
        ticket = await session.get_one(Ticket, stored.ticket.id)
        events = (await session.scalars(select(TicketEvent.kind))).all()
    assert ticket.escalated_at is not None
    assert events.count(EventKind.ESCALATED) == 1
    assert await outbox(store) == [("notice", "ticket_received"), ("notice", "escalated")]


async def test_the_bot_stays_silent_once_people_have_the_ticket(store: Store) -> None:
    kb = TableKB()
    ingest = make_ingest(store)
    router = Router(store, kb)
    first = await ingest(inbound(text="broken"))
    await router.route(first.message.id)  # escalates
    later = await ingest(inbound(text="and where is my invoice?"))
    assert later.routed  # ingest saw the agent: the router has nothing to do
    assert (await router.route(later.message.id, seen=later)).route is Route.WITH_AGENT
    assert (await router.route(later.message.id)).route is Route.SILENT  # routed already
    assert kb.asked == ["broken"]
    kinds = [k for k, _ in await outbox(store)]
    assert kinds.count(OutboxKind.REPLY) == 0


async def test_an_automatic_message_gets_no_answer(store: Store) -> None:
    kb = TableKB()
    stored = await make_ingest(store)(inbound(text="invoice", auto_submitted=True))
    assert stored.routed
    assert (await Router(store, kb).route(stored.message.id, seen=stored)).route is Route.SILENT
    assert kb.asked == []


async def test_the_sweep_routes_what_a_crash_left_unrouted(store: Store) -> None:
    clock = Clock()
    stored = await make_ingest(store, clock)(inbound(text="where is my invoice?"))
    router = Router(store, TableKB(), clock=clock)
    assert await router.sweep() == 0  # too young: its routing task may still be running
    clock.now += timedelta(minutes=1)
    assert await router.sweep() == 1
    assert await router.sweep() == 0
    async with store.read() as session:
        routed = await session.get_one(TicketMessage, stored.message.id)
    assert routed.routed_at is not None


async def test_the_pipeline_routes_after_commit_and_replays_route_nothing_new(store: Store) -> None:
    ingest = make_ingest(store)
    pipeline = Pipeline(ingest, Router(store, TableKB()))
    message = inbound(text="invoice please")
    first = await pipeline.on_message(message)
    await pipeline.drain()
    again = await pipeline.on_message(message)
    await pipeline.drain()
    assert again.duplicate and again.message.id == first.message.id
    assert await outbox(store) == [("notice", "ticket_received"), ("reply", "message")]


async def test_never_matches_escalates_everything(store: Store) -> None:
    stored = await make_ingest(store)(inbound(text="invoice"))
    assert (await Router(store, NeverMatches()).route(stored.message.id)).route is Route.ESCALATED


async def test_two_messages_routed_at_once_escalate_their_ticket_once(store: Store) -> None:
    # Regression: on PostgreSQL both routings saw an unescalated ticket and both escalated it,
    # sending the customer two "an agent will take over" notices.
    ingest = make_ingest(store)
    first = await ingest(inbound(text="broken"))
    second = await ingest(inbound(text="still broken"))
    router = Router(store, TableKB())
    outcomes = await asyncio.gather(router.route(first.message.id), router.route(second.message.id))
    assert sorted(o.route for o in outcomes) == sorted([Route.ESCALATED, Route.WITH_AGENT])
    assert [t for _, t in await outbox(store)].count("escalated") == 1


async def test_a_batch_escalating_several_tickets_writes_each_ones_event_and_notice(
    store: Store,
) -> None:
    # The router inserts a batch's events and notices together at the end of its transaction:
    # each ticket still gets its own, in order, and one notice (assigned or queued), not two.
    async with store.write() as session:
        session.add(
            Agent(
                email="a@shop.test",
                name="Bo",
                role=AgentRole.AGENT.value,
                password_hash="x",
                online=True,
                capacity=1,
            )
        )
    ingest = make_ingest(store)
    stored = [
        await ingest(inbound(text="broken", external_user_id=f"u{n}", thread_key=f"c{n}"))
        for n in range(3)
    ]
    router = Router(store, TableKB(), dispatcher=LeastLoaded())
    outcomes = await asyncio.gather(*(router.route(s.message.id) for s in stored))
    assert [o.route for o in outcomes] == [Route.ESCALATED] * 3
    tickets = [s.ticket.id for s in stored]
    async with store.read() as session:
        events = (await session.scalars(select(TicketEvent).order_by(TicketEvent.id))).all()
        notices = (
            await session.scalars(
                select(OutboxRow)
                .where(OutboxRow.template.in_(["assigned", "escalated"]))
                .order_by(OutboxRow.id)
            )
        ).all()
        escalated = (await session.scalars(select(Ticket).where(Ticket.id.in_(tickets)))).all()
    assert all(t.escalated_at is not None for t in escalated)
    assert sorted(t.assignee_id is not None for t in escalated) == [False, False, True]
    for ticket_id in tickets:
        kinds = [e.kind for e in events if e.ticket_id == ticket_id]
        assert kinds[:2] == [EventKind.CREATED, EventKind.ESCALATED]
        mine = [n.template for n in notices if n.ticket_id == ticket_id]
        assert mine == (["assigned"] if EventKind.ASSIGNMENT in kinds else ["escalated"])
    assert sorted(n.template for n in notices) == ["assigned", "escalated", "escalated"]
    # A second routing of the same messages (a redelivery) writes nothing more.
    before = await outbox(store)
    again = await asyncio.gather(*(router.route(s.message.id) for s in stored))
    assert [o.route for o in again] == [Route.SILENT] * 3
    assert await outbox(store) == before


async def test_a_thanks_for_the_bots_answer_escalates_nothing(store: Store) -> None:
    kb = TableKB()
    pipeline = Pipeline(make_ingest(store), Router(store, kb))
    answered = await pipeline.on_message(inbound(text="where is my invoice?", locale="en"))
    await pipeline.drain()
    thanks = await pipeline.on_message(inbound(text="great, thank you!", locale="en"))
    await pipeline.drain()
    assert thanks.ticket.id == answered.ticket.id and thanks.routed
    assert kb.asked == ["where is my invoice?"]  # no miss recorded for "thank you" either
    async with store.read() as session:
        ticket = await session.get_one(Ticket, answered.ticket.id)
    assert ticket.escalated_at is None
    assert await outbox(store) == [("notice", "ticket_received"), ("reply", "message")]


async def test_a_first_message_of_only_thanks_still_reaches_people(store: Store) -> None:
    kb = TableKB()
    pipeline = Pipeline(make_ingest(store), Router(store, kb))
    stored = await pipeline.on_message(inbound(text="thanks"))
    await pipeline.drain()
    assert stored.new_ticket and not stored.routed
    async with store.read() as session:
        ticket = await session.get_one(Ticket, stored.ticket.id)
    assert ticket.escalated_at is not None
