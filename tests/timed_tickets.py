"""An escalated ticket at a fixed moment (``T0``), its events, and its closing with a survey:
the setup the SLA and survey tests share."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from gateway import desk
from gateway.dispatch import LeastLoaded
from gateway.models import TicketStatus
from gateway.routing import Router
from gateway.settings import SurveySettings
from gateway.sla import DEFAULT_POLICY
from gateway.store import Store
from gateway.store.tables import Ticket, TicketEvent
from gateway.surveys import schedule_survey
from knowledge_base.base import NeverMatches
from tests.factories import SHANGHAI, Clock, inbound, make_ingest

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
# The default dispatch, SLA and survey rules, as the desk applies them.
POLICIES = desk.Policies(LeastLoaded(), DEFAULT_POLICY, SurveySettings(), SHANGHAI)


async def escalated_ticket(store: Store, clock: Clock, user: str = "u1") -> int:
    """The id of ``user``'s new ticket, escalated (the knowledge base declines) at ``clock``."""
    result = await make_ingest(store, clock)(inbound(external_user_id=user, thread_key=user))
    await Router(store, NeverMatches(), clock=clock).route(result.message.id)
    return result.ticket.id


async def kinds(store: Store, ticket_id: int) -> list[str]:
    """The kinds of the ticket's events, oldest first."""
    async with store.read() as session:
        rows = await session.scalars(
            select(TicketEvent.kind)
            .where(TicketEvent.ticket_id == ticket_id)
            .order_by(TicketEvent.id)
        )
        return list(rows.all())


async def close_with_survey(store: Store, ticket_id: int, *, survey: bool = True) -> None:
    """Close the ticket at ``T0`` and, unless ``survey`` is false, owe its survey."""
    async with store.write() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        ticket.status, ticket.closed_at = TicketStatus.CLOSED.value, T0
        if survey:
            await schedule_survey(
                session, ticket, T0, settings=SurveySettings(), shop_zone=SHANGHAI
            )
