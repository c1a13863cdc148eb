"""Button presses on our inline keyboards: "did this help?", "which one?" and survey stars.

A press is recorded on its ticket as a system message (``external_id = cb:<query id>``, so a
redelivered press is recorded once) rather than ingested: it must not reopen a closed ticket the
way a customer's message does. "No, it did not help" escalates the ticket. Survey stars rate it
while it is done, or correct a rating made within the hour (once the customer wrote again, the
press is only shown to whoever took it up). A question chosen under the bot's "which one?" is
the exception: it is what the customer would have typed, so it is ingested as their message,
and the knowledge base answers it. Every press is answered with ``answerCallbackQuery``, which
stops the button's spinner in the user's app
(https://core.telegram.org/bots/api#answercallbackquery).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram.error import BadRequest

from channels.telegram import conversations
from channels.telegram.commands import CommandContext
from channels.telegram.keyboards import Feedback, FeedbackKind, parse_callback
from channels.telegram.texts import text
from gateway import kb_feedback
from gateway.ingest.survey_replies import REPEAT_WINDOW
from gateway.models import (
    DONE_STATUSES,
    AuthorType,
    Channel,
    InboundMessage,
    MessageKind,
    TicketStatus,
)
from gateway.store.tables import Survey, Ticket, TicketMessage
from gateway.surveys import record_rating

log = logging.getLogger(__name__)


async def on_callback(ctx: CommandContext, inbound: InboundMessage) -> None:
    """Record the press, escalate on "did not help", and answer the query."""
    meta = inbound.channel_meta
    feedback = parse_callback(str(meta.get("callback_data", "")))
    choice = feedback is not None and feedback.kind is FeedbackKind.CHOICE
    if feedback is not None and choice:
        await _chosen(ctx, inbound, feedback)
    elif feedback is not None and await _record(ctx, inbound, feedback):
        ctx.pipeline.committed.set()  # an escalation wrote an outbox row
    try:
        await ctx.bot.answer_callback_query(
            str(meta["callback_query_id"]), text=None if choice else text("thanks", inbound.locale)
        )
    except BadRequest as exc:
        # A redelivered press: Telegram no longer takes an answer ("query is too old").
        log.info("callback query not answered", extra={"error": exc.message})


async def _chosen(ctx: CommandContext, inbound: InboundMessage, feedback: Feedback) -> None:
    """The customer picked one of the questions the bot asked "which one?" about: that
    question is their message, as if typed (stored on the bot message's ticket and answered
    by the knowledge base), and a redelivered press is stored once (``cb:<query id>``)."""
    async with ctx.store.read() as session:
        asked = await session.get(TicketMessage, feedback.answer_id)
        if asked is None or asked.author_type != AuthorType.BOT.value:
            return
        titles = asked.text.splitlines() if asked.channel_meta.get("kb_choices") else []
        ticket = await session.get_one(Ticket, asked.ticket_id)
        contact_id = await conversations.contact_of(session, inbound.external_user_id)
        owner = await conversations.survivor(session, ticket.contact_id)
    if contact_id != owner or not 0 <= feedback.value < len(titles):
        log.info("choice not the sender's", extra={"answer_id": feedback.answer_id})
        return
    meta = {**inbound.channel_meta, "chosen_from": feedback.answer_id}
    question = inbound.model_copy(
        update={"text": titles[feedback.value], "ticket_ref": ticket.number, "channel_meta": meta}
    )
    await ctx.pipeline.on_message(question)


async def _record(ctx: CommandContext, inbound: InboundMessage, feedback: Feedback) -> bool:
    """Store the press once; True when it escalated the ticket."""
    escalate = False
    async with ctx.store.write() as session:
        seen = await session.scalar(
            select(TicketMessage.id).where(
                TicketMessage.channel == Channel.TELEGRAM.value,
                TicketMessage.external_id == inbound.external_id,
            )
        )
        if seen is not None:
            return False
        contact_id = await conversations.contact_of(session, inbound.external_user_id)
        ticket = await _pressed_on(session, feedback)
        if (
            ticket is None
            or contact_id is None
            or await conversations.survivor(session, ticket.contact_id) != contact_id
        ):
            log.info(
                "feedback for a ticket not the sender's",
                extra={"ticket": feedback.ticket_number, "answer_id": feedback.answer_id},
            )
            return False
        if feedback.kind is FeedbackKind.HELPFUL:
            note = (
                "Customer feedback: the answer helped"
                if feedback.value
                else ("Customer feedback: the answer did not help")
            )
            extra: dict[str, object] = {"helpful": bool(feedback.value)}
            escalate = not feedback.value
        else:
            note = f"Customer rated the service {feedback.value}/5"
            extra = {"survey_rating": feedback.value}
        session.add(
            TicketMessage(
                ticket_id=ticket.id,
                kind=MessageKind.SYSTEM.value,
                author_type=AuthorType.CUSTOMER.value,
                author_id=contact_id,
                channel=Channel.TELEGRAM.value,
                external_id=inbound.external_id,
                text=note,
                attachments=[],
                channel_meta={**inbound.channel_meta, **extra},
                created_at=ctx.now,
                routed_at=ctx.now,
            )
        )
        answer_id = feedback.answer_id
        if answer_id is None and feedback.kind is FeedbackKind.HELPFUL:
            answer_id = await kb_feedback.latest_answer_id(session, ticket.id)
        if answer_id is not None:
            # The same rules as every channel: yes resolves by the bot, no escalates with the
            # rejected answer shown to the agent and counted as a miss.
            outcome = await kb_feedback.feedback(
                session, answer_id, bool(feedback.value), ctx.now, ctx.router
            )
            escalate = outcome.escalated
        elif escalate:
            await ctx.router.escalate(session, ticket, ctx.now, note=note)
        if "survey_rating" in extra and await _rates(session, ticket, ctx.now):
            # The rating reaches the ticket; a low one reopens it for the supervisor.
            await record_rating(session, ticket, int(feedback.value), None, ctx.now)
    return escalate


async def _rates(session: AsyncSession, ticket: Ticket, now: datetime) -> bool:
    """Whether survey stars pressed now rate ``ticket``: while it is done, or to correct a
    rating made within the hour (the low score just pressed reopened it for the supervisor),
    as a typed digit does. Telegram keeps the stars: pressed after the customer wrote again
    and an agent took the ticket up, one star reopened it from under that agent. Such a
    press stays on the ticket for them."""
    if TicketStatus(ticket.status) in DONE_STATUSES:
        return True
    answered_at = await session.scalar(
        select(Survey.answered_at).where(Survey.ticket_id == ticket.id)
    )
    return answered_at is not None and now - answered_at <= REPEAT_WINDOW


async def _pressed_on(session: AsyncSession, feedback: Feedback) -> Ticket | None:
    """The ticket of the press, locked: the answer's (``a:``) or the one named (``h:``, ``r:``).
    None for an answer that is not a bot message, or a ticket that does not exist."""
    if feedback.answer_id is not None:
        answer = await session.get(TicketMessage, feedback.answer_id)
        if answer is None or answer.author_type != AuthorType.BOT.value:
            return None
        return await session.get(Ticket, answer.ticket_id, with_for_update=True)
    return await session.scalar(
        select(Ticket).where(Ticket.number == feedback.ticket_number).with_for_update()
    )
