"""Building python-telegram-bot's ``Bot``, which the channel holds as a collaborator.

The token is part of every Bot API URL (``https://api.telegram.org/bot<token>/<method>``), so:

- httpx logs each request's URL at INFO and python-telegram-bot its base URL at DEBUG: their
  loggers are raised here (httpx, httpcore to WARNING, telegram to INFO), or the token would
  reach the gateway's log;
- we never call ``Bot.initialize()``: on a rejected token it raises ``InvalidToken`` with the
  token in the message. The HTTP clients work without it (they are open from construction).

A ``Bot`` is bound to the event loop it first runs on: the web app makes one in its start-up
step (it answers commands and button presses), and a worker keeps one for its deliveries
(``TelegramSender.open``).

The bot is python-telegram-bot's ``ExtBot`` (a ``Bot`` that takes a rate limiter), paced to
``rate_per_second`` messages a second across chats and 20 a minute in a group. Those are the
bot's limits, whichever process sends, so the budget is shared by every process through Redis
(``pacing.py``; this process's own ``AIORateLimiter`` while Redis is away, or always with
``rate_shared`` off). The limiter does not retry: a ``RetryAfter`` still reaches the sender,
which waits a short one out and gives a long one back to the queue.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from telegram import Bot
from telegram.error import Forbidden, RetryAfter
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from channels.telegram.pacing import bot_limiter
from gateway.settings import TelegramSettings

API_ROOT = "https://api.telegram.org"

for _name, _level in (
    ("httpx", logging.WARNING),
    ("httpcore", logging.WARNING),
    ("telegram", logging.INFO),
    # With no retries of its own, the limiter logs every RetryAfter it passes on as an error
    # with a traceback; the sender logs the wait it makes instead.
    ("telegram.ext.AIORateLimiter", logging.CRITICAL),
):
    logging.getLogger(_name).setLevel(_level)

# PTB 22.2+ warns that ``RetryAfter.retry_after`` will become a timedelta, from RetryAfter's own
# constructor, on every 429 (a UserWarning: printed). We read the timedelta already
# (:func:`retry_seconds`); the warning says nothing to an operator.
warnings.filterwarnings(
    "ignore",
    message="Deprecated since version v22.2: In a future major version attribute `retry_after`",
    category=PTBDeprecationWarning,
)


@asynccontextmanager
async def open_bot(
    settings: TelegramSettings,
    *,
    redis_url: str | None,
    long_poll: int = 0,
    httpx_kwargs: dict[str, Any] | None = None,
) -> AsyncIterator[Bot]:
    """A ``Bot`` for ``settings``, its HTTP connections (and the limiter's) closed on exit.

    ``redis_url`` is the gateway's Redis, through which every process's bot shares the rate
    (a required keyword, so that no caller paces its process alone by forgetting it; None
    does so on purpose); ``settings.base_url`` is the root of a local Bot API server
    (``http://127.0.0.1:8081``); ``long_poll`` is the ``getUpdates`` timeout the polling
    connection must outlast; ``httpx_kwargs`` go to the ``httpx.AsyncClient`` of every call
    but ``getUpdates`` (the sender's event hook marks the moment a message leaves:
    ``sender.py``).
    """
    if settings.token is None:
        raise ValueError("GATEWAY_TELEGRAM__TOKEN is not set")
    root = (settings.base_url or API_ROOT).rstrip("/")
    requests = (
        HTTPXRequest(
            connection_pool_size=8, connect_timeout=5, read_timeout=20, httpx_kwargs=httpx_kwargs
        ),
        HTTPXRequest(connection_pool_size=1, connect_timeout=5, read_timeout=long_poll + 10),
    )
    limiter = bot_limiter(settings, redis_url=redis_url)
    bot: ExtBot[int] = ExtBot(
        settings.token.get_secret_value(),
        base_url=f"{root}/bot",
        base_file_url=f"{root}/file/bot",
        request=requests[0],
        get_updates_request=requests[1],
        rate_limiter=limiter,
    )
    try:
        yield bot
    finally:
        if limiter is not None:
            await limiter.shutdown()
        await asyncio.gather(*(request.shutdown() for request in requests))


def retry_seconds(exc: RetryAfter) -> float:
    """How long Telegram asked us to wait (a 429's ``parameters.retry_after``)."""
    # PTB 22 keeps the delay as a timedelta; reading ``retry_after`` as a number is deprecated.
    delay = exc._retry_after
    return delay.total_seconds() if isinstance(delay, timedelta) else float(delay)


def forbidden_reason(exc: Forbidden) -> str:
    """Why Telegram forbids the bot to write to a user (a 403), in words for agents and admins.

    Telegram says which only in its description: "Forbidden: bot was blocked by the user", or
    "Forbidden: user is deactivated" for an account its owner deleted. Either way the identity
    is unreachable, but they differ in what follows: a user who blocked the bot can unblock it
    and write again (which marks them reachable), a deleted account never comes back.
    """
    said = exc.message.lower()
    if "deactivated" in said:
        return "the user's Telegram account was deleted"
    if "blocked" in said:
        return "the user blocked the bot"
    return "Telegram forbids the bot to write to the user"
