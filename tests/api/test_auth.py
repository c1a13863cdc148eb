"""Logging in, sessions, CSRF, bearer tokens, the first-login password change, rate limits."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from gateway.accounts import create_agent
from gateway.models import AgentRole
from tests.api.conftest import PASSWORD, Desk


async def test_login_sets_an_httponly_cookie_and_me_answers(desk: Desk) -> None:
    agent = await desk.login("ann@shop.test", AgentRole.AGENT)
    me = await agent.get("/api/v1/auth/me")
    assert me.status == 200
    assert (await me.json())["email"] == "ann@shop.test"
    again = await agent.client.post(
        "/api/v1/auth/login", json={"email": "ann@shop.test", "password": PASSWORD}
    )
    set_cookie = again.headers["Set-Cookie"]
    assert set_cookie.startswith("gw_session=")
    assert "HttpOnly" in set_cookie
    assert "SameSite=Lax" in set_cookie


async def test_wrong_password_and_unknown_email_look_the_same(desk: Desk) -> None:
    await desk.login("ann@shop.test", AgentRole.AGENT)
    client = TestClient(desk.server)
    await client.start_server()
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": "ann@shop.test", "password": "x"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": "no@shop.test", "password": "x"}
    )
    assert wrong.status == unknown.status == 401
    assert (await wrong.json())["error"] == (await unknown.json())["error"] == "bad_credentials"
    await client.close()


async def test_logins_are_rate_limited_per_address(desk: Desk) -> None:
    client = TestClient(desk.server)
    await client.start_server()
    statuses = [
        (
            await client.post("/api/v1/auth/login", json={"email": "a@b.test", "password": "x"})
        ).status
        for _ in range(12)
    ]
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
    await client.close()


async def test_a_state_change_without_the_csrf_token_is_refused(desk: Desk) -> None:
    agent = await desk.login("ann@shop.test", AgentRole.AGENT)
    refused = await agent.client.post("/api/v1/auth/presence", json={"online": False})
    assert refused.status == 403
    assert (await refused.json())["error"] == "csrf"
    allowed = await agent.send("POST", "/api/v1/auth/presence", {"online": False})
    assert allowed.status == 200
    assert (await allowed.json())["online"] is False


async def test_bearer_tokens_act_as_their_agent_without_csrf(desk: Desk) -> None:
    admin = await desk.login("boss@shop.test", AgentRole.ADMIN)
    created = await admin.send("POST", "/api/v1/auth/tokens", {"name": "crm"})
    assert created.status == 201
    token = (await created.json())["token"]
    client = TestClient(desk.server)
    await client.start_server()
    headers = {"Authorization": f"Bearer {token}"}
    me = await client.get("/api/v1/auth/me", headers=headers)
    assert (await me.json())["email"] == "boss@shop.test"
    change = await client.post("/api/v1/auth/presence", json={"online": True}, headers=headers)
    assert change.status == 200
    bad = await client.get("/api/v1/auth/me", headers={"Authorization": "Bearer gw_nope"})
    assert bad.status == 401
    await client.close()


async def test_the_first_login_must_change_the_password_before_anything_else(desk: Desk) -> None:
    await create_agent(
        desk.store, email="new@shop.test", name="New", role=AgentRole.AGENT, password=PASSWORD
    )
    client = TestClient(desk.server)
    await client.start_server()
    login = await client.post(
        "/api/v1/auth/login", json={"email": "new@shop.test", "password": PASSWORD}
    )
    body = await login.json()
    assert body["agent"]["must_change_password"] is True
    csrf = {"X-CSRF-Token": body["csrf_token"]}
    blocked = await client.get("/api/v1/tickets")
    assert (blocked.status, (await blocked.json())["error"]) == (403, "password_change_required")
    same = await client.post(
        "/api/v1/auth/password",
        headers=csrf,
        json={"current_password": PASSWORD, "new_password": PASSWORD},
    )
    assert (same.status, (await same.json())["field"]) == (400, "new_password")
    changed = await client.post(
        "/api/v1/auth/password",
        headers=csrf,
        json={"current_password": PASSWORD, "new_password": "another long password"},
    )
    assert changed.status == 200
    assert (await client.get("/api/v1/tickets")).status == 200
    await client.close()


async def test_logout_ends_the_session(desk: Desk) -> None:
    agent = await desk.login("ann@shop.test", AgentRole.AGENT)
    assert (await agent.send("POST", "/api/v1/auth/logout")).status == 200
    assert (await agent.get("/api/v1/auth/me")).status == 401


async def test_a_bad_body_names_the_field(desk: Desk) -> None:
    client = TestClient(desk.server)
    await client.start_server()
    response = await client.post("/api/v1/auth/login", json={"email": "a@b.test"})
    assert response.status == 400
    assert (await response.json())["field"] == "password"
    broken = await client.post("/api/v1/auth/login", data=b"{not json")
    assert (await broken.json())["error"] == "invalid_json"
    await client.close()
