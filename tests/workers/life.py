"""A ticket's whole life, the same on every channel: what the customer must hear, in order.

Each channel test supplies a :class:`Customer` (how they write, what reached them, how they rate);
the desk side acts through ``gateway.desk``; real RQ workers deliver everything owed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlalchemy import func, select

from gateway import desk
from gateway.models import EventKind, OutboxStatus, TicketStatus
from gateway.store.tables import OutboxRow, Survey, Ticket, TicketEvent
from tests.workers.conftest import Courier, Office, outbox


@dataclass(frozen=True)
class Heard:
    """One message that reached the customer: its outbox template and its text."""

    template: str
    text: str


class Customer(Protocol):
    async def write(self, text: str) -> None:
        """Send ``text`` on the channel; returns once it is stored and routed."""

    async def heard(self, expected: int) -> list[Heard]:
        """Everything that reached the customer, in order, once there are ``expected``."""

    async def rate(self, number: str, score: int, comment: str) -> str | None:
        """Answer the survey of ticket ``number`` the channel's way; returns the comment the
        channel carries (``None`` where it has no place for one)."""


EXPECTED = [
    "ticket_received",  # with the promised response time
    "assigned",  # the bot handed over and dispatch named the agent (one notice, not two)
    "in_progress",  # the agent confirmed receipt
    "message",  # the agent's question
    "waiting_customer",
    "progress",  # the agent's progress update
    "resolved",  # asking the customer to confirm
    "survey",
]


async def live(customer: Customer, office: Office, courier: Courier) -> str:
    """Take one ticket from first message to a low rating; returns its number."""
    clock = office.clock
    await customer.write("My blender stopped working")
    await courier.deliver()
    async with office.store.read() as session:
        ticket = await session.scalar(select(Ticket))
        assert ticket is not None
        number: str = ticket.number
    assert ticket.assignee_id == office.agent.agent_id

    # Each step is delivered before the next: rows owed at the same moment go out replies
    # first (the queues' order), so only steps apart in time have an order the customer sees.
    clock.now += timedelta(minutes=10)
    await office.change(number, status=TicketStatus.IN_PROGRESS, team_id=office.team_id)
    await courier.deliver()
    await office.act(number, desk.reply, "Could you send us a photo of the label?")
    await courier.deliver()
    await office.change(number, status=TicketStatus.WAITING_CUSTOMER)
    await courier.deliver()

    clock.now += timedelta(hours=2)
    await customer.write("Here is the label: BL-2000")
    clock.now += timedelta(hours=1)
    await office.act(number, desk.progress, "A replacement motor ships today")
    await courier.deliver()

    clock.now += timedelta(days=1)
    await office.change(number, status=TicketStatus.RESOLVED)
    await courier.deliver()
    clock.now += timedelta(hours=1)
    await office.change(number, status=TicketStatus.CLOSED)  # the customer confirmed
    await courier.deliver()

    heard = await customer.heard(len(EXPECTED))
    assert [h.template for h in heard] == EXPECTED
    texts = {h.template: h.text for h in heard}
    assert number in texts["ticket_received"] and "24" in texts["ticket_received"]
    assert "Li Lei" in texts["assigned"]
    assert "Could you send us a photo of the label?" in texts["message"]
    assert "A replacement motor ships today" in texts["progress"]
    assert any(word in texts["resolved"] for word in ("confirm", "确认"))

    comment = await customer.rate(number, 1, "still broken")
    await check_rated(office, number, 1, comment)
    return number


async def check_rated(office: Office, number: str, score: int, comment: str | None) -> None:
    """Every row went out once; one survey; the rating reopened it for the team's supervisor."""
    rows = await outbox(office.store)
    assert [r.template for r in rows] == EXPECTED
    assert {r.status for r in rows} == {OutboxStatus.SENT.value}
    assert all(r.attempts == 1 for r in rows), [(r.template, r.attempts) for r in rows]
    async with office.store.read() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        surveys = list((await session.scalars(select(Survey))).all())
        reopened = await session.scalar(
            select(func.count()).where(
                TicketEvent.ticket_id == ticket.id, TicketEvent.kind == EventKind.REOPENED.value
            )
        )
        survey_rows = await session.scalar(select(func.count()).where(OutboxRow.kind == "survey"))
    assert len(surveys) == 1 and survey_rows == 1
    assert (surveys[0].score, surveys[0].comment) == (score, comment)
    assert ticket.status == TicketStatus.REOPENED
    assert ticket.assignee_id == office.supervisor_id
    assert reopened == 1
