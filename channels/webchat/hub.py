"""Fan-out between gateway processes: Redis pub/sub, one channel per chat session.

The sender (in whatever worker delivers the outbox row) publishes an event on
``webchat:session:<session id>``; every gateway process holds one pattern subscription and hands
the event to the sockets and long polls it has open for that session. Nothing is kept in Redis:
a customer with no socket open gets stored messages (notices and surveys too, which the sender
stores) on ``resume``.

When the subscription drops (Redis restarted, a network blip) events published meanwhile are
lost to this process, so after re-subscribing the hub asks every open listener to ``resync``
(resume from what it last showed): pub/sub is the fast path, the database is the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.backoff import Backoff

log = logging.getLogger(__name__)

SESSION_PREFIX = "webchat:session:"
CUSTOMER_TYPING = "webchat:customer-typing"
"""Where customers' typing signals go, for the agent console to subscribe to."""

Event = dict[str, Any]
Render = Callable[[str, Event], Awaitable[Event | None]]


def session_channel(session_id: str) -> str:
    """The pub/sub channel of one chat session."""
    return SESSION_PREFIX + session_id


async def publish(client: aioredis.Redis, session_id: str, event: Event) -> int:
    """Publish ``event`` to the session's sockets, wherever they are; returns the receivers."""
    receivers: int = await client.publish(session_channel(session_id), json.dumps(event))
    return receivers


async def publish_agent_typing(client: aioredis.Redis, session_id: str, name: str | None) -> None:
    """Show "agent is typing" in the customer's widget (for the agent console to call)."""
    await publish(client, session_id, {"type": "typing", "author": "agent", "name": name})


class Listener(Protocol):
    """An open socket or long poll of one session."""

    def deliver(self, frame: Event) -> None:
        """Take one server frame (must not block: schedule the send)."""

    def resync(self) -> None:
        """Events may have been missed: catch up from the store."""


class Hub:
    """This process's side of the fan-out: one subscription, listeners by session id.

    Args:
        client: The application's Redis client.
        render: Turns a published event into the server frame to send (reads the stored
            message once per event, not once per socket); None drops the event.
    """

    def __init__(self, client: aioredis.Redis, render: Render) -> None:
        self.client = client
        self.render = render
        self.ready = asyncio.Event()
        """Set while the subscription is live (tests wait for it)."""
        self._listeners: dict[str, set[Listener]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._latest: dict[str, asyncio.Task[None]] = {}
        """Each session's last event under way: the next one is shown after it."""
        self._stopping = False

    def add(self, session_id: str, listener: Listener) -> None:
        self._listeners.setdefault(session_id, set()).add(listener)

    def remove(self, session_id: str, listener: Listener) -> None:
        listeners = self._listeners.get(session_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[session_id]

    def listening(self, session_id: str) -> int:
        return len(self._listeners.get(session_id, ()))

    @property
    def sessions(self) -> int:
        return len(self._listeners)

    async def run(self, *, poll: float = 1.0) -> None:
        """Subscribe and dispatch until cancelled, re-subscribing with backoff after errors."""
        backoff = Backoff(base=0.2, cap=10.0)
        first = True
        # The flag, not only cancellation, ends the loops: on Python 3.11 a cancel that lands
        # while redis-py's read times out can be swallowed, and the task would poll forever.
        while not self._stopping:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(SESSION_PREFIX + "*")
                self.ready.set()
                backoff.reset()
                if not first:
                    self._resync_all()
                first = False
                while not self._stopping:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=poll)
                    if message is not None and message.get("type") == "pmessage":
                        self._dispatch(message["channel"], message["data"])
            except (RedisError, OSError) as exc:
                self.ready.clear()
                delay = backoff.next()
                log.warning(
                    "web chat fan-out lost its Redis subscription; retrying",
                    extra={"error": str(exc), "retry_in": round(delay, 2)},
                )
                await asyncio.sleep(delay)
            finally:
                self.ready.clear()
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def stop(self) -> None:
        """Make :meth:`run` return at its next poll (within ``poll`` seconds)."""
        self._stopping = True

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _dispatch(self, channel: bytes | str, data: bytes | str) -> None:
        name = channel.decode() if isinstance(channel, bytes) else channel
        session_id = name.removeprefix(SESSION_PREFIX)
        if session_id not in self._listeners:
            return  # another process holds this customer's socket
        try:
            event = json.loads(data)
        except ValueError:
            log.warning("undecodable web chat event dropped", extra={"channel": name})
            return
        if not isinstance(event, dict):
            return
        previous = self._latest.get(session_id)
        task = asyncio.create_task(self._deliver(session_id, event, previous))
        self._latest[session_id] = task
        self._tasks.add(task)
        task.add_done_callback(partial(self._done, session_id))

    def _done(self, session_id: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._latest.get(session_id) is task:
            del self._latest[session_id]

    async def _deliver(
        self, session_id: str, event: Event, previous: asyncio.Task[None] | None
    ) -> None:
        frame: Event | None = None
        try:
            frame = await self.render(session_id, event)
        except Exception:
            # The message is stored: the widget gets it on its next resume.
            log.exception("web chat event not rendered", extra={"session": session_id})
        # Rendered side by side (a stored message is read back), shown in publishing order:
        # "escalated" then "assigned", never the other way round.
        if previous is not None:
            await asyncio.wait([previous])
        if frame is None:
            return
        for listener in list(self._listeners.get(session_id, ())):
            listener.deliver(frame)

    def _resync_all(self) -> None:
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                listener.resync()
