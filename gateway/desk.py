"""What agents do to a ticket: claim, reply, note, progress, change, transfer, merge contacts.

Each operation is one transaction that records who did what (ticket events) and writes the
outbox rows it owes the customer. Once an agent claims or replies, people own the conversation
(``escalated_at`` is set) and the bot stays silent; resolving hands it back to the bot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.contact_merge import merge_contact
from gateway.events import record_event
from gateway.models import (
    DONE_STATUSES,
    REPLY_TO_MESSAGE,
    Attachment,
    AuthorType,
    Channel,
    EventKind,
    MessageKind,
    OutboxKind,
    TicketStatus,
)
from gateway.outbox import add_outbox, owe_reply
from gateway.routing import Dispatcher
from gateway.settings import Settings, SurveySettings
from gateway.sla import SlaPolicy
from gateway.store.tables import Agent, Contact, Ticket, TicketMessage
from gateway.surveys import schedule_survey


@dataclass(frozen=True, slots=True)
class Policies:
    """The shop's rules an agent's change applies: dispatch, SLA targets, surveys."""

    dispatcher: Dispatcher
    sla: SlaPolicy
    survey: SurveySettings
    zone: ZoneInfo

    @classmethod
    def from_settings(cls, settings: Settings, dispatcher: Dispatcher) -> Policies:
        return cls(
            dispatcher, SlaPolicy.from_settings(settings.sla), settings.survey, settings.zone
        )


class DeskError(Exception):
    """An operation that cannot be done; ``status`` is the HTTP status it maps to."""

    def __init__(self, status: int, error: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.field = field


@dataclass(frozen=True, slots=True)
class Actor:
    agent_id: int
    name: str
    may_take_over: bool
    """Supervisors and admins may act on a ticket another agent holds."""


def _event(
    session: AsyncSession,
    ticket: Ticket,
    kind: EventKind,
    old: object,
    new: object,
    now: datetime,
    actor: Actor,
    note: str | None = None,
) -> None:
    record_event(
        session,
        ticket,
        kind,
        None if old is None else str(old),
        None if new is None else str(new),
        now,
        actor_type=AuthorType.AGENT,
        actor_id=actor.agent_id,
        note=note,
    )


def _notice(
    session: AsyncSession,
    ticket: Ticket,
    template: str,
    now: datetime,
    *,
    message_id: int | None = None,
    payload: dict[str, object] | None = None,
) -> None:
    add_outbox(
        session,
        kind=OutboxKind.NOTICE,
        template=template,
        channel=Channel(ticket.channel),
        contact_id=ticket.contact_id,
        ticket_id=ticket.id,
        now=now,
        message_id=message_id,
        payload=payload or {},
    )


async def claim(session: AsyncSession, ticket: Ticket, actor: Actor, now: datetime) -> None:
    """Take the ticket. Exactly one of two agents claiming at once wins; the other gets 409."""
    if ticket.assignee_id == actor.agent_id:
        return
    # The conditional update is the arbiter, on both databases: only one claimer sees a row.
    won = await session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id, Ticket.assignee_id.is_(None))
        .values(assignee_id=actor.agent_id)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]
        raise DeskError(409, "conflict", "another agent has this ticket already")
    await session.refresh(ticket)
    _event(session, ticket, EventKind.ASSIGNMENT, None, actor.agent_id, now, actor)
    await _take_over(session, ticket, actor, now)


async def _take_over(session: AsyncSession, ticket: Ticket, actor: Actor, now: datetime) -> None:
    if ticket.escalated_at is None:
        ticket.escalated_at = now
        _event(session, ticket, EventKind.ESCALATED, None, "agent", now, actor)
    if ticket.status not in (TicketStatus.IN_PROGRESS, TicketStatus.WAITING_CUSTOMER):
        _event(
            session, ticket, EventKind.STATUS, ticket.status, TicketStatus.IN_PROGRESS, now, actor
        )
        ticket.status = TicketStatus.IN_PROGRESS.value
    ticket.updated_at = now
    await session.flush()
    _notice(session, ticket, "agent_joined", now, payload={"agent": actor.name})
    agent = await session.get_one(Agent, actor.agent_id)
    agent.last_assigned_at = now


async def _ensure_holder(
    session: AsyncSession, ticket: Ticket, actor: Actor, now: datetime
) -> None:
    if ticket.assignee_id is None:
        await claim(session, ticket, actor, now)
    elif ticket.assignee_id != actor.agent_id and not actor.may_take_over:
        raise DeskError(409, "conflict", "another agent has this ticket")
    elif ticket.escalated_at is None:
        await _take_over(session, ticket, actor, now)


def _agent_message(
    session: AsyncSession,
    ticket: Ticket,
    actor: Actor,
    text: str,
    kind: MessageKind,
    now: datetime,
    meta: dict[str, object] | None = None,
    attachments: Sequence[Attachment] = (),
) -> TicketMessage:
    message = TicketMessage(
        ticket_id=ticket.id,
        kind=kind.value,
        author_type=AuthorType.AGENT.value,
        author_id=actor.agent_id,
        channel=ticket.channel,
        text=text,
        attachments=[a.model_dump() for a in attachments],
        channel_meta={"agent_name": actor.name, **(meta or {})},
        created_at=now,
    )
    session.add(message)
    ticket.updated_at = now
    return message


async def reply(
    session: AsyncSession,
    ticket: Ticket,
    actor: Actor,
    text: str,
    now: datetime,
    attachments: Sequence[Attachment] = (),
    *,
    reply_to: int | None = None,
) -> TicketMessage:
    """Answer the customer on their channel, with files from the attachment store; the first
    answer stops the first-response clock.

    ``reply_to`` names the customer's message answered (one of this ticket's incoming
    messages): the delivery quotes it and threads on it instead of the latest one. Any other
    message is a :class:`DeskError` naming the field, before anything is written.
    """
    meta: dict[str, object] = {}
    if reply_to is not None:
        meta[REPLY_TO_MESSAGE] = await _customers_message(session, ticket, reply_to)
    await _ensure_holder(session, ticket, actor, now)
    message = _agent_message(
        session, ticket, actor, text, MessageKind.OUTGOING, now, meta, attachments
    )
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    ticket.last_update_at = now
    await session.flush()
    owe_reply(session, ticket, message.id, now)
    return message


async def _customers_message(session: AsyncSession, ticket: Ticket, message_id: int) -> int:
    """``message_id`` if it is one of the ticket's incoming messages, else a 400 on
    ``reply_to``. One answer for every other case (another ticket's message, a note, none):
    the API says nothing of messages outside the ticket."""
    found = await session.scalar(
        select(TicketMessage.id).where(
            TicketMessage.id == message_id,
            TicketMessage.ticket_id == ticket.id,
            TicketMessage.kind == MessageKind.INCOMING.value,
        )
    )
    if found is None:
        raise DeskError(
            400,
            "invalid",
            f"message {message_id} is not a message of the customer on this ticket",
            field="reply_to",
        )
    return found


async def note(
    session: AsyncSession, ticket: Ticket, actor: Actor, text: str, now: datetime
) -> TicketMessage:
    """An internal note for other agents and teams; never sent to the customer."""
    message = _agent_message(session, ticket, actor, text, MessageKind.NOTE, now)
    await session.flush()
    return message


async def progress(
    session: AsyncSession, ticket: Ticket, actor: Actor, text: str, now: datetime
) -> TicketMessage:
    """A progress update the customer is notified of."""
    await _ensure_holder(session, ticket, actor, now)
    message = _agent_message(
        session, ticket, actor, text, MessageKind.OUTGOING, now, meta={"progress": True}
    )
    ticket.last_update_at = now
    await session.flush()
    _notice(session, ticket, "progress", now, message_id=message.id, payload={"text": text})
    return message


_NOTICE_ON_STATUS = {
    TicketStatus.IN_PROGRESS: "in_progress",  # the agent confirms receipt
    TicketStatus.WAITING_CUSTOMER: "waiting_customer",
    TicketStatus.RESOLVED: "resolved",
}


async def change(
    session: AsyncSession,
    ticket: Ticket,
    actor: Actor,
    now: datetime,
    *,
    fields: dict[str, object],
    note_text: str | None,
    policies: Policies,
) -> None:
    """Change status, priority, category, need type, assignee or team, each as an event."""
    kinds = {
        "status": EventKind.STATUS,
        "priority": EventKind.PRIORITY,
        "category_id": EventKind.CATEGORY,
        "need_type": EventKind.NEED_TYPE,
        "assignee_id": EventKind.ASSIGNMENT,
        "team_id": EventKind.ASSIGNMENT,
    }
    freed_team = ticket.team_id
    for name, value in fields.items():
        old = getattr(ticket, name)
        if old == value:
            continue
        if name == "assignee_id" and value is not None and await session.get(Agent, value) is None:
            raise DeskError(400, "invalid", f"no agent {value}", field=name)
        _event(session, ticket, kinds[name], old, value, now, actor, note_text)
        setattr(ticket, name, value)
        if name == "priority":
            ticket.first_response_due_at = policies.sla.first_response_due(
                str(value), ticket.created_at
            )
            ticket.resolution_due_at = policies.sla.resolution_due(str(value), ticket.created_at)
        if name == "status":
            await _status_effects(session, ticket, TicketStatus(str(value)), now, policies)
    ticket.updated_at = now
    await session.flush()
    if ticket.status in DONE_STATUSES or "assignee_id" in fields or "team_id" in fields:
        await policies.dispatcher.fill(session, freed_team, now)


async def _status_effects(
    session: AsyncSession, ticket: Ticket, status: TicketStatus, now: datetime, policies: Policies
) -> None:
    if status is TicketStatus.WAITING_CUSTOMER:
        ticket.waiting_since = ticket.waiting_since or now  # the SLA clock pauses
    elif ticket.waiting_since is not None:
        if ticket.resolution_due_at is not None:
            ticket.resolution_due_at += now - ticket.waiting_since
        ticket.waiting_since = None
    if status is TicketStatus.RESOLVED:
        ticket.resolved_at = now
        ticket.escalated_at = None  # hands the conversation back to the bot
    elif status is TicketStatus.CLOSED:
        ticket.closed_at = now
        ticket.resolved_at = ticket.resolved_at or now
        ticket.escalated_at = None
        await session.flush()
        await schedule_survey(
            session, ticket, now, settings=policies.survey, shop_zone=policies.zone
        )
    elif status in (TicketStatus.IN_PROGRESS, TicketStatus.WAITING_CUSTOMER):
        ticket.escalated_at = ticket.escalated_at or now
    template = _NOTICE_ON_STATUS.get(status)
    if template is not None:
        await session.flush()
        _notice(session, ticket, template, now)


async def transfer(
    session: AsyncSession,
    ticket: Ticket,
    actor: Actor,
    now: datetime,
    *,
    assignee_id: int | None,
    team_id: int | None,
    note_text: str,
    policies: Policies,
) -> None:
    """Hand the ticket to another agent or team (manual dispatch, with a note)."""
    if assignee_id is None and team_id is None:
        raise DeskError(400, "invalid", "name an agent or a team", field="assignee_id")
    fields: dict[str, object] = {}
    if team_id is not None:
        fields["team_id"] = team_id
        fields["assignee_id"] = assignee_id
    elif assignee_id is not None:
        fields["assignee_id"] = assignee_id
    await change(session, ticket, actor, now, fields=fields, note_text=note_text, policies=policies)
    if ticket.assignee_id is None:
        await policies.dispatcher.dispatch(session, ticket, now)


async def merge_contacts(session: AsyncSession, keep_id: int, other_id: int) -> Contact:
    """Merge ``other_id`` into ``keep_id`` (see :func:`gateway.contact_merge.merge_contact`)."""
    if keep_id == other_id:
        raise DeskError(400, "invalid", "a contact cannot be merged into itself", field="other_id")
    keep = await session.get(Contact, keep_id)
    other = await session.get(Contact, other_id)
    if keep is None or other is None or other.merged_into_id is not None:
        raise DeskError(404, "not_found", "no such contact")
    await merge_contact(session, keep_id, other_id)
    await session.refresh(keep)  # written by statements, not through the object
    return keep


async def find_ticket(session: AsyncSession, number: str, *, lock: bool = False) -> Ticket:
    query = select(Ticket).where(Ticket.number == number)
    if lock:
        query = query.with_for_update()
    ticket = await session.scalar(query)
    if ticket is None:
        raise DeskError(404, "not_found", f"no ticket {number}")
    return ticket
