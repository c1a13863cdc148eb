"""The customer's "did this help?" on a bot answer: resolve the ticket, or hand it to people.

Any channel calls :func:`feedback` in its own write transaction once it has checked that the
message belongs to the sender's conversation. "Yes" resolves the ticket as resolved by the bot;
"no" escalates it (reopening it first if it was resolved or closed) with a note showing the agent
the question and the rejected answer, and counts the question as a ``not_helpful`` miss for
supervisors (:mod:`gateway.kb_misses`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.events import record_event
from gateway.kb_misses import MissKind, record_miss
from gateway.models import DONE_STATUSES, AuthorType, EventKind, MessageKind, TicketStatus
from gateway.reopening import reopen
from gateway.store.tables import Ticket, TicketMessage


class Escalates(Protocol):
    """What feedback needs from the router (:meth:`gateway.routing.Router.escalate`)."""

    async def escalate(
        self, session: AsyncSession, ticket: Ticket, now: datetime, *, note: str | None = None
    ) -> None: ...


class FeedbackError(LookupError):
    """The message is not a bot answer."""


@dataclass(frozen=True, slots=True)
class FeedbackOutcome:
    ticket: Ticket
    message: TicketMessage
    changed: bool
    """False for a repeat of the feedback already recorded (nothing was done again)."""
    resolved: bool = False
    escalated: bool = False


async def latest_answer_id(session: AsyncSession, ticket_id: int) -> int | None:
    """The ticket's latest bot answer from the knowledge base (for channels whose buttons
    name the ticket rather than the message)."""
    rows = await session.scalars(
        select(TicketMessage)
        .where(
            TicketMessage.ticket_id == ticket_id,
            TicketMessage.author_type == AuthorType.BOT.value,
        )
        .order_by(TicketMessage.id.desc())
        .limit(20)
    )
    for message in rows:
        if message.channel_meta.get("kb_entry_id"):
            return message.id
    return None


async def feedback(
    session: AsyncSession,
    message_id: int,
    helpful: bool,
    now: datetime,
    router: Escalates,
) -> FeedbackOutcome:
    """Record "did this help?" on the bot message ``message_id`` and act on it.

    Args:
        session: The caller's write transaction; the ticket is locked here.
        message_id: The bot's answer.
        helpful: The customer's answer.
        now: The time of the feedback.
        router: Escalates on "no" (tells the customer and dispatches the ticket).

    Raises:
        FeedbackError: ``message_id`` is not a bot message.
    """
    message = await session.get(TicketMessage, message_id, with_for_update=True)
    if message is None or message.author_type != AuthorType.BOT.value:
        raise FeedbackError(f"no bot answer {message_id}")
    ticket = await session.get_one(Ticket, message.ticket_id, with_for_update=True)
    previous = message.channel_meta.get("feedback")
    if isinstance(previous, dict) and previous.get("helpful") is helpful:
        return FeedbackOutcome(ticket, message, changed=False)
    message.channel_meta = {
        **message.channel_meta,
        "feedback": {"helpful": helpful, "at": now.isoformat()},
    }
    if helpful:
        return FeedbackOutcome(
            ticket, message, changed=True, resolved=_resolve(ticket, now, session)
        )
    question = await _question_before(session, message)
    entry_id = message.channel_meta.get("kb_entry_id")
    note = _handover_note(question, message.text)
    session.add(
        TicketMessage(
            ticket_id=ticket.id,
            kind=MessageKind.NOTE.value,
            author_type=AuthorType.SYSTEM.value,
            channel=ticket.channel,
            text=note,
            attachments=[],
            channel_meta={
                "kb_feedback": "not_helpful",
                "kb_entry_id": entry_id,
                "answer_message_id": message.id,
            },
            created_at=now,
            routed_at=now,  # a note is not a question for the router
        )
    )
    if question:
        await record_miss(
            session,
            MissKind.NOT_HELPFUL,
            question,
            ticket_id=ticket.id,
            now=now,
            entry_id=entry_id if isinstance(entry_id, str) else None,
        )
    if TicketStatus(ticket.status) in DONE_STATUSES:
        # "No" after the ticket was resolved (a "yes" first, on a keyboard Telegram keeps):
        # the customer still needs help. Escalated while resolved, it would sit where no
        # agent's queue shows it; reopened, people take it up.
        reopen(session, ticket, now, note="customer said the answer did not help")
        ticket.resolved_by_bot = False  # the customer took the bot's resolution back
    escalated = ticket.escalated_at is None
    await router.escalate(session, ticket, now, note="customer said the answer did not help")
    return FeedbackOutcome(ticket, message, changed=True, escalated=escalated)


def _resolve(ticket: Ticket, now: datetime, session: AsyncSession) -> bool:
    """Resolve the ticket as the bot's work, unless people have it or it is done."""
    if ticket.escalated_at is not None or TicketStatus(ticket.status) in DONE_STATUSES:
        return False
    record_event(
        session,
        ticket,
        EventKind.STATUS,
        ticket.status,
        TicketStatus.RESOLVED.value,
        now,
        actor_type=AuthorType.BOT,
        note="the customer said the bot's answer helped",
    )
    ticket.status = TicketStatus.RESOLVED.value
    ticket.resolved_by_bot = True
    ticket.resolved_at = now
    ticket.updated_at = now
    return True


async def _question_before(session: AsyncSession, answer: TicketMessage) -> str:
    """The customer's message the bot answered: the latest incoming one before the answer."""
    text = await session.scalar(
        select(TicketMessage.text)
        .where(
            TicketMessage.ticket_id == answer.ticket_id,
            TicketMessage.kind == MessageKind.INCOMING.value,
            TicketMessage.id < answer.id,
        )
        .order_by(TicketMessage.id.desc())
        .limit(1)
    )
    return text or ""


def _handover_note(question: str, answer: str) -> str:
    return (
        "The customer said the bot's answer did not help.\n"
        f"Question: {question or '(none)'}\n"
        f"Rejected answer: {answer}"
    )
