"""How the web application gains the Telegram channel: ``mount(app, settings)``.

One ``cleanup_ctx`` generator holds the channel's resources: the inbound ``Bot`` and, by mode,

- webhook: the route, and the explicit start-up step that registers it with ``setWebhook``
  (when ``GATEWAY_TELEGRAM__WEBHOOK_URL`` is set; behind a proxy that registers it elsewhere,
  leave it unset). If Telegram cannot be reached, start-up goes on and the registration is
  retried in the background; one Telegram refuses (a bad URL) is logged as an error;
- polling: the :class:`Poller` as a background task (it polls while it holds the polling
  lease, which ``gateway_telegram_polling_lease_held`` shows).

It runs after the core's resources, so ``app[PIPELINE]`` and ``app[STORE]`` are set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

from aiohttp import web
from prometheus_client import Gauge
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError

from channels.telegram.bot import open_bot, retry_seconds
from channels.telegram.inbound import TELEGRAM, TelegramInbound
from channels.telegram.polling import Poller
from channels.telegram.webhook import routes
from gateway.appkeys import METRICS, PIPELINE, ROUTER, STORE
from gateway.backoff import Backoff
from gateway.settings import Settings, TelegramMode

log = logging.getLogger(__name__)


def mount(app: web.Application, settings: Settings) -> None:
    """Add the Telegram channel's route (webhook mode) and its start-up step."""
    if settings.telegram.mode is TelegramMode.WEBHOOK:
        app.add_routes(routes)
    app.cleanup_ctx.append(_channel(settings))


def _channel(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    config = settings.telegram

    async def channel(app: web.Application) -> AsyncIterator[None]:
        polling = config.mode is TelegramMode.POLLING
        async with open_bot(
            config, redis_url=settings.redis_url, long_poll=config.poll_timeout if polling else 0
        ) as bot:
            pipeline = app[PIPELINE]
            inbound = TelegramInbound(
                pipeline=pipeline,
                store=app[STORE],
                router=app[ROUTER],
                metrics=app[METRICS],
                bot=bot,
                settings=config,
                clock=pipeline.ingest.clock,
            )
            app[TELEGRAM] = inbound
            task: asyncio.Task[None] | None = None
            if polling:
                poller = Poller(
                    bot,
                    inbound,
                    app[STORE],
                    timeout=config.poll_timeout,
                    allowed_updates=config.allowed_updates,
                    clock=pipeline.ingest.clock,
                )
                Gauge(
                    "gateway_telegram_polling_lease_held",
                    "1 while this process holds the polling lease and polls Telegram, else 0.",
                    registry=app[METRICS].registry,
                ).set_function(lambda: float(poller.holds_lease))
                task = asyncio.create_task(poller.run(), name="telegram-polling")
            elif config.webhook_url and config.webhook_secret is not None:
                set_webhook = partial(
                    bot.set_webhook,
                    url=config.webhook_url,
                    secret_token=config.webhook_secret.get_secret_value(),
                    allowed_updates=list(config.allowed_updates),
                    max_connections=config.webhook_max_connections,
                )
                wait = await _register(set_webhook)
                if wait is not None:
                    task = asyncio.create_task(
                        _keep_registering(set_webhook, wait), name="telegram-set-webhook"
                    )
            try:
                yield
            finally:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    return channel


SetWebhook = Callable[[], Awaitable[bool]]


async def _register(set_webhook: SetWebhook) -> float | None:
    """One ``setWebhook``. None once done: registered, or refused for good (a bad URL or
    token: logged, for the operator to fix; the gateway's other channels run on). Else the
    seconds to wait before trying again (Telegram unreachable, or its flood control)."""
    try:
        await set_webhook()
    except RetryAfter as exc:
        log.warning("telegram webhook not registered yet: flood control")
        return retry_seconds(exc)
    except TelegramError as exc:
        # PTB's BadRequest is a NetworkError too: a refusal, not a network failure.
        if isinstance(exc, NetworkError) and not isinstance(exc, BadRequest):
            log.warning("telegram webhook not registered yet", extra={"error": type(exc).__name__})
            return 0.0
        log.error(
            "telegram webhook refused: fix the settings and restart",
            extra={"error": f"{type(exc).__name__}: {exc.message}"},
        )
        return None
    log.info("telegram webhook registered")
    return None


async def _keep_registering(set_webhook: SetWebhook, wait: float) -> None:
    """Try ``setWebhook`` again until it is done, backing off (at least as long as asked).

    Registration used to be tried once, inside start-up: Telegram unreachable, or two
    processes starting together (the second answered with a 429), stopped the whole gateway.
    """
    backoff = Backoff(base=1.0, cap=60.0)
    next_wait: float | None = wait
    while next_wait is not None:
        await asyncio.sleep(max(next_wait, backoff.next()))
        next_wait = await _register(set_webhook)
