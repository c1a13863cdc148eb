"""``MOUNTS[Channel.WEBCHAT]``: the web chat's routes and its fan-out listener."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from functools import partial

from aiohttp import web

from channels.webchat import file_routes
from channels.webchat.conversation import Services, live_frame
from channels.webchat.http import demo_page, routes
from channels.webchat.hub import Hub
from channels.webchat.ratelimit import RateLimiter
from channels.webchat.socket import close_sockets, websocket
from channels.webchat.state import WEBCHAT, WebchatState
from gateway.appkeys import METRICS, PIPELINE, REDIS, ROUTER, STORE
from gateway.settings import Settings


def mount(app: web.Application, settings: Settings) -> None:
    """Add the web chat to ``app`` (called by ``create_app`` when the channel is enabled)."""
    app.add_routes(routes)
    app.add_routes(file_routes.routes)
    app.router.add_get("/api/v1/webchat/ws", websocket)
    if settings.demo:
        app.router.add_get("/", demo_page)
    app.cleanup_ctx.append(_webchat(settings))
    app.on_shutdown.append(close_sockets)


def _webchat(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def webchat(app: web.Application) -> AsyncIterator[None]:
        if settings.secret_key is None:  # the settings validator already insists on it
            raise RuntimeError("GATEWAY_SECRET_KEY is required when the web chat is enabled")
        chat = settings.webchat
        store = app[STORE]
        hub = Hub(app[REDIS], partial(live_frame, store))
        app[WEBCHAT] = WebchatState(
            settings=chat,
            secret=settings.secret_key.get_secret_value(),
            services=Services(store, app[PIPELINE], app[ROUTER], app[METRICS]),
            hub=hub,
            messages=RateLimiter(burst=chat.rate_burst, rate=chat.rate_per_second),
            sessions=RateLimiter(burst=chat.sessions_burst, rate=chat.sessions_per_minute / 60),
            uploads=RateLimiter(burst=chat.upload_burst, rate=chat.uploads_per_minute / 60),
        )
        listener = asyncio.create_task(hub.run(), name="webchat-fanout")
        try:
            yield
        finally:
            hub.stop()
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await hub.close()

    return webchat
