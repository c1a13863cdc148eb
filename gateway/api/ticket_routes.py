"""Tickets: the queue, one ticket with its whole thread, and what agents do to it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy import ColumnElement, and_, exists, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import desk
from gateway.api.access import Principal, principal
from gateway.api.directory_routes import contact_out
from gateway.api.endpoints import ApiTable
from gateway.api.errors import ApiError, parse_body, parse_query, respond
from gateway.api.reply_files import stored_attachments
from gateway.api.schemas import (
    DeliveryOut,
    EventOut,
    MessageCreated,
    MessageOut,
    ReplyIn,
    TextIn,
    TicketDetail,
    TicketOut,
    TicketPage,
    TicketPatch,
    TicketQuery,
    TransferIn,
)
from gateway.appkeys import ROUTER, SETTINGS, STORE
from gateway.models import OPEN_STATUSES, AgentRole
from gateway.outbox import agents_words
from gateway.store.tables import (
    Contact,
    OutboxRow,
    Ticket,
    TicketEvent,
    TicketMessage,
)
from gateway.store.types import utcnow

api = ApiTable()
_OPEN = [s.value for s in OPEN_STATUSES]


def visible_to(who: Principal) -> ColumnElement[bool]:
    """What a role may see: an agent their own tickets and their team's queue; others all."""
    if who.at_least(AgentRole.SUPERVISOR):
        return true()
    queue = and_(
        Ticket.assignee_id.is_(None),
        Ticket.escalated_at.is_not(None),
        or_(Ticket.team_id.is_(None), Ticket.team_id == who.team_id),
    )
    return or_(Ticket.assignee_id == who.agent_id, queue)


def claimable_by(who: Principal) -> ColumnElement[bool]:
    """What an agent may try to claim: their team's escalated tickets, taken or not, so that
    the loser of a claim race hears 409 (taken), not 404."""
    if who.at_least(AgentRole.SUPERVISOR):
        return true()
    team = or_(Ticket.team_id.is_(None), Ticket.team_id == who.team_id)
    return or_(Ticket.assignee_id == who.agent_id, and_(Ticket.escalated_at.is_not(None), team))


def ticket_out(ticket: Ticket, contact_name: str | None, parent: str | None = None) -> TicketOut:
    values = {
        name: getattr(ticket, name) for name in TicketOut.model_fields if hasattr(ticket, name)
    }
    return TicketOut.model_validate(
        {**values, "contact_name": contact_name, "parent_number": parent}
    )


def _filters(query: TicketQuery, who: Principal) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [visible_to(who)]
    exact: dict[str, Any] = {
        "status": query.status,
        "priority": query.priority,
        "category_id": query.category,
        "need_type": query.need_type,
        "channel": query.channel,
        "team_id": query.team,
    }
    for column, value in exact.items():
        if value is not None:
            conditions.append(getattr(Ticket, column) == value)
    if query.assignee == "me":
        conditions.append(Ticket.assignee_id == who.agent_id)
    elif query.assignee == "none":
        conditions.append(Ticket.assignee_id.is_(None))
    elif query.assignee is not None:
        conditions.append(Ticket.assignee_id == int(query.assignee))
    if query.overdue is not None:
        late = and_(
            Ticket.status.in_(_OPEN),
            Ticket.first_response_at.is_(None),
            Ticket.first_response_due_at < utcnow(),
        )
        conditions.append(late if query.overdue else ~late)
    if query.q:
        text = query.q.strip()
        like = f"%{text.lower()}%"
        conditions.append(
            or_(
                Ticket.number == text.upper(),
                func.lower(Contact.name).like(like),
                func.lower(Contact.email).like(like),
                exists().where(
                    TicketMessage.ticket_id == Ticket.id, func.lower(TicketMessage.text).like(like)
                ),
            )
        )
    return conditions


@api.route(
    "GET",
    "/api/v1/tickets",
    summary="The ticket list: filtered, searched, paginated",
    role=AgentRole.AGENT,
    query=TicketQuery,
    response=TicketPage,
)
async def list_tickets(request: web.Request) -> web.Response:
    query = parse_query(request, TicketQuery)
    who = principal(request)
    conditions = _filters(query, who)
    async with request.app[STORE].read() as session:
        base = select(Ticket, Contact.name).join(Contact, Contact.id == Ticket.contact_id)
        counted = select(func.count()).select_from(Ticket)
        if query.q:  # only the search looks at the contact
            counted = counted.join(Contact, Contact.id == Ticket.contact_id)
        total = await session.scalar(counted.where(*conditions))
        rows = await session.execute(
            base.where(*conditions)
            .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
            .limit(query.per_page)
            .offset((query.page - 1) * query.per_page)
        )
        items = [ticket_out(ticket, name) for ticket, name in rows.all()]
    return respond(
        TicketPage(items=items, page=query.page, per_page=query.per_page, total=int(total or 0))
    )


