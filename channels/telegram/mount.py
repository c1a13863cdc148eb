"""How the web application gains the Telegram channel: ``mount(app, settings)``.

One ``cleanup_ctx`` generator holds the channel's resources: the inbound ``Bot`` and, by mode,

- webhook: the route, and the explicit start-up step that registers it with ``setWebhook``
  (when ``GATEWAY_TELEGRAM__WEBHOOK_URL`` is set; behind a proxy that registers it elsewhere,
  leave it unset);
- polling: the :class:`Poller` as a background task.

It runs after the core's resources, so ``app[PIPELINE]`` and ``app[STORE]`` are set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from channels.telegram.bot import open_bot
from channels.telegram.inbound import TELEGRAM, TelegramInbound
from channels.telegram.polling import Poller
from channels.telegram.webhook import routes
from gateway.appkeys import METRICS, PIPELINE, ROUTER, STORE
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
        async with open_bot(config, long_poll=config.poll_timeout if polling else 0) as bot:
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
                task = asyncio.create_task(poller.run(), name="telegram-polling")
            elif config.webhook_url and config.webhook_secret is not None:
                await bot.set_webhook(
                    url=config.webhook_url,
                    secret_token=config.webhook_secret.get_secret_value(),
                    allowed_updates=list(config.allowed_updates),
                    max_connections=config.webhook_max_connections,
                )
                log.info("telegram webhook registered")
            try:
                yield
            finally:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    return channel
