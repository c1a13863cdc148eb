"""SLA sweeps at the right moments (with a paused clock): a warning at 80%, a breach at the
deadline, the clock stopped while waiting for the customer, the 24-hour progress reminder."""

from __future__ import annotations

from datetime import timedelta

from gateway import desk
from gateway.accounts import create_agent
from gateway.models import AgentRole, EventKind, TicketStatus
from gateway.sla import DEFAULT_POLICY
from gateway.store import Store
from gateway.store.tables import Ticket
from tests.factories import Clock, inbound, make_ingest
from tests.timed_tickets import POLICIES, T0, escalated_ticket, kinds
from workers.sla_sweep import sweep


async def test_a_warning_at_80_percent_and_a_breach_at_the_deadline_once_each(
    store: Store,
) -> None:
    clock = Clock(T0)
    ticket_id = await escalated_ticket(store, clock)
    at = T0 + timedelta(hours=19)  # 79% of the 24 h first-response target
    assert (await sweep(store, at, DEFAULT_POLICY)).warned == 0
    at = T0 + timedelta(hours=19, minutes=13)
    assert (await sweep(store, at, DEFAULT_POLICY)).warned == 1
    assert (await sweep(store, at + timedelta(minutes=5), DEFAULT_POLICY)).warned == 0
    due = T0 + timedelta(hours=24)
    assert (await sweep(store, due - timedelta(seconds=1), DEFAULT_POLICY)).breached == 0
    assert (await sweep(store, due, DEFAULT_POLICY)).breached == 1
    assert (await sweep(store, due + timedelta(minutes=1), DEFAULT_POLICY)).breached == 0
    async with store.read() as session:
        ticket = await session.get_one(Ticket, ticket_id)
    assert ticket.overdue_at == due
    assert ticket.priority == "urgent"
    assert (await kinds(store, ticket_id)).count(EventKind.SLA_BREACH) == 1


async def test_the_clock_pauses_while_waiting_for_the_customer(store: Store) -> None:
    clock = Clock(T0)
    ticket_id = await escalated_ticket(store, clock)
    agent_id = await create_agent(
        store, email="a@shop.test", name="A", role=AgentRole.AGENT, password="long enough password"
    )
    actor = desk.Actor(agent_id, "A", may_take_over=True)
    async with store.write() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        await desk.reply(session, ticket, actor, "Could you send a photo?", T0 + timedelta(hours=1))
        await desk.change(
            session,
            ticket,
            actor,
            T0 + timedelta(hours=1),
            fields={"status": TicketStatus.WAITING_CUSTOMER},
            note_text=None,
            policies=POLICIES,
        )
        resolution_due = ticket.resolution_due_at
    assert resolution_due == T0 + timedelta(hours=120)
    # Weeks of waiting for the customer: no warning, no breach.
    report = await sweep(store, T0 + timedelta(hours=200), DEFAULT_POLICY)
    assert (report.warned, report.breached) == (0, 0)
    # Their out-of-office answer is no answer: the clock stays stopped, the customer's turn.
    clock.now = T0 + timedelta(hours=150)
    await make_ingest(store, clock)(
        inbound(external_user_id="u1", thread_key="u1", text="Away", auto_submitted=True)
    )
    async with store.read() as session:
        assert (await session.get_one(Ticket, ticket_id)).status == TicketStatus.WAITING_CUSTOMER
    # The customer answers after 201 hours: the clock runs again, 200 hours later.
    clock.now = T0 + timedelta(hours=201)
    await make_ingest(store, clock)(inbound(external_user_id="u1", thread_key="u1"))
    async with store.read() as session:
        ticket = await session.get_one(Ticket, ticket_id)
    assert ticket.status == TicketStatus.IN_PROGRESS
    assert ticket.waiting_since is None
    assert ticket.resolution_due_at == resolution_due + timedelta(hours=200)


async def test_an_open_ticket_without_an_update_for_24_hours_reminds_once(store: Store) -> None:
    clock = Clock(T0)
    ticket_id = await escalated_ticket(store, clock)
    agent_id = await create_agent(
        store, email="a@shop.test", name="A", role=AgentRole.AGENT, password="long enough password"
    )
    async with store.write() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        await desk.reply(session, ticket, desk.Actor(agent_id, "A", True), "On it", T0)
    assert (await sweep(store, T0 + timedelta(hours=23), DEFAULT_POLICY)).reminded == 0
    assert (await sweep(store, T0 + timedelta(hours=24), DEFAULT_POLICY)).reminded == 1
    assert (await sweep(store, T0 + timedelta(hours=30), DEFAULT_POLICY)).reminded == 0
