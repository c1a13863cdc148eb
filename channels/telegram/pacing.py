"""Pacing the bot's sends across every process that holds it: :class:`SharedRateLimiter`.

Telegram's flood limits are the bot's, whoever sends: about 30 messages a second across chats
and 20 a minute in one group
(https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this). But every
``gateway worker`` and every ``gateway serve`` holds a bot of its own, and python-telegram-bot's
``AIORateLimiter`` paces one process: N of them sent up to N times the rate, Telegram answered
429, and a survey blast was deferred and retried instead of flowing at the rate allowed.

Here the budget is kept in Redis, where every process sees it. Each limit is a sliding-window
log: a sorted set of the moments it gave out, under a key named by the bot's id (the token's
part before ``:``, which Telegram shows anyone; never the token, a secret), and for a group by
its chat too. One Lua script, which Redis runs alone (so atomic across processes):

- reads Redis's clock (``TIME``), so processes on machines whose clocks disagree still agree;
- forgets the moments that have left the window;
- finds the earliest moment at which one more send keeps the limit, at most ``limit`` sends in
  any window of its length, and never before a moment already given out (so the log only grows
  at its end, and requests are served in the order they asked);
- reserves it, and answers how long to wait for it.

The request sleeps until its moment and goes: one round trip to Redis a send, and no polling.
A send to a group takes two steps: its moment in the group's log, slept until, then one in
the bot's. Reserved together, a group's message held back most of a minute would have held
every later send of the bot behind it (the log only grows at its end).
A moment further off than ``max_wait`` is not reserved: the request raises ``RetryAfter``
with the wait, as Telegram's own 429 would, and its caller takes it as one (the sender hands
a long one back to the queue with that delay, ``sender.py``); nothing waits without bound.
The limiter never retries: Telegram's ``RetryAfter`` reaches the caller as it came
(``AIORateLimiter(max_retries=0)`` before this).

Redis away (a restart, a network cut, a slow answer past a second): the request is paced by
this process alone, as by ``AIORateLimiter`` before, so Redis trouble delays no delivery and
loses none. It is logged once per outage, and Redis is asked again every
``recheck_after`` seconds until it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from telegram.constants import FloodLimit
from telegram.error import RetryAfter
from telegram.ext import AIORateLimiter, BaseRateLimiter

from gateway.settings import TelegramSettings

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]

KEY_PREFIX = "gw:telegram:pace"

MAX_WAIT = 30.0
"""Seconds a request may wait for its moment; one further off raises ``RetryAfter``. Room for
a busy minute of a group (20 a minute) and for many processes' requests queued at once; well
inside RQ's 180 s for a job."""

RECHECK_AFTER = 5.0
"""Seconds between tries of a Redis that did not answer (meanwhile each process paces itself):
a try costs up to a connect timeout, which no send should pay every time."""

_RESERVE = """
-- KEYS[1]: a limit's log. ARGV: this send's member, the longest wait to reserve, the limit,
-- its window (times in microseconds). Answers {reserved (1) or not (0), wait}.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local longest, limit, window = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
-- the latest `limit` moments given out, oldest first: member, score, member, score ...
local latest = redis.call('ZRANGE', KEYS[1], -limit, -1, 'WITHSCORES')
local n = #latest / 2
local at = now
if n > 0 then
    at = math.max(at, tonumber(latest[2 * n]))
    if n >= limit then
        -- the limit-th latest must have left the window: (at - window, at] holds the rest
        at = math.max(at, tonumber(latest[2]) + window)
    end
end
local wait = at - now
if wait > longest then
    return {0, wait}
end
redis.call('ZADD', KEYS[1], at, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil((wait + window) / 1000) + 1)
return {1, wait}
"""

Window = tuple[int, float]
"""A limit: at most so many sends in any so many seconds."""


Callback = Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]]


