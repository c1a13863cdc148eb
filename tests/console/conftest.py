"""Headless Chromium (Debian's, driven by Playwright) against the console of a real app."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from playwright.async_api import Browser, Dialog, Page, async_playwright, expect
from sqlalchemy import select

from gateway.models import OutboxStatus
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import OutboxRow
from tests.api.conftest import desk as desk  # the agent API's app, for the socket tests
from tests.chromium import ARGS, CHROMIUM
from workers.jobs import deliver_async

PASSWORD = "a long enough password"

needs_chromium = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs chromium")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        await browser.close()


@dataclass
class Dialogs:
    """Every JavaScript dialog a page opened (an ``alert(1)`` payload that ran would be one)."""

    seen: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        async def dismiss(dialog: Dialog) -> None:
            self.seen.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", dismiss)


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
