"""Every /api/v1 route refuses anonymous callers and roles below its own (walks the route table,
so a new route cannot slip through), and the OpenAPI document describes them all."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from gateway.api.endpoints import ROLE_RANK, endpoint_of_handler
from gateway.models import AgentRole
from tests.api.conftest import Desk

OPEN = ("/api/v1/webchat/",)
PUBLIC = {("POST", "/api/v1/auth/login")}


def api_routes(desk: Desk) -> list[tuple[str, str, object]]:
    routes: list[tuple[str, str, object]] = []
    for route in desk.app.router.routes():
        info = route.resource.canonical if route.resource is not None else ""
        if not info.startswith("/api/v1/") or info.startswith(OPEN) or route.method == "HEAD":
            continue
        routes.append((route.method, info, route.handler))
    return routes


def concrete(path: str) -> str:
    return re.sub(r"{(\w+)}", lambda m: "G20260101001" if m[1] == "number" else "1", path)


async def test_every_route_refuses_anonymous_callers(desk: Desk) -> None:
    client = TestClient(desk.server)
    await client.start_server()
    routes = api_routes(desk)
    assert len(routes) >= 20
    for method, path, _ in routes:
        if (method, path) in PUBLIC:
            continue
        response = await client.request(method, concrete(path), json={})
        assert response.status == 401, (method, path, response.status)
        assert (await response.json())["error"] == "unauthenticated"
    await client.close()


async def test_every_route_refuses_roles_below_its_own(desk: Desk) -> None:
    agents = {
        AgentRole.AGENT: await desk.login("agent@shop.test", AgentRole.AGENT),
        AgentRole.SUPERVISOR: await desk.login("super@shop.test", AgentRole.SUPERVISOR),
    }
    checked = 0
    for method, path, handler in api_routes(desk):
        endpoint = endpoint_of_handler(handler)
        assert endpoint is not None, f"{method} {path} declares no role"
        if endpoint.role is None:
            continue
        for role, client in agents.items():
            if ROLE_RANK[role] >= ROLE_RANK[endpoint.role]:
                continue
            response = await client.send(method, concrete(path), {})
            assert response.status == 403, (method, path, role, response.status)
            assert (await response.json())["error"] == "forbidden"
            checked += 1
    assert checked >= 5


async def test_the_openapi_document_is_valid_and_lists_every_route(desk: Desk) -> None:
    agent = await desk.login("agent@shop.test", AgentRole.AGENT)
    document = await (await agent.get("/api/v1/openapi.json")).json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert documented == {(m, p) for m, p, _ in api_routes(desk)}
    upload = document["paths"]["/api/v1/tickets/{number}/attachments"]["post"]["requestBody"]
    assert upload["content"]["multipart/form-data"]["schema"]["required"] == ["file"]
