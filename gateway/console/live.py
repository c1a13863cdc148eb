"""The live queue: a WebSocket that pushes the ticket changes an agent may see.

The handler polls the store about once a second for tickets whose ``updated_at`` is newer than
it last looked, so it works behind several gateway processes with no broker between them: every
writer (ingest, routing, dispatch, the desk) already stamps ``updated_at``. Each poll re-reads a
short overlap window, because a transaction stamps ``updated_at`` before it commits; what was
already sent (same ticket, same ``updated_at``) is not sent again.

Frames, server to browser (JSON text):

- ``{"type": "hello", "agent_id": 7}`` once, when the socket opens;
- ``{"type": "tickets", "items": [TicketOut...], "gone": ["G2026..."]}``: tickets that changed
  and are visible to this agent, and tickets it was shown that it may no longer see (another
  agent took them).

Browser to server: ``{"type": "watch", "numbers": [...]}``, the tickets the page shows (from its
first ``GET /api/v1/tickets``), so that they can be reported ``gone`` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta

from aiohttp import WSMsgType, web
from sqlalchemy import case, select

from gateway.api.access import Principal, _lookup, principal
from gateway.api.errors import ApiError
from gateway.api.ticket_routes import ticket_out, visible_to
from gateway.appkeys import STORE
from gateway.store import Store
from gateway.store.tables import Contact, Ticket
from gateway.store.types import utcnow

POLL_SECONDS = 1.0
OVERLAP = timedelta(seconds=5)
"""How far back each poll looks again, for transactions that committed after their stamp."""
BATCH = 500
WATCH_LIMIT = 1000
RECHECK_POLLS = 30
"""Every this many polls the session is checked again: logging out ends the feed too."""
SESSION_ENDED = 4401
"""Close code (private range, RFC 6455 section 7.4.2) when the session ended: log in again."""


class QueueFeed:
    """What changed for one agent since the last poll."""

    def __init__(
        self, store: Store, who: Principal, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.store = store
        self.who = who
        self.clock = clock
        self.since = clock() - OVERLAP
        self.sent: dict[str, datetime] = {}
        self.shown: set[str] = set()

    def watch(self, numbers: list[str]) -> None:
        """Tickets the page shows: report them ``gone`` if they leave this agent's view."""
        room = WATCH_LIMIT - len(self.shown)
        self.shown.update(str(n) for n in numbers[: max(room, 0)])

    async def changes(self) -> dict[str, object] | None:
        """The next ``tickets`` frame, or ``None`` when nothing this agent sees changed."""
        started = self.clock()
        visible = case((visible_to(self.who), 1), else_=0)
        async with self.store.read() as session:
            rows = (
                await session.execute(
                    select(Ticket, Contact.name, visible)
                    .join(Contact, Contact.id == Ticket.contact_id)
                    .where(Ticket.updated_at > self.since)
                    .order_by(Ticket.updated_at, Ticket.id)
                    .limit(BATCH)
                )
            ).all()
        items: list[object] = []
        gone: list[str] = []
        for ticket, name, is_visible in rows:
            if self.sent.get(ticket.number) == ticket.updated_at:
                continue
            self.sent[ticket.number] = ticket.updated_at
            if is_visible:
                items.append(ticket_out(ticket, name).model_dump(mode="json"))
                self.shown.add(ticket.number)
            elif ticket.number in self.shown:
                self.shown.discard(ticket.number)
                gone.append(ticket.number)
        if len(rows) < BATCH:
            self.since = started - OVERLAP
        elif rows:
            # A burst larger than one batch: carry on from the last row seen.
            self.since = rows[-1][0].updated_at - timedelta(microseconds=1)
        self.sent = {n: at for n, at in self.sent.items() if at > self.since}
        if not items and not gone:
            return None
        return {"type": "tickets", "items": items, "gone": gone}


async def _read(ws: web.WebSocketResponse, feed: QueueFeed) -> None:
    async for message in ws:
        if message.type != WSMsgType.TEXT:
            continue
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            frame = json.loads(message.data)
            if frame.get("type") == "watch" and isinstance(frame.get("numbers"), list):
                feed.watch(frame["numbers"])


async def live_queue(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/console/ws``: the agent's live queue (the access middleware vouched)."""
    ws = web.WebSocketResponse(heartbeat=30)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "websocket_required", "connect with a WebSocket upgrade")
    who = principal(request)
    await ws.prepare(request)
    feed = QueueFeed(request.app[STORE], who)
    reader = asyncio.create_task(_read(ws, feed), name="console-ws-read")
    try:
        await ws.send_json({"type": "hello", "agent_id": who.agent_id})
        polls = 0
        while not ws.closed and not reader.done():
            polls += 1
            if polls % RECHECK_POLLS == 0 and await _lookup(request, utcnow()) is None:
                await ws.close(code=SESSION_ENDED, message=b"session ended")
                break
            frame = await feed.changes()
            if frame is not None:
                await ws.send_json(frame)
            await asyncio.sleep(POLL_SECONDS)
    except ConnectionResetError:
        pass  # the browser went away mid-send
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await ws.close()
    return ws
