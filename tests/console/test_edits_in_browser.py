"""A customer's edit reaches the agent who has the ticket open (Chromium): the thread reloads
live with the new words, marked as edited, the words it replaced on hover."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from channels.telegram.conversations import apply_edit
from gateway.appkeys import PIPELINE
from gateway.models import AgentRole, Channel
from gateway.store.types import utcnow
from tests.api.conftest import add_agent
from tests.console.conftest import ConsoleApp, Dialogs, console_login, needs_chromium
from tests.factories import inbound

pytestmark = needs_chromium


async def test_an_edit_reaches_the_open_ticket_live_marked_as_edited(
    console_app: ConsoleApp, browser: Browser
) -> None:
    """Before, an edit changed the stored message and not the ticket's ``updated_at``: the
    console, which reloads an open ticket when that moves, kept showing the words the
    customer had corrected, with nothing to say they had changed."""
    app, store = console_app.app, console_app.store
    await add_agent(store, "li@shop.test", AgentRole.AGENT)
    page = await browser.new_page(locale="en-US", viewport={"width": 1280, "height": 800})
    Dialogs().watch(page)
    await console_login(page, console_app.base, "li@shop.test")
    message = inbound(
        channel=Channel.TELEGRAM,
        external_user_id="888",
        external_id="888:11",
        thread_key="888",
        text="人工 please, order 123 never came",
        channel_meta={"chat_id": 888, "edit_date": 0},
    )
    number = (await app[PIPELINE].on_message(message)).ticket.number
    await app[PIPELINE].drain()
    row = page.locator(f'#queue-list .ticket-row[data-number="{number}"]')
    await row.click()
    customer = page.locator("#thread .msg-customer")
    await expect(customer.locator(".msg-text")).to_have_text("人工 please, order 123 never came")
    await expect(customer.locator(".msg-edited")).to_have_count(0)

    async with store.write() as session:
        applied = await apply_edit(
            session,
            "888:11",
            "人工 please, order 456 never came",
            1795320060,
            utcnow(),
            reopen_window=app[PIPELINE].ingest.reopen_window,
        )
    assert applied is not None
    await expect(customer.locator(".msg-text")).to_have_text(
        "人工 please, order 456 never came", timeout=10_000
    )
    edited = customer.locator(".msg-edited")
    await expect(edited).to_have_text("Edited")
    await expect(edited).to_have_attribute("title", "Before: 人工 please, order 123 never came")
