"""The HTTP side of the web chat: sessions, the long-poll fallback, the widget and demo page.

- ``POST /api/v1/webchat/sessions`` ``{name?, email?, phone?, locale?}`` -> ``{token, contact_id}``
- ``POST /api/v1/webchat/messages`` (same body as the socket's frames) -> the ack
- ``GET /api/v1/webchat/messages?after=<id>`` -> ``{"messages": [...], "after": id}``, waiting up
  to 25 s for something new (long poll)
- ``GET /widget.js``, ``GET /widget.css``; ``GET /`` the demo page when ``GATEWAY_DEMO=1``

Errors are ``{"error", "detail", "field"}`` with a 4xx status (503 when the store is down).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from channels.webchat.conversation import Conversation
from channels.webchat.frames import (
    ErrorCode,
    FeedbackFrame,
    FrameError,
    MessageFrame,
    RatingFrame,
    parse_payload,
)
from channels.webchat.security import (
    Refused,
    answer,
    check_origin,
    claims_of,
    preflight_answer,
    refusal,
)
from channels.webchat.sessions import PreChat, open_session
from channels.webchat.state import WEBCHAT, WebchatState
from channels.webchat.tokens import SessionClaims
from gateway.models import Channel

STATIC = Path(__file__).parent / "static"
_CACHE = "public, max-age=300"

_STATUS = {
    ErrorCode.BAD_JSON: 400,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.INVALID: 422,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.UNAVAILABLE: 503,
}

routes = web.RouteTableDef()


def _refusal(exc: FrameError) -> Refused:
    return Refused(_STATUS.get(exc.code, 400), exc.code, exc.detail, exc.field)


async def _json_body(request: web.Request, *, optional: bool) -> dict[str, Any]:
    if optional and not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise Refused(400, ErrorCode.BAD_JSON, "the body is not valid JSON") from None
    if data is None and optional:
        return {}
    if not isinstance(data, dict):
        raise Refused(400, ErrorCode.BAD_JSON, "the body must be a JSON object")
    return data


@routes.options("/api/v1/webchat/sessions")
@routes.options("/api/v1/webchat/messages")
async def preflight(request: web.Request) -> web.Response:
    """CORS preflight (the widget posts JSON from the shop's own origin)."""
    return preflight_answer(request, request.app[WEBCHAT].settings.origins)


@routes.post("/api/v1/webchat/sessions")
async def create_session(request: web.Request) -> web.Response:
    state = request.app[WEBCHAT]
    try:
        check_origin(request, state.settings.origins)
        address = request.remote or "unknown"
        if not state.sessions.allow(address):
            wait = state.sessions.retry_after(address)
            raise Refused(
                429, ErrorCode.RATE_LIMITED, f"too many new chats; try again in {wait:.0f} s"
            )
        prechat = PreChat.parse(await _json_body(request, optional=True))
        try:
            claims, token = await open_session(state.services, prechat, state.secret)
        except (SQLAlchemyError, OSError):
            raise Refused(503, ErrorCode.UNAVAILABLE, "try again in a moment") from None
    except Refused as refused:
        return refusal(request, state.settings.origins, refused)
    return answer(
        request, state.settings.origins, {"token": token, "contact_id": claims.contact_id}, 201
    )


def _session(request: web.Request, state: WebchatState) -> SessionClaims:
    check_origin(request, state.settings.origins)
    return claims_of(request, state.secret)


@routes.post("/api/v1/webchat/messages")
async def post_message(request: web.Request) -> web.Response:
    """The socket's ``message``, ``feedback`` and ``rating`` frames, over plain HTTP."""
    state = request.app[WEBCHAT]
    try:
        claims = _session(request, state)
        conversation = state.conversation(claims)
        data = await _json_body(request, optional=False)
        data.setdefault("type", "message")
        allowed = state.messages.allow(claims.session_id)
        try:
            frame = parse_payload(data, max_text_bytes=state.settings.max_text_bytes)
            if not allowed:
                raise FrameError(ErrorCode.RATE_LIMITED, "too many messages; slow down")
            if isinstance(frame, MessageFrame):
                ack = await conversation.send(frame)
            elif isinstance(frame, FeedbackFrame):
                ack = await conversation.feedback(frame)
            elif isinstance(frame, RatingFrame):
                ack = await conversation.rate(frame)
            else:
                raise FrameError(
                    ErrorCode.UNKNOWN_TYPE, "post message, feedback or rating here", field="type"
                )
        except FrameError as exc:
            if exc.code != ErrorCode.UNAVAILABLE:
                state.services.metrics.rejected.labels(
                    channel=Channel.WEBCHAT.value, reason=exc.code
                ).inc()
            raise _refusal(exc) from None
        except (SQLAlchemyError, OSError):
            raise Refused(503, ErrorCode.UNAVAILABLE, "try again in a moment") from None
    except Refused as refused:
        return refusal(request, state.settings.origins, refused)
    return answer(request, state.settings.origins, ack)


class _Waiter:
    """A long poll, as a hub listener: wakes when anything arrives for the session."""

    __slots__ = ("event", "frames")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.frames: list[dict[str, Any]] = []

    def deliver(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)
        self.event.set()

    def resync(self) -> None:
        self.event.set()


@routes.get("/api/v1/webchat/messages")
async def poll_messages(request: web.Request) -> web.Response:
    """Messages after ``after``; with none yet, waits (up to ``long_poll_seconds``) for one.

    Like ``resume``, the answer also carries recent messages with ids up to ``after``
    (``Conversation.history``); the cursor returned never goes backwards.
    """
    state = request.app[WEBCHAT]
    try:
        claims = _session(request, state)
        after_text = request.query.get("after", "0")
        if not re.fullmatch(r"\d{1,18}", after_text):
            raise Refused(422, ErrorCode.INVALID, "after must be a message id", "after")
        after = int(after_text)
        conversation = state.conversation(claims)
        waiter = _Waiter()
        # Listen before reading, so nothing published in between is missed.
        state.hub.add(claims.session_id, waiter)
        try:
            frames = await _history(conversation, state, after)
            # History also resends recent messages up to ``after`` (a lower id may commit
            # late), most likely shown already: only a greater id answers at once, or the
            # widget would poll again straight away, in a loop. A late one committed before
            # this poll began (its live event missed) comes when the wait ends.
            if not any(f["message_id"] > after for f in frames):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        waiter.event.wait(), timeout=state.settings.long_poll_seconds
                    )
                frames = await _history(conversation, state, after)
                # Notices and surveys are not stored messages: pass on what the hub brought.
                frames += [f for f in waiter.frames if f.get("message_id") is None]
        finally:
            state.hub.remove(claims.session_id, waiter)
    except Refused as refused:
        return refusal(request, state.settings.origins, refused)
    ids = [f["message_id"] for f in frames if isinstance(f.get("message_id"), int)]
    return answer(
        request, state.settings.origins, {"messages": frames, "after": max([after, *ids])}
    )


async def _history(
    conversation: Conversation, state: WebchatState, after: int
) -> list[dict[str, Any]]:
    try:
        return await conversation.history(after=after, limit=state.settings.history_limit)
    except (SQLAlchemyError, OSError):
        raise Refused(503, ErrorCode.UNAVAILABLE, "try again in a moment") from None


@routes.get("/widget.js")
async def widget_js(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        STATIC / "widget.js",
        headers={"Content-Type": "text/javascript; charset=utf-8", "Cache-Control": _CACHE},
    )


@routes.get("/widget.css")
async def widget_css(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        STATIC / "widget.css",
        headers={"Content-Type": "text/css; charset=utf-8", "Cache-Control": _CACHE},
    )


async def demo_page(request: web.Request) -> web.FileResponse:
    """``GET /`` with ``GATEWAY_DEMO=1``: a page hosting the widget, to see it work at once."""
    return web.FileResponse(
        STATIC / "demo.html", headers={"Content-Type": "text/html; charset=utf-8"}
    )
