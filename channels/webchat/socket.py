"""``GET /api/v1/webchat/ws?token=...``: one customer's live connection.

Frames are handled one at a time, in order; a message is acked only after ``on_message``
returned (it is committed by then). Frames the hub delivers (bot answers, agent replies, notices)
are sent from their own tasks, under a per-socket lock so two frames never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from sqlalchemy.exc import SQLAlchemyError

from channels.webchat.conversation import Conversation
from channels.webchat.frames import (
    ErrorCode,
    FeedbackFrame,
    FrameError,
    MessageFrame,
    RatingFrame,
    ResumeFrame,
    TypingFrame,
    error_frame,
    parse_frame,
)
from channels.webchat.hub import CUSTOMER_TYPING
from channels.webchat.security import Refused, check_origin, claims_of
from channels.webchat.state import WEBCHAT, WebchatState
from gateway.appkeys import REDIS
from gateway.models import Channel

log = logging.getLogger(__name__)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def websocket(request: web.Request) -> web.StreamResponse:
    state = request.app[WEBCHAT]
    try:
        check_origin(request, state.settings.origins)
        claims = claims_of(request, state.secret)
    except Refused as refused:
        return refused.response()
    ws = web.WebSocketResponse(
        heartbeat=state.settings.heartbeat_seconds,
        max_msg_size=state.settings.max_frame_bytes,
    )
    await ws.prepare(request)
    connection = Connection(ws, state.conversation(claims), state, request.app[REDIS])
    state.hub.add(claims.session_id, connection)
    state.sockets.add(ws)
    try:
        await connection.serve()
    finally:
        state.sockets.discard(ws)
        state.hub.remove(claims.session_id, connection)
        await connection.close()
    return ws


async def close_sockets(app: web.Application) -> None:
    """On shutdown: close every socket with 1001 (going away) so widgets reconnect elsewhere."""
    state = app.get(WEBCHAT)
    if state is None:
        return
    sockets = list(state.sockets)
    await asyncio.gather(
        *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in sockets),
        return_exceptions=True,
    )


class Connection:
    """One open socket: reads client frames, sends server frames."""

    __slots__ = ("_lock", "_tasks", "conversation", "redis", "resumed_upto", "state", "ws")

    def __init__(
        self,
        ws: web.WebSocketResponse,
        conversation: Conversation,
        state: WebchatState,
        redis: Any,
    ) -> None:
        self.ws = ws
        self.conversation = conversation
        self.state = state
        self.redis = redis
        self.resumed_upto = 0
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        async for msg in self.ws:
            if msg.type is WSMsgType.TEXT:
                await self.handle(msg.data)
            elif msg.type is WSMsgType.BINARY:
                await self.send(error_frame(ErrorCode.BAD_JSON, "frames are JSON text"))
            elif msg.type is WSMsgType.ERROR:
                # aiohttp closes with 1009 itself when a frame exceeds max_msg_size.
                log.info("web chat socket error", extra={"error": str(self.ws.exception())})

    async def handle(self, raw: str) -> None:
        """Answer one client frame."""
        state = self.state
        session_id = self.conversation.claims.session_id
        # Every frame spends from the session's bucket, malformed ones too.
        allowed = state.messages.allow(session_id)
        try:
            frame = parse_frame(raw, max_text_bytes=state.settings.max_text_bytes)
            if not allowed:
                wait = state.messages.retry_after(session_id)
                raise FrameError(
                    ErrorCode.RATE_LIMITED,
                    f"too many messages; try again in {wait:.1f} s",
                    client_id=getattr(frame, "client_id", None),
                )
            if isinstance(frame, MessageFrame):
                await self.send(await self.conversation.send(frame))
            elif isinstance(frame, ResumeFrame):
                await self.resume(frame.after)
            elif isinstance(frame, FeedbackFrame):
                await self.send(await self.conversation.feedback(frame))
            elif isinstance(frame, RatingFrame):
                await self.send(await self.conversation.rate(frame))
            elif isinstance(frame, TypingFrame):
                await self._customer_typing()
        except FrameError as exc:
            if exc.code != ErrorCode.UNAVAILABLE:
                state.services.metrics.rejected.labels(
                    channel=Channel.WEBCHAT.value, reason=exc.code
                ).inc()
            await self.send(exc.frame())
        except (SQLAlchemyError, OSError):
            # The store is down: say so and keep the socket; the widget retries what it sent.
            log.warning("web chat frame not handled: store unavailable", exc_info=True)
            await self.send(error_frame(ErrorCode.UNAVAILABLE, "try again in a moment"))

    async def resume(self, after: int) -> None:
        """Send every shown message after ``after``, then ``{"type":"resumed","after":..}``.

        Recent messages with ids up to ``after`` are sent again too, in case one committed
        after the client saw a higher id (``Conversation.history``); the widget drops ids it
        has shown, and ``resumed`` never moves the cursor back.
        """
        frames = await self.conversation.history(
            after=after, limit=self.state.settings.history_limit
        )
        upto = after
        for frame in frames:
            await self.send(frame)
            upto = max(upto, frame["message_id"])
        self.resumed_upto = max(self.resumed_upto, upto)
        await self.send({"type": "resumed", "after": upto})

    async def send(self, frame: dict[str, Any]) -> None:
        async with self._lock:
            if self.ws.closed:
                return
            with contextlib.suppress(ConnectionError):
                await self.ws.send_str(_dumps(frame))

    def deliver(self, frame: dict[str, Any]) -> None:
        self._spawn(self.send(frame))

    def resync(self) -> None:
        self._spawn(self.resume(self.resumed_upto))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(self._guard(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guard(coro: Any) -> None:
        try:
            await coro
        except Exception:
            log.exception("web chat delivery to a socket failed")

    async def _customer_typing(self) -> None:
        claims = self.conversation.claims
        event = {"session_id": claims.session_id, "contact_id": claims.contact_id}
        # Best effort: a typing hint is not worth an error frame.
        with contextlib.suppress(Exception):
            await self.redis.publish(CUSTOMER_TYPING, _dumps(event))