def bot_limiter(config: TelegramSettings, *, redis_url: str | None) -> BaseRateLimiter[int] | None:
    """The rate limiter for a bot made from ``config``: shared through ``redis_url`` when
    ``config.rate_shared`` (the default) and a URL is given, else this process's own
    ``AIORateLimiter``; none when ``config.rate_per_second`` is 0."""
    rate = config.rate_per_second
    if not rate:
        return None
    if config.token is None or not config.rate_shared or redis_url is None:
        return _alone(_window(rate, 1.0), _window(FloodLimit.MESSAGES_PER_MINUTE_PER_GROUP, 60.0))
    bot_id = config.token.get_secret_value().split(":", 1)[0]
    return SharedRateLimiter(redis_url, bot_id=bot_id, overall_max_rate=rate)


def _window(rate: float, period: float) -> Window | None:
    """``rate`` sends per ``period`` seconds as a whole number of sends per window (30 a
    second is 30 per 1 s, 2.5 a second 3 per 1.2 s, 0.5 a second 1 per 2 s); None, no limit,
    for a rate or period of 0 (as ``AIORateLimiter`` takes them)."""
    if rate <= 0 or period <= 0:
        return None
    limit = max(1, math.ceil(rate))
    return limit, period * limit / rate


def _alone(overall: Window | None, group: Window | None) -> AIORateLimiter:
    """This process's own pacing to the same limits. Given whole sends per window: it cannot
    take a rate under 1 (``aiolimiter`` refuses to acquire more than its ``max_rate``, so 0.5 a
    second failed every send)."""
    return AIORateLimiter(
        overall_max_rate=overall[0] if overall else 0,
        overall_time_period=overall[1] if overall else 0,
        group_max_rate=group[0] if group else 0,
        group_time_period=group[1] if group else 0,
        max_retries=0,
    )


