"""Admins change agents: role, team, capacity, and deactivating (which logs them out and puts their
open tickets back in the queue). No admin can lock everybody out."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select, update

from gateway.models import AgentRole, EventKind
from gateway.store.tables import Agent, AgentSession, Team, Ticket, TicketEvent
from tests.api.conftest import Desk, add_agent
from tests.factories import inbound


async def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body: dict[str, Any] = await response.json()
    assert set(body) == {"error", "detail", "field"}
    return body


async def ticket(desk: Desk, number: str) -> Ticket:
    async with desk.store.read() as session:
        return (await session.scalars(select(Ticket).where(Ticket.number == number))).one()


async def test_role_team_and_capacity_change_and_inactive_agents_are_listed_on_request(
    desk: Desk,
) -> None:
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    async with desk.store.write() as session:
        team = Team(name="Repairs")
        session.add(team)
        await session.flush()
        team_id = team.id
    li = await add_agent(desk.store, "li@shop.test", AgentRole.AGENT, online=False)
    wang = await add_agent(desk.store, "wang@shop.test", AgentRole.AGENT, online=False)

    changed = await admin.send(
        "PATCH",
        f"/api/v1/agents/{li}",
        {"role": "supervisor", "team_id": team_id, "capacity": 3},
    )
    body = await changed.json()
    assert changed.status == 200, body
    assert (body["role"], body["team_id"], body["capacity"], body["active"]) == (
        "supervisor",
        team_id,
        3,
        True,
    )
    async with desk.store.read() as session:
        row = await session.get_one(Agent, li)
        assert (row.role, row.team_id, row.capacity) == ("supervisor", team_id, 3)

    assert (await admin.send("PATCH", f"/api/v1/agents/{wang}", {"active": False})).status == 200
    listed = await (await admin.get("/api/v1/agents")).json()
    assert wang not in [a["id"] for a in listed["items"]]
    everyone = await (await admin.get("/api/v1/agents?active=all")).json()
    assert {a["id"]: a["active"] for a in everyone["items"]}[wang] is False
    assert {a["id"] for a in everyone["items"]} == {admin.agent_id, li, wang}
    gone = await (await admin.get("/api/v1/agents?active=false")).json()
    assert [a["email"] for a in gone["items"]] == ["wang@shop.test"]
    assert (await error(await admin.get("/api/v1/agents?active=maybe"), 400))["field"] == "active"

    for patch, field in (
        ({"team_id": 9999}, "team_id"),
        ({"capacity": -1}, "capacity"),
        ({"role": "owner"}, "role"),
        ({"active": None}, "active"),
        ({"password_hash": "x"}, "password_hash"),
    ):
        refused = await error(await admin.send("PATCH", f"/api/v1/agents/{li}", patch), 400)
        assert refused["field"] == field
    for path in ("/api/v1/agents/9999", "/api/v1/agents/me"):
        assert (await error(await admin.send("PATCH", path, {"capacity": 1}), 404))[
            "error"
        ] == "not_found"
    # Clearing the team is a change too.
    cleared = await admin.send("PATCH", f"/api/v1/agents/{li}", {"team_id": None})
    assert (await cleared.json())["team_id"] is None


async def test_more_capacity_takes_queued_tickets_at_once(desk: Desk) -> None:
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    li = await add_agent(desk.store, "li@shop.test", AgentRole.AGENT)
    async with desk.store.write() as session:
        await session.execute(update(Agent).where(Agent.id == li).values(capacity=0))
    number = await desk.customer_says(inbound(text="human please"))
    assert (await ticket(desk, number)).assignee_id is None  # nobody has room: it waits

    assert (await admin.send("PATCH", f"/api/v1/agents/{li}", {"capacity": 1})).status == 200
    assert (await ticket(desk, number)).assignee_id == li


async def test_deactivating_logs_out_and_requeues_open_tickets(desk: Desk) -> None:
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    li = await desk.login("li@shop.test", AgentRole.AGENT)
    wang = await add_agent(desk.store, "wang@shop.test", AgentRole.AGENT, online=False)
    number = await desk.customer_says(inbound(text="human please"))
    assert (await ticket(desk, number)).assignee_id == li.agent_id
    async with desk.store.write() as session:  # wang comes online with room to spare
        await session.execute(update(Agent).where(Agent.id == wang).values(online=True))

    off = await admin.send("PATCH", f"/api/v1/agents/{li.agent_id}", {"active": False})
    body = await off.json()
    assert off.status == 200, body
    assert (body["active"], body["online"]) == (False, False)

    # Logged out at once: the old session is gone and cannot log back in.
    assert (await li.get("/api/v1/auth/me")).status == 401
    login = await li.client.post(
        "/api/v1/auth/login", json={"email": "li@shop.test", "password": "a long enough password"}
    )
    assert login.status == 401
    moved = await ticket(desk, number)
    assert moved.assignee_id == wang  # back in the queue, and dispatched to who has room
    async with desk.store.read() as session:
        assert (
            await session.scalar(select(AgentSession).where(AgentSession.agent_id == li.agent_id))
        ) is None
        events = (
            await session.scalars(
                select(TicketEvent)
                .where(
                    TicketEvent.ticket_id == moved.id,
                    TicketEvent.kind == EventKind.ASSIGNMENT.value,
                )
                .order_by(TicketEvent.id)
            )
        ).all()
    requeued = [e for e in events if e.actor_id == admin.agent_id]
    assert [(e.old_value, e.new_value) for e in requeued] == [(str(li.agent_id), None)]
    assert requeued[0].note is not None and "deactivated" in requeued[0].note
    assert events[-1].new_value == str(wang)

    # Reactivated, they may log in again (and start offline, like any login would set).
    back = await admin.send("PATCH", f"/api/v1/agents/{li.agent_id}", {"active": True})
    assert (await back.json())["active"] is True
    login = await li.client.post(
        "/api/v1/auth/login", json={"email": "li@shop.test", "password": "a long enough password"}
    )
    assert login.status == 200


async def test_an_admin_cannot_lock_everybody_out(desk: Desk) -> None:
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    for patch, field in (
        ({"role": "supervisor"}, "role"),
        ({"role": "agent", "capacity": 5}, "role"),
        ({"active": False}, "active"),
    ):
        refused = await error(
            await admin.send("PATCH", f"/api/v1/agents/{admin.agent_id}", patch), 409
        )
        assert (refused["error"], refused["field"]) == ("lockout", field)
        assert "yourself" in refused["detail"]
    async with desk.store.read() as session:
        me = await session.get_one(Agent, admin.agent_id)
        assert (me.role, me.active, me.capacity) == ("admin", True, 10)
    # Changing one's own team or capacity is fine; staying admin is fine.
    fine = await admin.send(
        "PATCH", f"/api/v1/agents/{admin.agent_id}", {"role": "admin", "capacity": 2}
    )
    assert fine.status == 200


async def test_two_admins_demoting_each_other_leave_one_admin(desk: Desk) -> None:
    ann = await desk.login("ann@shop.test", AgentRole.ADMIN)
    bob = await desk.login("bob@shop.test", AgentRole.ADMIN)
    first, second = await asyncio.gather(
        ann.send("PATCH", f"/api/v1/agents/{bob.agent_id}", {"role": "agent"}),
        bob.send("PATCH", f"/api/v1/agents/{ann.agent_id}", {"role": "agent"}),
    )
    statuses = sorted([first.status, second.status])
    # The loser was either already demoted when it called (403) or saw one admin left (409).
    assert statuses[0] == 200 and statuses[1] in (403, 409), statuses
    async with desk.store.read() as session:
        admins = (
            await session.scalars(
                select(Agent.email).where(Agent.role == "admin", Agent.active.is_(True))
            )
        ).all()
    assert len(admins) == 1