async def _visible(
    session: AsyncSession, number: str, who: Principal, *, lock: bool = False, claim: bool = False
) -> Ticket:
    scope = claimable_by(who) if claim else visible_to(who)
    query = select(Ticket).where(Ticket.number == number, scope)
    if lock:
        query = query.with_for_update()
    ticket = await session.scalar(query)
    if ticket is None:
        # Not found and not yours look the same: ticket numbers are guessable.
        raise ApiError(404, "not_found", f"no ticket {number}")
    return ticket


@api.route(
    "GET",
    "/api/v1/tickets/{number}",
    summary="One ticket: its thread, events, contact and the contact's other tickets",
    role=AgentRole.AGENT,
    response=TicketDetail,
)
async def get_ticket(request: web.Request) -> web.Response:
    who = principal(request)
    async with request.app[STORE].read() as session:
        ticket = await _visible(session, request.match_info["number"], who)
        contact = await session.get_one(Contact, ticket.contact_id)
        parent = await session.get(Ticket, ticket.parent_id) if ticket.parent_id else None
        messages = await session.scalars(
            select(TicketMessage)
            .where(TicketMessage.ticket_id == ticket.id)
            .order_by(TicketMessage.id)
        )
        events = await session.scalars(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
        )
        delivered = await _reply_deliveries(session, ticket.id)
        others = await session.scalars(
            select(Ticket)
            .where(Ticket.contact_id == contact.id, Ticket.id != ticket.id)
            .order_by(Ticket.id.desc())
            .limit(50)
        )
        detail = TicketDetail(
            ticket=ticket_out(ticket, contact.name, parent.number if parent else None),
            messages=[
                MessageOut.model_validate(m).model_copy(update={"delivery": delivered.get(m.id)})
                for m in messages
            ],
            events=[EventOut.model_validate(e) for e in events],
            contact=await contact_out(session, contact),
            other_tickets=[ticket_out(t, contact.name) for t in others],
        )
    return respond(detail)


async def _reply_deliveries(session: AsyncSession, ticket_id: int) -> dict[int, DeliveryOut]:
    """The delivery of each agent reply and progress update, by message id: its latest
    outbox row (a notice handed to email is a new row). Agents see what never reached the
    customer, where before it failed in the outbox, seen by admins only."""
    rows = await session.execute(
        select(
            OutboxRow.message_id,
            OutboxRow.kind,
            OutboxRow.template,
            OutboxRow.status,
            OutboxRow.last_error,
        )
        .where(OutboxRow.ticket_id == ticket_id, OutboxRow.message_id.is_not(None))
        .order_by(OutboxRow.id)
    )
    found: dict[int, DeliveryOut] = {}
    for message_id, kind, template, status, error in rows.all():
        if message_id is None or not agents_words(kind, template):
            continue
        shown = status if status in ("sent", "failed") else "pending"
        found[message_id] = DeliveryOut(status=shown, error=None if shown == "sent" else error)
    return found


Action = Callable[[AsyncSession, Ticket, desk.Actor], Awaitable[Any]]


async def _act(
    request: web.Request, action: Action, *, claim: bool = False
) -> tuple[Ticket, Any, str | None]:
    """Run ``action`` on the path's ticket in one transaction, mapping desk errors to HTTP."""
    who = principal(request)
    actor = desk.Actor(who.agent_id, who.name, who.at_least(AgentRole.SUPERVISOR))
    try:
        async with request.app[STORE].write() as session:
            number = request.match_info["number"]
            ticket = await _visible(session, number, who, lock=True, claim=claim)
            result = await action(session, ticket, actor)
            contact = await session.get_one(Contact, ticket.contact_id)
            return ticket, result, contact.name
    except desk.DeskError as exc:
        raise ApiError(exc.status, exc.error, exc.detail, field=exc.field) from None


