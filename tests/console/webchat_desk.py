"""An agent's console and a customer's widget, each in its own browser context, on one gateway.

The setting of the browser tests where a web chat customer and an agent talk: the gateway with
the demo shop page, one agent (``li@shop.test``, logged in), the outbox delivered as a worker
would (:func:`courier`), and the two pages watched for dialogs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page

from channels.webchat.state import WEBCHAT
from gateway.app import create_app
from gateway.appkeys import STORE
from gateway.models import AgentRole
from gateway.settings import Settings
from gateway.store import Store
from tests.api.conftest import add_agent
from tests.channels.webchat.conftest import TinyKB
from tests.console.conftest import Dialogs, console_login, courier

MakeServer = Callable[[web.Application], Awaitable[TestServer]]
AGENT = "li@shop.test"


@dataclass(frozen=True, slots=True)
class WebchatDesk:
    store: Store
    base: str
    """The gateway's root URL (the demo shop page, with the widget, is ``{base}/``)."""
    console: Page
    """The agent's console, logged in (English)."""
    widget: Page
    """The customer's page (Chinese), not opened yet."""
    dialogs: Dialogs
    failures: list[str]
    """Outbox rows the courier could not deliver."""


@contextlib.asynccontextmanager
async def webchat_desk(
    aiohttp_server: MakeServer,
    browser: Browser,
    settings: Settings,
    *,
    widget_script: str | None = None,
) -> AsyncIterator[WebchatDesk]:
    """The gateway for ``settings`` and the two pages; ``widget_script`` runs in the widget's
    page before its own scripts (``add_init_script``)."""
    server = await aiohttp_server(create_app(settings, kb=TinyKB()))
    app = server.app
    assert app is not None
    store = app[STORE]
    await asyncio.wait_for(app[WEBCHAT].hub.ready.wait(), 5)
    await add_agent(store, AGENT, AgentRole.AGENT)
    failures: list[str] = []
    delivery = asyncio.create_task(courier(settings, store, failures))
    base = f"http://127.0.0.1:{server.port}"
    try:
        agent_ctx = await browser.new_context(
            locale="en-US", viewport={"width": 1280, "height": 800}
        )
        customer_ctx = await browser.new_context(
            locale="zh-CN", viewport={"width": 900, "height": 700}
        )
        console = await agent_ctx.new_page()
        widget = await customer_ctx.new_page()
        if widget_script is not None:
            await widget.add_init_script(widget_script)
        dialogs = Dialogs()
        dialogs.watch(console)
        dialogs.watch(widget)
        await console_login(console, base, AGENT)
        yield WebchatDesk(store, base, console, widget, dialogs, failures)
    finally:
        delivery.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await delivery
