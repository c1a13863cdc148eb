"""Login, logout, the current agent, the first-login password change, presence, API tokens."""

from __future__ import annotations

import secrets
from datetime import timedelta

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select

from gateway.accounts import hash_password
from gateway.api.access import SESSION_COOKIE, principal, token_hash
from gateway.api.endpoints import ApiTable
from gateway.api.errors import ApiError, parse_body, respond
from gateway.api.schemas import (
    AgentOut,
    LoginIn,
    LoginOut,
    Ok,
    PasswordIn,
    PresenceIn,
    TokenIn,
    TokenOut,
)
from gateway.appkeys import REDIS, STORE
from gateway.models import AgentRole
from gateway.store.tables import Agent, AgentSession, ApiToken
from gateway.store.types import utcnow

api = ApiTable()
_hasher = PasswordHasher()

SESSION_TTL = timedelta(hours=12)
LOGIN_WINDOW_SECONDS = 900
LOGIN_FAILURES_ALLOWED = 10
"""Failed logins per client address and window before further tries get 429."""
_DUMMY_HASH = _hasher.hash("not a password anybody has")


async def _too_many_failures(request: web.Request) -> bool:
    redis = request.app[REDIS]
    try:
        count = await redis.get(f"gw:login-failures:{request.remote}")
    except Exception:  # Redis down: do not lock everybody out; the argon2 cost still applies
        return False
    return count is not None and int(count) >= LOGIN_FAILURES_ALLOWED


async def _count_failure(request: web.Request) -> None:
    key = f"gw:login-failures:{request.remote}"
    try:
        async with request.app[REDIS].pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, LOGIN_WINDOW_SECONDS)
            await pipe.execute()
    except Exception:  # noqa: S110 - counting is best effort; see _too_many_failures
        pass


@api.route(
    "POST",
    "/api/v1/auth/login",
    summary="Log in; sets the session cookie",
    role=None,
    body=LoginIn,
    response=LoginOut,
)
async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginIn)
    if await _too_many_failures(request):
        raise ApiError(429, "too_many_attempts", "too many failed logins; try again later")
    store = request.app[STORE]
    async with store.write() as session:
        agent = await session.scalar(
            select(Agent).where(Agent.email == body.email.strip().lower(), Agent.active.is_(True))
        )
        try:
            # Verify against a dummy hash for unknown emails too: same cost, no user oracle.
            _hasher.verify(agent.password_hash if agent else _DUMMY_HASH, body.password)
            verified = agent is not None
        except (VerificationError, InvalidHashError):
            verified = False
        if agent is None or not verified:
            await _count_failure(request)
            raise ApiError(401, "bad_credentials", "wrong email or password")
        token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(24), utcnow()
        session.add(
            AgentSession(
                token_hash=token_hash(token),
                agent_id=agent.id,
                csrf_token=csrf,
                created_at=now,
                expires_at=now + SESSION_TTL,
            )
        )
        agent.online = True
        out = LoginOut(agent=AgentOut.model_validate(agent), csrf_token=csrf)
    response = respond(out)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Lax",
        secure=request.secure,
        max_age=int(SESSION_TTL.total_seconds()),
        path="/",
    )
    return response


@api.route(
    "POST",
    "/api/v1/auth/logout",
    summary="End this session",
    role=AgentRole.AGENT,
    response=Ok,
    before_password_change=True,
)
async def logout(request: web.Request) -> web.Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        async with request.app[STORE].write() as session:
            await session.execute(
                delete(AgentSession).where(AgentSession.token_hash == token_hash(cookie))
            )
    response = respond(Ok())
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@api.route(
    "GET",
    "/api/v1/auth/me",
    summary="The agent behind this session or token",
    role=AgentRole.AGENT,
    response=AgentOut,
    before_password_change=True,
)
async def me(request: web.Request) -> web.Response:
    who = principal(request)
    async with request.app[STORE].read() as session:
        agent = await session.get_one(Agent, who.agent_id)
        return respond(AgentOut.model_validate(agent))


@api.route(
    "POST",
    "/api/v1/auth/password",
    summary="Change your password (first login too)",
    role=AgentRole.AGENT,
    body=PasswordIn,
    response=Ok,
    before_password_change=True,
)
async def change_password(request: web.Request) -> web.Response:
    body = await parse_body(request, PasswordIn)
    who = principal(request)
    async with request.app[STORE].write() as session:
        agent = await session.get_one(Agent, who.agent_id)
        try:
            _hasher.verify(agent.password_hash, body.current_password)
        except (VerificationError, InvalidHashError):
            raise ApiError(
                403, "bad_credentials", "the current password is wrong", field="current_password"
            ) from None
        if body.new_password == body.current_password:
            raise ApiError(400, "invalid", "choose a new password", field="new_password")
        agent.password_hash = hash_password(body.new_password)
        agent.must_change_password = False
    return respond(Ok())


@api.route(
    "POST",
    "/api/v1/auth/presence",
    summary="Go online or offline for dispatch",
    role=AgentRole.AGENT,
    body=PresenceIn,
    response=AgentOut,
)
async def presence(request: web.Request) -> web.Response:
    body = await parse_body(request, PresenceIn)
    who = principal(request)
    async with request.app[STORE].write() as session:
        agent = await session.get_one(Agent, who.agent_id)
        agent.online = body.online
        return respond(AgentOut.model_validate(agent))


@api.route(
    "POST",
    "/api/v1/auth/tokens",
    summary="Create a bearer token for an integration",
    role=AgentRole.ADMIN,
    body=TokenIn,
    response=TokenOut,
    status=201,
)
async def create_token(request: web.Request) -> web.Response:
    body = await parse_body(request, TokenIn)
    who = principal(request)
    token = "gw_" + secrets.token_urlsafe(32)
    async with request.app[STORE].write() as session:
        agent_id = body.agent_id or who.agent_id
        if await session.get(Agent, agent_id) is None:
            raise ApiError(400, "invalid", f"no agent {agent_id}", field="agent_id")
        row = ApiToken(
            token_hash=token_hash(token), agent_id=agent_id, name=body.name, created_at=utcnow()
        )
        session.add(row)
        await session.flush()
        out = TokenOut(id=row.id, name=row.name, agent_id=agent_id, token=token)
    return respond(out, status=201)
