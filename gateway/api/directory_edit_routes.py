"""Admins edit the directory: rename and delete teams, categories and canned responses, move a
category to another team, and change an agent's role, team, capacity or whether they may log in.

Deleting what something still uses is refused, not cascaded (what Zammad does with groups, and
what a desk whose reports and dispatch hang off teams and categories needs): a team used by
agents, categories or tickets, or a category with subcategories or tickets, answers 409 naming
what uses it. Rename it instead, or move those first (``PATCH`` the agents, categories and
tickets). Moving a category to another team sends its next tickets there, and takes along its
tickets still waiting unassigned in the old team's queue (each with an event); tickets an agent
already has stay with that agent.

Agents are never deleted, only deactivated (their tickets, messages and events keep pointing at
them). Deactivating one logs them out, takes them out of dispatch and puts their open tickets back
in the queue (each with an assignment event), as Chatwoot does when it removes an agent. No admin
can demote or deactivate themselves, nor the last active admin (409 ``lockout``).

There is no admin audit table: each change is logged (who, what, which fields; never the texts),
and tickets an agent's deactivation moves get ticket events.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import desk
from gateway.api.access import Principal, principal
from gateway.api.directory_routes import path_id, refuse_duplicate_category
from gateway.api.endpoints import ApiTable
from gateway.api.errors import ApiError, parse_body, respond
from gateway.api.schemas import (
    AgentOut,
    AgentPatch,
    CannedOut,
    CannedPatch,
    CategoryOut,
    CategoryPatch,
    Ok,
    TeamOut,
    TeamPatch,
)
from gateway.appkeys import ROUTER, SETTINGS, STORE
from gateway.models import OPEN_STATUSES, AgentRole
from gateway.store.tables import Agent, AgentSession, CannedResponse, Category, Team, Ticket
from gateway.store.types import utcnow

api = ApiTable()
log = logging.getLogger(__name__)

_OPEN = [s.value for s in OPEN_STATUSES]
Row = TypeVar("Row")


def _changes(body: BaseModel) -> dict[str, Any]:
    """The fields the request sent (a PATCH changes only those)."""
    return body.model_dump(exclude_unset=True)


def _logged(who: Principal, entity: str, entity_id: int, action: str, fields: object) -> None:
    log.info(
        "directory %s %s",
        entity,
        action,
        extra={
            "actor_id": who.agent_id,
            "entity": entity,
            "entity_id": entity_id,
            "action": action,
            "fields": sorted(fields) if isinstance(fields, dict) else [],
        },
    )


async def _count(session: AsyncSession, *where: Any, table: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def _in_use(what: str, uses: list[tuple[int, str, str]], advice: str) -> ApiError:
    """409 naming what still uses ``what``: ``uses`` holds (count, singular, plural)."""
    parts = [f"{n} {one if n == 1 else many}" for n, one, many in uses if n]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return ApiError(409, "in_use", f"{what} is still used by {listed}; {advice}")


async def _locked(session: AsyncSession, table: type[Row], row_id: int, noun: str) -> Row:
    """The row, locked for the change, or 404 ``no {noun} {row_id}``."""
    row = await session.get(table, row_id, with_for_update=True)
    if row is None:
        raise ApiError(404, "not_found", f"no {noun} {row_id}")
    return row


@asynccontextmanager
async def _writing(request: web.Request, *, conflict: ApiError) -> AsyncIterator[AsyncSession]:
    """One write transaction, flushed at the end of the block; a unique or foreign key the write
    breaks (a concurrent change between the look and the write) answers ``conflict``."""
    try:
        async with request.app[STORE].write() as session:
            yield session
            await session.flush()
    except IntegrityError:
        raise conflict from None


async def _team_exists(session: AsyncSession, team_id: object) -> None:
    if isinstance(team_id, int) and await session.get(Team, team_id) is None:
        raise ApiError(400, "invalid", f"no team {team_id}", field="team_id")


# --- teams -------------------------------------------------------------------------------------


@api.route(
    "PATCH",
    "/api/v1/teams/{team_id}",
    summary="Rename a team",
    role=AgentRole.ADMIN,
    body=TeamPatch,
    response=TeamOut,
)
async def patch_team(request: web.Request) -> web.Response:
    team_id = path_id(request, "team_id")
    fields = _changes(await parse_body(request, TeamPatch))
    taken_meanwhile = ApiError(409, "conflict", "a team with that name exists", field="name")
    async with _writing(request, conflict=taken_meanwhile) as session:
        team = await _locked(session, Team, team_id, "team")
        if "name" in fields and fields["name"] != team.name:
            taken = await session.scalar(
                select(Team.id).where(Team.name == fields["name"], Team.id != team_id)
            )
            if taken is not None:
                raise ApiError(
                    409, "conflict", f"a team named {fields['name']!r} exists", field="name"
                )
            team.name = fields["name"]
        out = TeamOut.model_validate(team)
    _logged(principal(request), "team", team_id, "update", fields)
    return respond(out)


@api.route(
    "DELETE",
    "/api/v1/teams/{team_id}",
    summary="Delete a team no agent, category or ticket uses (409 names what still does)",
    role=AgentRole.ADMIN,
    response=Ok,
)
async def delete_team(request: web.Request) -> web.Response:
    """Delete a team that nothing uses.

    Refused (409 ``in_use``) while agents, categories or tickets -- open or closed -- point at
    it: detaching them would silently drop queued tickets out of dispatch and rewrite history.
    """
    team_id = path_id(request, "team_id")
    came_into_use = ApiError(409, "in_use", f"team {team_id} came into use; try again")
    async with _writing(request, conflict=came_into_use) as session:
        team = await _locked(session, Team, team_id, "team")
        agents = await _count(session, Agent.team_id == team_id, table=Agent)
        categories = await _count(session, Category.team_id == team_id, table=Category)
        tickets = await _count(session, Ticket.team_id == team_id, table=Ticket)
        open_tickets = await _count(
            session, Ticket.team_id == team_id, Ticket.status.in_(_OPEN), table=Ticket
        )
        if agents or categories or tickets:
            raise _in_use(
                f"team {team.name!r}",
                [
                    (agents, "agent", "agents"),
                    (categories, "category", "categories"),
                    (open_tickets, "open ticket", "open tickets"),
                    (tickets - open_tickets, "closed ticket", "closed tickets"),
                ],
                "move them to another team first, or rename this one",
            )
        await session.delete(team)
    _logged(principal(request), "team", team_id, "delete", None)
    return respond(Ok())


# --- categories --------------------------------------------------------------------------------


async def _check_parent(session: AsyncSession, category: Category, parent_id: int) -> None:
    if parent_id == category.id:
        raise ApiError(400, "invalid", "a category cannot be its own parent", field="parent_id")
    parent = await session.get(Category, parent_id)
    if parent is None:
        raise ApiError(400, "invalid", "no such parent", field="parent_id")
    if parent.parent_id is not None:
        raise ApiError(400, "invalid", "categories have two levels", field="parent_id")
    children = await _count(session, Category.parent_id == category.id, table=Category)
    if children:
        raise ApiError(
            400,
            "invalid",
            "categories have two levels: this one has subcategories, so it stays on top",
            field="parent_id",
        )


async def _move_waiting(
    request: web.Request, session: AsyncSession, category: Category, old_team: int | None
) -> None:
    """The category's tickets waiting in ``old_team``'s queue follow it to its new team."""
    who = principal(request)
    dispatcher = request.app[ROUTER].dispatcher
    policies = desk.Policies.from_settings(request.app[SETTINGS], dispatcher)
    actor = desk.Actor(who.agent_id, who.name, may_take_over=True)
    now = utcnow()
    waiting = await session.scalars(
        select(Ticket)
        .where(
            Ticket.category_id == category.id,
            Ticket.team_id.is_(None) if old_team is None else Ticket.team_id == old_team,
            Ticket.assignee_id.is_(None),
            Ticket.escalated_at.is_not(None),
            Ticket.status.in_(_OPEN),
        )
        .order_by(Ticket.id)
        .with_for_update()
    )
    for ticket in waiting.all():
        await desk.change(
            session,
            ticket,
            actor,
            now,
            fields={"team_id": category.team_id},
            note_text=f"category {category.name!r} moved to another team",
            policies=policies,
        )
    await dispatcher.fill(session, category.team_id, now)


@api.route(
    "PATCH",
    "/api/v1/categories/{category_id}",
    summary="Rename a category, move it under another parent, or dispatch it to another team",
    role=AgentRole.ADMIN,
    body=CategoryPatch,
    response=CategoryOut,
)
async def patch_category(request: web.Request) -> web.Response:
    category_id = path_id(request, "category_id")
    fields = _changes(await parse_body(request, CategoryPatch))
    exists = ApiError(409, "conflict", "that category exists", field="name")
    async with _writing(request, conflict=exists) as session:
        category = await _locked(session, Category, category_id, "category")
        if fields.get("parent_id") is not None:
            await _check_parent(session, category, fields["parent_id"])
        await _team_exists(session, fields.get("team_id"))
        name = fields.get("name", category.name)
        parent_id = fields.get("parent_id", category.parent_id)
        if (name, parent_id) != (category.name, category.parent_id):
            await refuse_duplicate_category(session, name, parent_id, other_than=category_id)
        old_team = category.team_id
        for key, value in fields.items():
            setattr(category, key, value)
        await session.flush()
        if category.team_id != old_team:
            await _move_waiting(request, session, category, old_team)
        out = CategoryOut.model_validate(category)
    _logged(principal(request), "category", category_id, "update", fields)
    return respond(out)


@api.route(
    "DELETE",
    "/api/v1/categories/{category_id}",
    summary="Delete a category no ticket or subcategory uses (409 names what still does)",
    role=AgentRole.ADMIN,
    response=Ok,
)
async def delete_category(request: web.Request) -> web.Response:
    """Delete a category that nothing uses.

    Refused (409 ``in_use``) while it has subcategories or tickets (open or closed): reports
    count tickets by category, so clearing theirs would rewrite the figures of past periods.
    """
    category_id = path_id(request, "category_id")
    came_into_use = ApiError(409, "in_use", f"category {category_id} came into use; try again")
    async with _writing(request, conflict=came_into_use) as session:
        category = await _locked(session, Category, category_id, "category")
        children = await _count(session, Category.parent_id == category_id, table=Category)
        tickets = await _count(session, Ticket.category_id == category_id, table=Ticket)
        if children or tickets:
            raise _in_use(
                f"category {category.name!r}",
                [(children, "subcategory", "subcategories"), (tickets, "ticket", "tickets")],
                "move them to another category first, or rename this one",
            )
        await session.delete(category)
    _logged(principal(request), "category", category_id, "delete", None)
    return respond(Ok())


# --- canned responses --------------------------------------------------------------------------


@api.route(
    "PATCH",
    "/api/v1/canned/{canned_id}",
    summary="Change a canned response's shortcut, title or text",
    role=AgentRole.ADMIN,
    body=CannedPatch,
    response=CannedOut,
)
async def patch_canned(request: web.Request) -> web.Response:
    canned_id = path_id(request, "canned_id")
    fields = _changes(await parse_body(request, CannedPatch))
    conflict = ApiError(409, "conflict", "that shortcut exists", field="shortcut")
    async with _writing(request, conflict=conflict) as session:
        canned = await _locked(session, CannedResponse, canned_id, "canned response")
        if fields.get("shortcut", canned.shortcut) != canned.shortcut:
            taken = await session.scalar(
                select(CannedResponse.id).where(
                    CannedResponse.shortcut == fields["shortcut"], CannedResponse.id != canned_id
                )
            )
            if taken is not None:
                raise conflict
        for key, value in fields.items():
            setattr(canned, key, value)
        out = CannedOut.model_validate(canned)
    _logged(principal(request), "canned", canned_id, "update", fields)
    return respond(out)


@api.route(
    "DELETE",
    "/api/v1/canned/{canned_id}",
    summary="Delete a canned response",
    role=AgentRole.ADMIN,
    response=Ok,
)
async def delete_canned(request: web.Request) -> web.Response:
    """Delete a canned response (replies sent with it keep their text: nothing points at it)."""
    canned_id = path_id(request, "canned_id")
    async with request.app[STORE].write() as session:
        await session.delete(await _locked(session, CannedResponse, canned_id, "canned response"))
    _logged(principal(request), "canned", canned_id, "delete", None)
    return respond(Ok())


# --- agents ------------------------------------------------------------------------------------


async def _refuse_lockout(
    session: AsyncSession, agent: Agent, fields: dict[str, Any], who: Principal
) -> None:
    demoted = "role" in fields and fields["role"] != AgentRole.ADMIN
    deactivated = fields.get("active") is False
    if agent.role != AgentRole.ADMIN.value or not agent.active or not (demoted or deactivated):
        return
    change = "demote" if demoted else "deactivate"
    if agent.id == who.agent_id:
        raise ApiError(
            409,
            "lockout",
            f"you cannot {change} yourself; another admin can",
            field="role" if demoted else "active",
        )
    admins = await session.scalars(
        select(Agent.id).where(
            Agent.role == AgentRole.ADMIN.value, Agent.active.is_(True), Agent.id != agent.id
        )
    )
    if not admins.all():
        raise ApiError(
            409,
            "lockout",
            f"{agent.email} is the last active admin; {change} them and nobody could administer",
            field="role" if demoted else "active",
        )


async def _requeue_tickets(
    request: web.Request, session: AsyncSession, agent: Agent, who: Principal
) -> int:
    """Put a deactivated agent's open tickets back in the queue, each with an event."""
    policies = desk.Policies.from_settings(request.app[SETTINGS], request.app[ROUTER].dispatcher)
    actor = desk.Actor(who.agent_id, who.name, may_take_over=True)
    now = utcnow()
    tickets = await session.scalars(
        select(Ticket)
        .where(Ticket.assignee_id == agent.id, Ticket.status.in_(_OPEN))
        .order_by(Ticket.id)
        .with_for_update()
    )
    moved = 0
    for ticket in tickets.all():
        await desk.change(
            session,
            ticket,
            actor,
            now,
            fields={"assignee_id": None},
            note_text=f"{agent.name}'s account was deactivated",
            policies=policies,
        )
        moved += 1
    return moved


