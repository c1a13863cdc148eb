"""Admins rename, move and delete teams, categories and canned responses; what is still used is
not deleted (409 names what uses it); unknown ids are 404; other roles get 403."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from gateway.models import AgentRole
from gateway.store.tables import Agent, CannedResponse, Category, Team, Ticket
from tests.api.conftest import AgentClient, Desk, add_agent
from tests.factories import inbound


async def made(client: AgentClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.send("POST", path, body)
    assert response.status == 201, await response.text()
    found: dict[str, Any] = await response.json()
    return found


async def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body: dict[str, Any] = await response.json()
    assert set(body) == {"error", "detail", "field"}
    return body


async def test_a_team_is_renamed_and_names_stay_unique(desk: Desk) -> None:
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    sales = await made(admin, "/api/v1/teams", {"name": "Sales"})
    await made(admin, "/api/v1/teams", {"name": "Repairs"})

    renamed = await admin.send("PATCH", f"/api/v1/teams/{sales['id']}", {"name": "售前组"})
    assert renamed.status == 200
    assert await renamed.json() == {"id": sales["id"], "name": "售前组"}
    async with desk.store.read() as session:
        assert (await session.get_one(Team, sales["id"])).name == "售前组"
    # An empty PATCH changes nothing; the same name again is no conflict with itself.
    same = await admin.send("PATCH", f"/api/v1/teams/{sales['id']}", {"name": "售前组"})
    assert (await same.json())["name"] == "售前组"

    taken = await error(
        await admin.send("PATCH", f"/api/v1/teams/{sales['id']}", {"name": "Repairs"}), 409
    )
    assert (taken["error"], taken["field"]) == ("conflict", "name")
    blank = await error(
        await admin.send("PATCH", f"/api/v1/teams/{sales['id']}", {"name": ""}), 400
    )
    assert blank["field"] == "name"
    for path in ("/api/v1/teams/9999", "/api/v1/teams/x", "/api/v1/teams/99999999999999999999"):
        assert (await error(await admin.send("PATCH", path, {"name": "z"}), 404))[
            "error"
        ] == "not_found"
        assert (await admin.send("DELETE", path)).status == 404


async def test_a_team_in_use_is_not_deleted_until_nothing_uses_it(desk: Desk) -> None:
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    team = await made(admin, "/api/v1/teams", {"name": "After-sales"})
    other = await made(admin, "/api/v1/teams", {"name": "Logistics"})
    category = await made(admin, "/api/v1/categories", {"name": "Repair", "team_id": team["id"]})
    li = await add_agent(desk.store, "li@shop.test", AgentRole.AGENT, team_id=team["id"])
    number = await desk.customer_says(inbound(text="human please"))
    async with desk.store.write() as session:
        await session.execute(
            update(Ticket).where(Ticket.number == number).values(team_id=team["id"])
        )

    refused = await error(await admin.send("DELETE", f"/api/v1/teams/{team['id']}"), 409)
    assert refused["error"] == "in_use"
    assert "1 agent, 1 category and 1 open ticket" in refused["detail"], refused["detail"]

    # Move each user of it elsewhere, through the API where there is one.
    moved = await admin.send("PATCH", f"/api/v1/agents/{li}", {"team_id": other["id"]})
    assert moved.status == 200
    moved = await admin.send(
        "PATCH", f"/api/v1/categories/{category['id']}", {"team_id": other["id"]}
    )
    assert (await moved.json())["team_id"] == other["id"]
    refused = await error(await admin.send("DELETE", f"/api/v1/teams/{team['id']}"), 409)
    assert refused["detail"].endswith(
        "is still used by 1 open ticket; move them to another team first, or rename this one"
    )
    async with desk.store.write() as session:  # resolved long ago: still part of its history
        await session.execute(update(Ticket).where(Ticket.number == number).values(status="closed"))
    refused = await error(await admin.send("DELETE", f"/api/v1/teams/{team['id']}"), 409)
    assert "1 closed ticket" in refused["detail"]
    async with desk.store.write() as session:
        await session.execute(
            update(Ticket).where(Ticket.number == number).values(team_id=other["id"])
        )

    deleted = await admin.send("DELETE", f"/api/v1/teams/{team['id']}")
    assert deleted.status == 200
    assert await deleted.json() == {"ok": True}
    async with desk.store.read() as session:
        assert await session.get(Team, team["id"]) is None
        assert await session.get(Team, other["id"]) is not None
    assert (await admin.send("DELETE", f"/api/v1/teams/{team['id']}")).status == 404
    teams = await (await admin.get("/api/v1/teams")).json()
    assert [t["name"] for t in teams["items"]] == ["Logistics"]


async def test_a_category_moves_between_teams_and_levels(desk: Desk) -> None:
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    repairs = await made(admin, "/api/v1/teams", {"name": "Repairs"})
    orders = await made(admin, "/api/v1/categories", {"name": "Orders"})
    after_sales = await made(admin, "/api/v1/categories", {"name": "After-sales"})
    refund = await made(admin, "/api/v1/categories", {"name": "Refund"})
    late = await made(
        admin, "/api/v1/categories", {"name": "Late parcel", "parent_id": orders["id"]}
    )
    path = f"/api/v1/categories/{refund['id']}"

    # Under another parent, renamed, dispatched to a team: all at once.
    changed = await admin.send(
        "PATCH",
        path,
        {"name": "Refund request", "parent_id": after_sales["id"], "team_id": repairs["id"]},
    )
    assert await changed.json() == {
        "id": refund["id"],
        "name": "Refund request",
        "parent_id": after_sales["id"],
        "team_id": repairs["id"],
    }
    # Back to the top, no team: null clears; fields not sent stay as they are.
    changed = await admin.send("PATCH", path, {"parent_id": None, "team_id": None})
    body = await changed.json()
    assert (body["name"], body["parent_id"], body["team_id"]) == ("Refund request", None, None)
    async with desk.store.read() as session:
        row = await session.get_one(Category, refund["id"])
        assert (row.name, row.parent_id, row.team_id) == ("Refund request", None, None)

    cases: list[tuple[str, dict[str, Any], int, str | None]] = [
        (path, {"parent_id": refund["id"]}, 400, "parent_id"),  # itself
        (path, {"parent_id": late["id"]}, 400, "parent_id"),  # a third level
        (f"/api/v1/categories/{orders['id']}", {"parent_id": after_sales["id"]}, 400, "parent_id"),
        (path, {"parent_id": 9999}, 400, "parent_id"),
        (path, {"team_id": 9999}, 400, "team_id"),
        (path, {"name": "Orders"}, 409, "name"),  # a top-level sibling has that name
        (
            f"/api/v1/categories/{late['id']}",
            {"parent_id": None, "name": "After-sales"},
            409,
            "name",
        ),
        (path, {"colour": "red"}, 400, "colour"),
        ("/api/v1/categories/9999", {"name": "x"}, 404, None),
    ]
    for where, patch, status, field in cases:
        found = await error(await admin.send("PATCH", where, patch), status)
        assert found["field"] == field, (patch, found)
    async with desk.store.read() as session:
        row = await session.get_one(Category, refund["id"])
        assert (row.name, row.parent_id, row.team_id) == ("Refund request", None, None)
    # The unique-name check covers creating, too (top-level NULL parents never collide in SQL).
    duplicate = await error(await admin.send("POST", "/api/v1/categories", {"name": "Orders"}), 409)
    assert duplicate["field"] == "name"


async def test_a_category_in_use_is_not_deleted(desk: Desk) -> None:
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    orders = await made(admin, "/api/v1/categories", {"name": "Orders"})
    late = await made(
        admin, "/api/v1/categories", {"name": "Late parcel", "parent_id": orders["id"]}
    )
    unused = await made(admin, "/api/v1/categories", {"name": "Unused"})
    number = await desk.customer_says(inbound(text="human please"))
    async with desk.store.write() as session:
        await session.execute(
            update(Ticket).where(Ticket.number == number).values(category_id=late["id"])
        )

    parent = await error(await admin.send("DELETE", f"/api/v1/categories/{orders['id']}"), 409)
    assert parent["error"] == "in_use"
    assert "'Orders' is still used by 1 subcategory;" in parent["detail"]
    child = await error(await admin.send("DELETE", f"/api/v1/categories/{late['id']}"), 409)
    assert "'Late parcel' is still used by 1 ticket;" in child["detail"]

    assert (await admin.send("DELETE", f"/api/v1/categories/{unused['id']}")).status == 200
    assert (await admin.send("DELETE", f"/api/v1/categories/{unused['id']}")).status == 404
    async with desk.store.read() as session:
        names = set((await session.scalars(select(Category.name))).all())
    assert names == {"Orders", "Late parcel"}


async def test_canned_responses_are_edited_and_deleted(desk: Desk) -> None:
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    agent = await desk.login("agent@shop.test", AgentRole.AGENT)
    thanks = await made(
        admin, "/api/v1/canned", {"shortcut": "thanks", "title": "Gratitude", "text": "Thank you!"}
    )
    await made(admin, "/api/v1/canned", {"shortcut": "bye", "title": "Bye", "text": "Goodbye."})
    path = f"/api/v1/canned/{thanks['id']}"

    changed = await admin.send("PATCH", path, {"shortcut": "ty", "text": "谢谢您的耐心！"})
    assert await changed.json() == {
        "id": thanks["id"],
        "shortcut": "ty",
        "title": "Gratitude",
        "text": "谢谢您的耐心！",
    }
    found = await (await agent.get("/api/v1/canned?q=/ty")).json()
    assert [c["text"] for c in found["items"]] == ["谢谢您的耐心！"]
    assert (await (await agent.get("/api/v1/canned?q=/thanks")).json())["items"] == []

    taken = await error(await admin.send("PATCH", path, {"shortcut": "bye"}), 409)
    assert taken["field"] == "shortcut"
    bad = await error(await admin.send("PATCH", path, {"shortcut": "has space"}), 400)
    assert bad["field"] == "shortcut"
    assert (await admin.send("PATCH", "/api/v1/canned/9999", {"title": "x"})).status == 404

    assert (await admin.send("DELETE", path)).status == 200
    assert (await admin.send("DELETE", path)).status == 404
    async with desk.store.read() as session:
        left = (await session.scalars(select(CannedResponse.shortcut))).all()
    assert left == ["bye"]


async def test_only_admins_edit_the_directory(desk: Desk) -> None:
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    team = await made(admin, "/api/v1/teams", {"name": "Sales"})
    category = await made(admin, "/api/v1/categories", {"name": "Orders"})
    canned = await made(admin, "/api/v1/canned", {"shortcut": "hi", "title": "Hi", "text": "Hello"})
    agent_id = await add_agent(desk.store, "li@shop.test", AgentRole.AGENT)
    for role in (AgentRole.AGENT, AgentRole.SUPERVISOR):
        client = await desk.login(f"{role}@shop.test", role)
        for method, path, body in (
            ("PATCH", f"/api/v1/teams/{team['id']}", {"name": "Mine"}),
            ("DELETE", f"/api/v1/teams/{team['id']}", None),
            ("PATCH", f"/api/v1/categories/{category['id']}", {"name": "Mine"}),
            ("DELETE", f"/api/v1/categories/{category['id']}", None),
            ("PATCH", f"/api/v1/canned/{canned['id']}", {"text": "Mine"}),
            ("DELETE", f"/api/v1/canned/{canned['id']}", None),
            ("PATCH", f"/api/v1/agents/{agent_id}", {"role": "admin"}),
            ("PATCH", f"/api/v1/agents/{client.agent_id}", {"role": "admin"}),
        ):
            refused = await error(await client.send(method, path, body), 403)
            assert refused["error"] == "forbidden", (role, method, path)
    async with desk.store.read() as session:
        assert (await session.get_one(Team, team["id"])).name == "Sales"
        assert (await session.get_one(Category, category["id"])).name == "Orders"
        assert (await session.get_one(CannedResponse, canned["id"])).text == "Hello"
        roles = set((await session.scalars(select(Agent.role))).all())
    assert roles == {"admin", "agent", "supervisor"}


async def test_moving_a_category_takes_its_waiting_tickets_to_the_new_team(desk: Desk) -> None:
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    sales = await made(admin, "/api/v1/teams", {"name": "Sales"})
    repairs = await made(admin, "/api/v1/teams", {"name": "Repairs"})
    category = await made(admin, "/api/v1/categories", {"name": "Broken", "team_id": sales["id"]})
    fixer = await add_agent(desk.store, "fixer@shop.test", AgentRole.AGENT, online=False)
    waiting = await desk.customer_says(inbound(text="human please", thread_key="a"))
    held = await desk.customer_says(inbound(text="human again", external_user_id="u2"))
    async with desk.store.write() as session:  # both in Sales' queue; one already taken
        await session.execute(
            update(Ticket)
            .where(Ticket.number.in_([waiting, held]))
            .values(category_id=category["id"], team_id=sales["id"], assignee_id=None)
        )
        await session.execute(
            update(Ticket).where(Ticket.number == held).values(assignee_id=admin.agent_id)
        )
        await session.execute(
            update(Agent).where(Agent.id == fixer).values(team_id=repairs["id"], online=True)
        )

    moved = await admin.send(
        "PATCH", f"/api/v1/categories/{category['id']}", {"team_id": repairs["id"]}
    )
    assert moved.status == 200, await moved.text()
    async with desk.store.read() as session:
        rows = {
            t.number: (t.team_id, t.assignee_id)
            for t in await session.scalars(select(Ticket).where(Ticket.number.in_([waiting, held])))
        }
    # The waiting one followed the category and was dispatched there; the held one stays put.
    assert rows == {waiting: (repairs["id"], fixer), held: (sales["id"], admin.agent_id)}


async def test_an_unknown_id_is_404_naming_what_was_not_found(desk: Desk) -> None:
    """The error bodies are a contract: one lookup serves teams, categories, canned responses
    and agents, and each 404 still names its own kind."""
    admin = await desk.login("admin@shop.test", AgentRole.ADMIN)
    cases = [
        ("PATCH", "/api/v1/teams/9999", {"name": "z"}, "no team 9999"),
        ("DELETE", "/api/v1/teams/9999", None, "no team 9999"),
        ("PATCH", "/api/v1/categories/9999", {"name": "z"}, "no category 9999"),
        ("DELETE", "/api/v1/categories/9999", None, "no category 9999"),
        ("PATCH", "/api/v1/canned/9999", {"title": "z"}, "no canned response 9999"),
        ("DELETE", "/api/v1/canned/9999", None, "no canned response 9999"),
        ("PATCH", "/api/v1/agents/9999", {"capacity": 1}, "no agent 9999"),
    ]
    for method, path, body, detail in cases:
        found = await error(await admin.send(method, path, body), 404)
        assert found == {"error": "not_found", "detail": detail, "field": None}, path
