"""Who is calling: console sessions (cookie + CSRF token) and bearer tokens, and what they may do.

Every ``/api/v1`` route but login and the web chat's answers 401 without a session or token and
403 for a role below the route's; a state change made with a session cookie needs the session's
``X-CSRF-Token`` header (a bearer token is not sent by browsers on their own, so it needs none).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy import select

from gateway.api.endpoints import ROLE_RANK, endpoint_of
from gateway.api.errors import ApiError
from gateway.appkeys import STORE
from gateway.models import AgentRole
from gateway.store.tables import Agent, AgentSession, ApiToken
from gateway.store.types import utcnow

SESSION_COOKIE = "gw_session"
CSRF_HEADER = "X-CSRF-Token"
API_PREFIX = "/api/v1/"
OPEN_PREFIXES = ("/api/v1/webchat/",)
"""The customers' side of the API, with its own signed tokens."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Principal:
    """The agent behind a request."""

    agent_id: int
    name: str
    email: str
    role: AgentRole
    team_id: int | None
    must_change_password: bool
    csrf_token: str | None
    """Set for cookie sessions; bearer tokens have none."""

    def at_least(self, role: AgentRole) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


PRINCIPAL = web.RequestKey("principal", Principal)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def principal(request: web.Request) -> Principal:
    """The authenticated agent (the middleware has checked there is one)."""
    found = request.get(PRINCIPAL)
    if not isinstance(found, Principal):
        raise ApiError(401, "unauthenticated", "log in or send a bearer token")
    return found


async def _lookup(request: web.Request, now: datetime) -> Principal | None:
    store = request.app[STORE]
    authorization = request.headers.get("Authorization", "")
    cookie = request.cookies.get(SESSION_COOKIE)
    async with store.read() as session:
        if authorization.startswith("Bearer "):
            found = await session.execute(
                select(Agent, ApiToken)
                .join(ApiToken, ApiToken.agent_id == Agent.id)
                .where(
                    ApiToken.token_hash == token_hash(authorization.removeprefix("Bearer ")),
                    ApiToken.revoked_at.is_(None),
                    Agent.active.is_(True),
                )
            )
            row = found.first()
            if row is None:
                return None
            return _principal(row[0], csrf=None)
        if cookie:
            by_cookie = await session.execute(
                select(Agent, AgentSession)
                .join(AgentSession, AgentSession.agent_id == Agent.id)
                .where(
                    AgentSession.token_hash == token_hash(cookie),
                    AgentSession.expires_at > now,
                    Agent.active.is_(True),
                )
            )
            pair = by_cookie.first()
            if pair is None:
                return None
            return _principal(pair[0], csrf=pair[1].csrf_token)
    return None


def _principal(agent: Agent, *, csrf: str | None) -> Principal:
    return Principal(
        agent_id=agent.id,
        name=agent.name,
        email=agent.email,
        role=AgentRole(agent.role),
        team_id=agent.team_id,
        must_change_password=agent.must_change_password,
        csrf_token=csrf,
    )


@web.middleware
async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if not path.startswith(API_PREFIX) or path.startswith(OPEN_PREFIXES):
        return await handler(request)
    endpoint = endpoint_of(request)
    if endpoint is not None and endpoint.role is None:
        return await handler(request)
    who = await _lookup(request, utcnow())
    if who is None:
        raise ApiError(401, "unauthenticated", "log in or send a bearer token")
    if endpoint is None:
        # Declared nowhere: refuse rather than guess who may call it.
        raise ApiError(403, "forbidden", "this route is not open to any role")
    if request.method not in SAFE_METHODS and who.csrf_token is not None:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), who.csrf_token.encode()):
            raise ApiError(403, "csrf", f"missing or wrong {CSRF_HEADER} header")
    if who.must_change_password and not endpoint.before_password_change:
        raise ApiError(403, "password_change_required", "change the first-login password first")
    if endpoint.role is not None and not who.at_least(endpoint.role):
        raise ApiError(403, "forbidden", f"needs the {endpoint.role} role")
    request[PRINCIPAL] = who
    return await handler(request)