@api.route(
    "PATCH",
    "/api/v1/agents/{agent_id}",
    summary="Change an agent's role, team, capacity, or deactivate / reactivate the account",
    role=AgentRole.ADMIN,
    body=AgentPatch,
    response=AgentOut,
)
async def patch_agent(request: web.Request) -> web.Response:
    """Change an agent; a changed team, capacity or reactivation fills queues it can now take.

    Deactivating logs the agent out (sessions end; bearer tokens stop working while inactive)
    and moves their open tickets back to the queue. 409 ``lockout`` for an admin demoting or
    deactivating themselves or the last active admin.
    """
    agent_id = path_id(request, "agent_id")
    fields = _changes(await parse_body(request, AgentPatch))
    who = principal(request)
    dispatcher = request.app[ROUTER].dispatcher
    async with request.app[STORE].write() as session:
        # The admins first, always in id order: two admins demoting each other at once queue
        # up here (PostgreSQL) instead of deadlocking, and the second sees one admin left.
        await session.scalars(
            select(Agent.id)
            .where(Agent.role == AgentRole.ADMIN.value, Agent.active.is_(True))
            .order_by(Agent.id)
            .with_for_update()
        )
        agent = await _locked(session, Agent, agent_id, "agent")
        await _team_exists(session, fields.get("team_id"))
        await _refuse_lockout(session, agent, fields, who)
        deactivating = agent.active and fields.get("active") is False
        for key, value in fields.items():
            setattr(agent, key, value.value if isinstance(value, AgentRole) else value)
        if deactivating:
            agent.online = False
            await session.execute(delete(AgentSession).where(AgentSession.agent_id == agent.id))
            await session.flush()
            await _requeue_tickets(request, session, agent, who)
        await session.flush()
        if agent.active and {"team_id", "capacity", "active"} & set(fields):
            await dispatcher.fill(session, agent.team_id, utcnow())
        out = AgentOut.model_validate(agent)
    _logged(who, "agent", agent_id, "update", fields)
    return respond(out)
