"""Declaring API endpoints: the route, who may call it, and its models (for OpenAPI).

Every agent route is declared with :meth:`ApiTable.route`; the access middleware refuses any
``/api/v1`` route that was not, so a new route cannot slip through without a role.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

from gateway.models import AgentRole

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ENDPOINT = "__gateway_endpoint__"

ROLE_RANK = {AgentRole.AGENT: 1, AgentRole.SUPERVISOR: 2, AgentRole.ADMIN: 3}


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    summary: str
    role: AgentRole | None
    """The least role that may call it; ``None`` for a public route (login)."""
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    before_password_change: bool = False
    """Callable by an agent who must still change the first-login password."""
    upload: str | None = None
    """The ``multipart/form-data`` part that carries the request's file, if it takes one."""


class ApiTable:
    """A route table whose routes carry their :class:`Endpoint`."""

    def __init__(self) -> None:
        self.routes = web.RouteTableDef()
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        role: AgentRole | None,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        before_password_change: bool = False,
        upload: str | None = None,
    ) -> Callable[[Handler], Handler]:
        endpoint = Endpoint(
            method,
            path,
            summary,
            role,
            body,
            query,
            response,
            status,
            before_password_change,
            upload,
        )

        def declare(handler: Handler) -> Handler:
            setattr(handler, ENDPOINT, endpoint)
            self.endpoints.append(endpoint)
            self.routes.route(method, path)(handler)
            return handler

        return declare


def endpoint_of_handler(handler: object) -> Endpoint | None:
    """The endpoint a handler was declared as, if it was."""
    endpoint = getattr(handler, ENDPOINT, None)
    return endpoint if isinstance(endpoint, Endpoint) else None


def endpoint_of(request: web.Request) -> Endpoint | None:
    return endpoint_of_handler(request.match_info.handler)