class SharedRateLimiter(BaseRateLimiter[int]):
    """Paces one bot's sends across every process through Redis (see the module doc).

    Args:
        redis_url: the Redis every process of the gateway shares.
        bot_id: the bot's id (the token's part before ``:``), which names the Redis keys.
        overall_max_rate: sends per ``overall_time_period`` across all chats.
        group_max_rate: sends per ``group_time_period`` to one group or channel.
        max_wait: seconds a request may wait for its moment before it raises ``RetryAfter``.
        recheck_after: seconds before a Redis that failed is asked again.
    """

    __slots__ = (
        "_asking",
        "_client",
        "_group",
        "_local",
        "_max_wait",
        "_outage",
        "_overall",
        "_recheck_after",
        "_recheck_at",
        "_redis_url",
        "_script",
        "bot_id",
    )

    def __init__(
        self,
        redis_url: str,
        *,
        bot_id: str,
        overall_max_rate: float = FloodLimit.MESSAGES_PER_SECOND,
        overall_time_period: float = 1.0,
        group_max_rate: float = FloodLimit.MESSAGES_PER_MINUTE_PER_GROUP,
        group_time_period: float = 60.0,
        max_wait: float = MAX_WAIT,
        recheck_after: float = RECHECK_AFTER,
    ) -> None:
        self._redis_url = redis_url
        self.bot_id = bot_id
        self._overall = _window(overall_max_rate, overall_time_period)
        self._group = _window(group_max_rate, group_time_period)
        self._max_wait = max_wait
        self._recheck_after = recheck_after
        # This process's own pacing, for while Redis is away (and the paid broadcasts, which
        # Telegram counts apart and this gateway does not send).
        self._local = _alone(self._overall, self._group)
        self._client: aioredis.Redis | None = None
        self._script: AsyncScript | None = None
        self._outage = False
        self._recheck_at = 0.0
        self._asking = asyncio.Lock()

    async def initialize(self) -> None:
        """Nothing to do: Redis is connected at the first send (the bot is never initialised,
        ``bot.py``)."""

    async def shutdown(self) -> None:
        """Close the connections to Redis."""
        client, self._client, self._script = self._client, None, None
        if client is not None:
            await client.aclose()

    async def process_request(
        self,
        callback: Callback,
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | JSONDict | list[JSONDict]:
        """Wait for this request's moment in the bot's shared budget (and its group's), then
        make it; see :meth:`telegram.ext.BaseRateLimiter.process_request`."""
        chat_id = data.get("chat_id")
        if chat_id is None:
            # As AIORateLimiter: only messages to a chat count (getFile, answerCallbackQuery,
            # setWebhook are not paced).
            return await callback(*args, **kwargs)
        if data.get("allow_paid_broadcast"):
            return await self._local.process_request(
                callback, args, kwargs, endpoint, data, rate_limit_args
            )
        group = _group_of(chat_id)
        steps: list[tuple[str, Window]] = []
        if group is not None and self._group is not None:
            steps.append((f"{KEY_PREFIX}:{self.bot_id}:chat:{group}", self._group))
        if self._overall is not None:
            steps.append((f"{KEY_PREFIX}:{self.bot_id}", self._overall))
        for key, window in steps:
            wait = await self._moment(key, window)
            if wait is None:
                return await self._local.process_request(
                    callback, args, kwargs, endpoint, data, rate_limit_args
                )
            if wait > 0:
                await asyncio.sleep(wait)
        return await callback(*args, **kwargs)

    async def _moment(self, key: str, window: Window) -> float | None:
        """The seconds until this send's moment in the log ``key``; None while Redis is away
        (the send is paced by this process alone)."""
        # One request asks at a time, in the order they came: a process's sends keep their
        # order (``AIORateLimiter`` kept it: deliveries to two chats left in the order asked),
        # and one connection to Redis serves them all.
        async with self._asking:
            if time.monotonic() < self._recheck_at:
                return None
            try:
                wait = await self._reserve(key, window)
            except (RedisError, OSError) as exc:
                self._redis_failed(exc)
                return None
        return wait

    async def _reserve(self, key: str, window: Window) -> float:
        """Reserve the next moment in the log ``key`` of a limit ``window``: the seconds until
        it. One further off than ``max_wait`` is not reserved: ``RetryAfter``."""
        if self._script is None:
            self._client = aioredis.Redis.from_url(
                self._redis_url,
                socket_connect_timeout=1,
                socket_timeout=1,
                # One try: a Redis that does not answer at once is away, and this process
                # paces itself (redis-py's default retries for up to about 10 s).
                retry=Retry(NoBackoff(), 0),
            )
            self._script = self._client.register_script(_RESERVE)
        limit, seconds = window
        reserved, wait_us = await self._script(
            keys=[key],
            args=[uuid.uuid4().hex, round(self._max_wait * 1e6), limit, round(seconds * 1e6)],
        )
        if self._outage:
            self._outage = False
            log.info("telegram pacing shared through Redis again")
        wait: float = wait_us / 1e6
        if not reserved:
            log.info("telegram pacing: no moment soon enough", extra={"seconds": wait})
            raise RetryAfter(timedelta(seconds=math.ceil(wait)))
        return wait

    def _redis_failed(self, exc: BaseException) -> None:
        self._recheck_at = time.monotonic() + self._recheck_after
        if not self._outage:
            self._outage = True
            # The error names the host and port, never the URL's password.
            log.warning(
                "telegram pacing falls back to this process alone: Redis unreachable",
                extra={"error": repr(exc)},
            )


def _group_of(chat_id: object) -> str | None:
    """The group or channel a send goes to, None for a private chat: as ``AIORateLimiter``
    tells them, a negative id or a ``@username`` (only groups and channels have those)."""
    with contextlib.suppress(ValueError, TypeError):
        chat_id = int(chat_id)  # type: ignore[call-overload]
    if isinstance(chat_id, int):
        return str(chat_id) if chat_id < 0 else None
    return str(chat_id)
