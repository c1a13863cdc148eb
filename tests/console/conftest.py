"""Headless Chromium (Debian's, driven by Playwright) against the console of a real app."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Dialog, Page, expect
from sqlalchemy import select

from gateway.app import create_app
from gateway.appkeys import STORE
from gateway.models import OutboxStatus
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import OutboxRow
from tests.api.conftest import desk as desk  # the agent API's app, for the socket tests
from tests.chromium import CHROMIUM
from tests.chromium import browser as browser  # fails a test on the page's JS errors
from tests.conftest import make_settings
from workers.jobs import deliver_async

MakeServer = Callable[[web.Application], Awaitable[TestServer]]
PASSWORD = "a long enough password"

needs_chromium = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs chromium")


@dataclass(frozen=True)
class ConsoleApp:
    """The app a test's browser talks to, served on a local port."""

    app: web.Application
    store: Store
    base: str
    """The server's address, ``http://127.0.0.1:PORT``."""


StartConsole = Callable[..., Awaitable[ConsoleApp]]


@pytest.fixture
def start_console(aiohttp_server: MakeServer, db_url: str, redis_url: str) -> StartConsole:
    """Starts the app on the test's database and Redis (no outbox relay: nothing is delivered);
    keyword arguments override settings, e.g. ``email={"attachment_dir": ...}``."""

    async def start(**overrides: Any) -> ConsoleApp:
        settings = make_settings(
            database_url=db_url, redis_url=redis_url, outbox_relay=False, **overrides
        )
        server = await aiohttp_server(create_app(settings))
        app = server.app
        assert app is not None
        return ConsoleApp(app, app[STORE], f"http://127.0.0.1:{server.port}")

    return start


@pytest.fixture
async def console_app(start_console: StartConsole) -> ConsoleApp:
    """The app with the test settings as they are."""
    return await start_console()


@dataclass
class Dialogs:
    """Every JavaScript dialog a page opened (an ``alert(1)`` payload that ran would be one)."""

    seen: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        async def dismiss(dialog: Dialog) -> None:
            self.seen.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", dismiss)


async def watched_page(browser: Browser, dialogs: Dialogs, *, locale: str, height: int) -> Page:
    """A page 1280 pixels wide in a browser context of its own (its own cookies, so one agent a
    page), its dialogs recorded in ``dialogs``."""
    context = await browser.new_context(locale=locale, viewport={"width": 1280, "height": height})
    page = await context.new_page()
    dialogs.watch(page)
    return page


async def console_login(page: Page, base: str, email: str) -> None:
    """Log in through the console's form and wait for the live queue's socket."""
    await page.goto(f"{base}/console/")
    await expect(page.locator("body")).to_have_attribute("data-view", "login")
    await page.fill("#login-email", email)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await expect(page.locator("body")).to_have_attribute("data-view", "desk")
    await expect(page.locator("body")).to_have_attribute("data-ws", "open", timeout=10_000)


def backend(db_url: str) -> str:
    return "postgres" if db_url.startswith("postgresql") else "sqlite"


async def courier(settings: Settings, store: Store, failures: list[str]) -> None:
    """Plays the RQ worker like the web chat tests' courier, but one bad row does not stop it:
    its error is recorded in ``failures`` (and the row left alone) so the test can report it."""
    skipped: set[int] = set()
    while True:
        async with store.read() as session:
            ids = (
                await session.scalars(
                    select(OutboxRow.id)
                    .where(OutboxRow.status == OutboxStatus.PENDING.value)
                    .order_by(OutboxRow.id)
                )
            ).all()
        for outbox_id in ids:
            if outbox_id in skipped:
                continue
            try:
                await deliver_async(outbox_id, settings)
            except Exception as exc:  # recorded for the test to show (a core bug, not ours)
                skipped.add(outbox_id)
                failures.append(f"outbox {outbox_id}: {exc!r}")
        await asyncio.sleep(0.05)
