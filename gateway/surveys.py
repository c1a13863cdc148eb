"""Satisfaction surveys (满意度回访): one per closed ticket, never in the customer's quiet hours.

Closing a ticket writes its survey row and an outbox row of kind ``survey`` due after the delay,
moved out of the quiet hours (22:00-08:00 by default) in the contact's time zone, else the shop's;
the relay sends nothing before its due time. A rating reaches the ticket; a score of 2 or less
reopens it as a follow-up (待跟进) for the team's supervisor, once per survey.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.events import record_event
from gateway.models import AgentRole, AuthorType, Channel, EventKind, OutboxKind
from gateway.outbox import add_outbox
from gateway.reopening import reopen
from gateway.settings import SurveySettings
from gateway.store.tables import Agent, Contact, Survey, Ticket, TicketEvent

LOW_SCORE = 2


def outside_quiet_hours(moment: datetime, zone: ZoneInfo, start: time, end: time) -> datetime:
    """``moment`` if it is outside ``[start, end)`` local time, else the next ``end``."""
    local = moment.astimezone(zone)
    clock = local.time()
    overnight = start > end  # 22:00-08:00 spans midnight
    quiet = (clock >= start or clock < end) if overnight else (start <= clock < end)
    if not quiet:
        return moment
    day = local.date() if (not overnight or clock < end) else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone)


def _zone(contact: Contact, shop: ZoneInfo) -> ZoneInfo:
    if contact.timezone:
        try:
            return ZoneInfo(contact.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return shop


async def schedule_survey(
    session: AsyncSession,
    ticket: Ticket,
    now: datetime,
    *,
    settings: SurveySettings,
    shop_zone: ZoneInfo,
) -> Survey | None:
    """Owe the survey of a closed ticket, once (a second close schedules nothing)."""
    if await session.scalar(select(Survey.id).where(Survey.ticket_id == ticket.id)) is not None:
        return None
    if ticket.resolved_by_bot and settings.bot_resolved == "none":
        return None
    contact = await session.get_one(Contact, ticket.contact_id)
    due = outside_quiet_hours(
        now + timedelta(minutes=settings.delay_minutes),
        _zone(contact, shop_zone),
        settings.quiet_start,
        settings.quiet_end,
    )
    survey = Survey(
        ticket_id=ticket.id,
        contact_id=ticket.contact_id,
        channel=ticket.channel,
        due_at=due,
        created_at=now,
    )
    session.add(survey)
    add_outbox(
        session,
        kind=OutboxKind.SURVEY,
        template="survey",
        channel=Channel(ticket.channel),
        contact_id=ticket.contact_id,
        ticket_id=ticket.id,
        now=now,
        due_at=due,
        payload={"one_question": ticket.resolved_by_bot},
    )
    return survey


class SurveyError(ValueError):
    """A rating that cannot be recorded (bad score, no survey for that ticket)."""


async def record_rating(
    session: AsyncSession, ticket: Ticket, score: int, comment: str | None, now: datetime
) -> Survey:
    """Store the customer's rating; a low one reopens the ticket for the supervisor, once.

    A later rating replaces the score; its comment replaces the comment only if it has one.
    """
    if not 1 <= score <= 5:
        raise SurveyError("the score must be 1 to 5")
    if comment is not None:  # PostgreSQL's text cannot hold a NUL: the rating counts without
        comment = comment.replace("\x00", "")
    survey = await session.scalar(select(Survey).where(Survey.ticket_id == ticket.id))
    if survey is None:
        # A rating that arrives before (or without) the survey still counts: the customer
        # rated this ticket.
        survey = Survey(
            ticket_id=ticket.id,
            contact_id=ticket.contact_id,
            channel=ticket.channel,
            due_at=now,
            created_at=now,
        )
        session.add(survey)
    first_answer = survey.answered_at is None
    if not first_answer and survey.score == score and comment is None:
        return survey  # the same stars again (a second press, a digit typed after): no news
    # A change of mind counts: the latest score is the ticket's. One that falls to a low
    # score is followed up as a first low one is (the follow-up ran only on the first
    # answer, so 5 stars then 1 left a low score in the reports and no supervisor told).
    was_low = not first_answer and survey.score is not None and survey.score <= LOW_SCORE
    survey.score, survey.answered_at = score, now
    if comment is not None:
        # A bare digit typed after the survey page keeps the words written there.
        survey.comment = comment
    record_event(
        session,
        ticket,
        EventKind.RATED,
        None,
        str(score),
        now,
        actor_type=AuthorType.CUSTOMER,
        note=comment,
    )
    if score <= LOW_SCORE and not was_low and not await _followed_up(session, ticket, survey):
        await _follow_up(session, ticket, now)
    return survey


_FOLLOW_UP_NOTE = "low satisfaction score: follow up"


async def _followed_up(session: AsyncSession, ticket: Ticket, survey: Survey) -> bool:
    """Whether this survey already had its follow-up: 1, then 5, then 1 again tells the
    supervisor once, and does not take the ticket back from whoever took it over since."""
    found = await session.scalar(
        select(TicketEvent.id)
        .where(
            TicketEvent.ticket_id == ticket.id,
            TicketEvent.kind == EventKind.REOPENED.value,
            TicketEvent.note == _FOLLOW_UP_NOTE,
            TicketEvent.created_at >= survey.created_at,
        )
        .limit(1)
    )
    return found is not None


async def _follow_up(session: AsyncSession, ticket: Ticket, now: datetime) -> None:
    """Reopen as a follow-up, assigned to the team's supervisor (any supervisor without a team)."""
    query = (
        select(Agent)
        .where(Agent.active.is_(True), Agent.role == AgentRole.SUPERVISOR.value)
        .order_by(Agent.id)
    )
    if ticket.team_id is not None:
        in_team = await session.scalar(query.where(Agent.team_id == ticket.team_id))
        supervisor = in_team or await session.scalar(query)
    else:
        supervisor = await session.scalar(query)
    reopen(session, ticket, now, note=_FOLLOW_UP_NOTE)
    ticket.escalated_at = now  # people own the follow-up, not the bot
    if supervisor is not None:
        record_event(
            session,
            ticket,
            EventKind.ASSIGNMENT,
            str(ticket.assignee_id),
            str(supervisor.id),
            now,
            note="follow-up after a low score",
        )
        ticket.assignee_id = supervisor.id


# --- signed survey links (email) --------------------------------------------------------------


def survey_token(secret: str, ticket_id: int, expires: datetime) -> str:
    """A URL-safe token naming one ticket's survey until ``expires``."""
    body = json.dumps({"t": ticket_id, "e": int(expires.timestamp())}, separators=(",", ":"))
    payload = base64.urlsafe_b64encode(body.encode()).rstrip(b"=").decode()
    return f"{payload}.{_sign(secret, payload)}"


def read_survey_token(secret: str, token: str, now: datetime) -> int | None:
    """The ticket id of a valid, unexpired token; ``None`` for a forged or expired one."""
    payload, _, signature = token.partition(".")
    if not payload or not hmac.compare_digest(signature, _sign(secret, payload)):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        ticket_id, expires = int(data["t"]), int(data["e"])
    except (ValueError, KeyError, TypeError):
        return None
    return ticket_id if now.timestamp() < expires else None


def _sign(secret: str, payload: str) -> str:
    key = hashlib.sha256(b"survey:" + secret.encode()).digest()
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()[:32]