@api.route(
    "POST",
    "/api/v1/tickets/{number}/claim",
    summary="Take the ticket (409 if taken)",
    role=AgentRole.AGENT,
    response=TicketOut,
)
async def claim(request: web.Request) -> web.Response:
    now = utcnow()
    ticket, _, name = await _act(request, lambda s, t, a: desk.claim(s, t, a, now), claim=True)
    return respond(ticket_out(ticket, name))


def _message_route(
    operation: Callable[..., Awaitable[TicketMessage]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        body = await parse_body(request, TextIn)
        now = utcnow()
        ticket, message, name = await _act(
            request, lambda s, t, a: operation(s, t, a, body.text, now)
        )
        return respond(
            MessageCreated(message_id=message.id, ticket=ticket_out(ticket, name)), status=201
        )

    return handler


@api.route(
    "POST",
    "/api/v1/tickets/{number}/replies",
    summary="Answer the customer on their own channel (with files uploaded for it)",
    role=AgentRole.AGENT,
    body=ReplyIn,
    response=MessageCreated,
    status=201,
)
async def reply(request: web.Request) -> web.Response:
    body = await parse_body(request, ReplyIn)
    settings = request.app[SETTINGS]
    now = utcnow()

    async def answer(session: AsyncSession, ticket: Ticket, actor: desk.Actor) -> TicketMessage:
        files = await asyncio.to_thread(
            stored_attachments, body.attachments, ticket.channel, settings
        )
        return await desk.reply(
            session, ticket, actor, body.text, now, attachments=files, reply_to=body.reply_to
        )

    ticket, message, name = await _act(request, answer)
    return respond(
        MessageCreated(message_id=message.id, ticket=ticket_out(ticket, name)), status=201
    )


api.route(
    "POST",
    "/api/v1/tickets/{number}/notes",
    summary="An internal note (never sent to the customer)",
    role=AgentRole.AGENT,
    body=TextIn,
    response=MessageCreated,
    status=201,
)(_message_route(desk.note))
api.route(
    "POST",
    "/api/v1/tickets/{number}/progress",
    summary="A progress update the customer is notified of",
    role=AgentRole.AGENT,
    body=TextIn,
    response=MessageCreated,
    status=201,
)(_message_route(desk.progress))


@api.route(
    "PATCH",
    "/api/v1/tickets/{number}",
    summary="Change status, priority, category, need type, assignee or team",
    role=AgentRole.AGENT,
    body=TicketPatch,
    response=TicketOut,
)
async def patch_ticket(request: web.Request) -> web.Response:
    body = await parse_body(request, TicketPatch)
    fields = body.model_dump(exclude_unset=True, exclude={"note"})
    who = principal(request)
    if not who.at_least(AgentRole.SUPERVISOR) and {"assignee_id", "team_id"} & set(fields):
        raise ApiError(403, "forbidden", "reassigning needs the supervisor role (or transfer)")
    policies = desk.Policies.from_settings(request.app[SETTINGS], request.app[ROUTER].dispatcher)
    now = utcnow()

    async def change(session: AsyncSession, ticket: Ticket, actor: desk.Actor) -> None:
        if ticket.assignee_id not in (None, actor.agent_id) and not actor.may_take_over:
            raise desk.DeskError(409, "conflict", "another agent has this ticket")
        await desk.change(
            session, ticket, actor, now, fields=fields, note_text=body.note, policies=policies
        )

    ticket, _, name = await _act(request, change)
    return respond(ticket_out(ticket, name))


@api.route(
    "POST",
    "/api/v1/tickets/{number}/transfer",
    summary="Hand the ticket to another agent or team, with a note",
    role=AgentRole.AGENT,
    body=TransferIn,
    response=TicketOut,
)
async def transfer(request: web.Request) -> web.Response:
    body = await parse_body(request, TransferIn)
    policies = desk.Policies.from_settings(request.app[SETTINGS], request.app[ROUTER].dispatcher)
    now = utcnow()

    async def move(session: AsyncSession, ticket: Ticket, actor: desk.Actor) -> None:
        if ticket.assignee_id not in (None, actor.agent_id) and not actor.may_take_over:
            raise desk.DeskError(409, "conflict", "another agent has this ticket")
        await desk.transfer(
            session,
            ticket,
            actor,
            now,
            assignee_id=body.assignee_id,
            team_id=body.team_id,
            note_text=body.note,
            policies=policies,
        )

    ticket, _, name = await _act(request, move)
    return respond(ticket_out(ticket, name))
