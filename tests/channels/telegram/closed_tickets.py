"""Chat 777's ticket closed, and surveyed, for tests of what the chat sends afterwards."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from gateway.appkeys import PIPELINE
from gateway.models import TicketStatus
from gateway.settings import Settings, SurveySettings
from gateway.store import Store
from gateway.store.tables import Ticket
from gateway.surveys import schedule_survey
from tests.channels.telegram.conftest import Gateway, deliver_all
from tests.channels.telegram.private_chat import say


async def close_first_ticket(db: Store, closed_at: datetime) -> Ticket:
    """The only ticket in the database, closed (and resolved) at ``closed_at``."""
    async with db.write() as session:
        (ticket,) = (await session.scalars(select(Ticket))).all()
        ticket.status = TicketStatus.CLOSED.value
        ticket.resolved_at = ticket.closed_at = closed_at
        return ticket


async def surveyed_after_closing(
    gateway: Gateway, db: Store, settings: Settings, closed_at: datetime
) -> Ticket:
    """Chat 777's ticket, closed at ``closed_at``, and its survey sent."""
    app, client = gateway
    await say(client, 777, "my parcel arrived broken")
    await app[PIPELINE].drain()
    closed = await close_first_ticket(db, closed_at)
    async with db.write() as session:
        closed = await session.get_one(Ticket, closed.id)
        await schedule_survey(
            session,
            closed,
            closed_at,
            settings=SurveySettings(),
            shop_zone=ZoneInfo("Asia/Shanghai"),
        )
    await deliver_all(db, settings)
    return closed
