"""Contacts, agents, teams, categories and canned responses."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import desk
from gateway.api.endpoints import ApiTable
from gateway.api.errors import ApiError, parse_body, parse_query, respond
from gateway.api.schemas import (
    AgentList,
    AgentOut,
    AgentQuery,
    CannedIn,
    CannedList,
    CannedOut,
    CannedQuery,
    CategoryIn,
    CategoryList,
    CategoryOut,
    ContactOut,
    MergeIn,
    TeamIn,
    TeamList,
    TeamOut,
)
from gateway.appkeys import STORE
from gateway.models import AgentRole, MessageKind
from gateway.store.tables import (
    Agent,
    CannedResponse,
    Category,
    Contact,
    ContactIdentity,
    Team,
    Ticket,
    TicketMessage,
)
from gateway.store.types import utcnow

api = ApiTable()


async def refuse_duplicate_category(
    session: AsyncSession, name: str, parent_id: int | None, *, other_than: int | None = None
) -> None:
    """409 when a sibling has that name. The unique constraint on (parent_id, name) cannot see
    top-level duplicates (NULLs are distinct on both databases), so this looks first."""
    statement = select(Category.id).where(
        Category.name == name,
        Category.parent_id.is_(None) if parent_id is None else Category.parent_id == parent_id,
    )
    if other_than is not None:
        statement = statement.where(Category.id != other_than)
    if await session.scalar(statement.limit(1)) is not None:
        raise ApiError(409, "conflict", f"a category named {name!r} exists there", field="name")


def path_id(request: web.Request, name: str) -> int:
    """The path's ``{name}`` as a row id; anything else (or past any id's range) is a 404."""
    raw = request.match_info[name]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise ApiError(404, "not_found", f"no {name.replace('_', ' ')} {raw[:20]!r}")
    return int(raw)


async def _contact_out(request: web.Request, contact_id: int) -> ContactOut:
    async with request.app[STORE].read() as session:
        contact = await session.get(Contact, contact_id)
        if contact is None or contact.merged_into_id is not None:
            raise ApiError(404, "not_found", f"no contact {contact_id}")
        return await contact_out(session, contact)


async def contact_out(session: AsyncSession, contact: Contact) -> ContactOut:
    """``contact`` as agents see it: with the channels it writes on, and those of them no
    identity of it can be written to on any more (a Telegram user who blocked the bot or
    deleted their account)."""
    identities = await session.execute(
        select(ContactIdentity.channel, ContactIdentity.reachable).where(
            ContactIdentity.contact_id == contact.id
        )
    )
    reachable: dict[str, bool] = {}
    for channel, can in identities.all():
        reachable[channel] = reachable.get(channel, False) or can
    fields = {f: getattr(contact, f) for f in ContactOut.model_fields if hasattr(contact, f)}
    return ContactOut.model_validate(
        {
            **fields,
            "channels": sorted(reachable),
            "unreachable": sorted(c for c, can in reachable.items() if not can),
            "usernames": await latest_usernames(session, contact.id),
        }
    )


async def latest_usernames(session: AsyncSession, contact_id: int) -> dict[str, str]:
    """The name the contact goes by on each channel that has names (Telegram's @username,
    ``channel_meta["username"]``), from their latest incoming message there that says one,
    on any of their tickets: the ticket on screen may be from another channel, or older than
    the name. A message says ``""`` for no name: a name the customer removed is not shown. One
    without the key (stored before Telegram's messages always said) says nothing, and an older
    one decides.

    One query: the contact's tickets by ``ix_tickets_conversation`` (contact_id first), their
    messages by ticket_id's index, the latest per channel by a window over those rows."""
    # NULL when the key is missing, on SQLite (json_extract) as on PostgreSQL (->>); "" is
    # the value "", not missing, on both.
    name = TicketMessage.channel_meta["username"].as_string()
    latest = (
        select(
            TicketMessage.channel,
            name.label("username"),
            func.row_number()
            .over(
                partition_by=TicketMessage.channel,
                order_by=(TicketMessage.created_at.desc(), TicketMessage.id.desc()),
            )
            .label("nth"),
        )
        .join(Ticket, Ticket.id == TicketMessage.ticket_id)
        .where(
            Ticket.contact_id == contact_id,
            TicketMessage.kind == MessageKind.INCOMING.value,
            name.is_not(None),
        )
        .subquery()
    )
    rows = await session.execute(
        select(latest.c.channel, latest.c.username).where(latest.c.nth == 1)
    )
    return {channel: username for channel, username in rows.all() if username}


@api.route(
    "GET",
    "/api/v1/contacts/{contact_id}",
    summary="A contact and their channels",
    role=AgentRole.AGENT,
    response=ContactOut,
)
async def get_contact(request: web.Request) -> web.Response:
    return respond(await _contact_out(request, path_id(request, "contact_id")))


@api.route(
    "POST",
    "/api/v1/contacts/{contact_id}/merge",
    summary="Merge another contact into this one",
    role=AgentRole.SUPERVISOR,
    body=MergeIn,
    response=ContactOut,
)
async def merge_contact(request: web.Request) -> web.Response:
    body = await parse_body(request, MergeIn)
    keep_id = path_id(request, "contact_id")
    try:
        async with request.app[STORE].write() as session:
            await desk.merge_contacts(session, keep_id, body.other_id)
    except desk.DeskError as exc:
        raise ApiError(exc.status, exc.error, exc.detail, field=exc.field) from None
    return respond(await _contact_out(request, keep_id))


@api.route(
    "GET",
    "/api/v1/agents",
    summary="Agents (for transfers and the dispatch view); ?active=all lists deactivated ones too",
    role=AgentRole.AGENT,
    query=AgentQuery,
    response=AgentList,
)
async def list_agents(request: web.Request) -> web.Response:
    query = parse_query(request, AgentQuery)
    statement = select(Agent).order_by(Agent.id)
    if query.active != "all":
        statement = statement.where(Agent.active.is_(query.active == "true"))
    async with request.app[STORE].read() as session:
        agents = await session.scalars(statement)
        return respond(AgentList(items=[AgentOut.model_validate(a) for a in agents]))


@api.route("GET", "/api/v1/teams", summary="Teams", role=AgentRole.AGENT, response=TeamList)
async def list_teams(request: web.Request) -> web.Response:
    async with request.app[STORE].read() as session:
        teams = await session.scalars(select(Team).order_by(Team.name))
        return respond(TeamList(items=[TeamOut.model_validate(t) for t in teams]))


@api.route(
    "POST",
    "/api/v1/teams",
    summary="Create a team",
    role=AgentRole.ADMIN,
    body=TeamIn,
    response=TeamOut,
    status=201,
)
async def create_team(request: web.Request) -> web.Response:
    body = await parse_body(request, TeamIn)
    try:
        async with request.app[STORE].write() as session:
            team = Team(name=body.name)
            session.add(team)
            await session.flush()
            out = TeamOut.model_validate(team)
    except IntegrityError:
        raise ApiError(
            409, "conflict", f"a team named {body.name!r} exists", field="name"
        ) from None
    return respond(out, status=201)


@api.route(
    "GET",
    "/api/v1/categories",
    summary="Categories (two levels)",
    role=AgentRole.AGENT,
    response=CategoryList,
)
async def list_categories(request: web.Request) -> web.Response:
    async with request.app[STORE].read() as session:
        rows = await session.scalars(select(Category).order_by(Category.id))
        return respond(CategoryList(items=[CategoryOut.model_validate(c) for c in rows]))


@api.route(
    "POST",
    "/api/v1/categories",
    summary="Create a category (level 1 or 2)",
    role=AgentRole.ADMIN,
    body=CategoryIn,
    response=CategoryOut,
    status=201,
)
async def create_category(request: web.Request) -> web.Response:
    body = await parse_body(request, CategoryIn)
    async with request.app[STORE].write() as session:
        if body.parent_id is not None:
            parent = await session.get(Category, body.parent_id)
            if parent is None:
                raise ApiError(400, "invalid", "no such parent", field="parent_id")
            if parent.parent_id is not None:
                raise ApiError(400, "invalid", "categories have two levels", field="parent_id")
        if body.team_id is not None and await session.get(Team, body.team_id) is None:
            raise ApiError(400, "invalid", "no such team", field="team_id")
        await refuse_duplicate_category(session, body.name, body.parent_id)
        category = Category(name=body.name, parent_id=body.parent_id, team_id=body.team_id)
        session.add(category)
        try:
            await session.flush()
        except IntegrityError:
            raise ApiError(409, "conflict", "that category exists", field="name") from None
        out = CategoryOut.model_validate(category)
    return respond(out, status=201)


@api.route(
    "GET",
    "/api/v1/canned",
    summary="Canned responses; ?q=/shortcut searches",
    role=AgentRole.AGENT,
    query=CannedQuery,
    response=CannedList,
)
async def list_canned(request: web.Request) -> web.Response:
    query = parse_query(request, CannedQuery)
    statement = select(CannedResponse).order_by(CannedResponse.shortcut).limit(50)
    if query.q:
        text = query.q.strip().removeprefix("/").lower()
        statement = statement.where(
            or_(
                func.lower(CannedResponse.shortcut).like(f"{text}%"),
                func.lower(CannedResponse.title).like(f"%{text}%"),
            )
        )
    async with request.app[STORE].read() as session:
        rows = await session.scalars(statement)
        return respond(CannedList(items=[CannedOut.model_validate(c) for c in rows]))


@api.route(
    "POST",
    "/api/v1/canned",
    summary="Create a canned response",
    role=AgentRole.SUPERVISOR,
    body=CannedIn,
    response=CannedOut,
    status=201,
)
async def create_canned(request: web.Request) -> web.Response:
    body = await parse_body(request, CannedIn)
    try:
        async with request.app[STORE].write() as session:
            canned = CannedResponse(
                shortcut=body.shortcut, title=body.title, text=body.text, created_at=utcnow()
            )
            session.add(canned)
            await session.flush()
            out = CannedOut.model_validate(canned)
    except IntegrityError:
        raise ApiError(409, "conflict", "that shortcut exists", field="shortcut") from None
    return respond(out, status=201)
