"""What happens on the customer's side after the agent opened the ticket reaches the thread
live (Chromium): a customer's edit, marked as edited with the words it replaced on hover; a
reply that could not be delivered, marked as such with the reason."""

from __future__ import annotations

from playwright.async_api import Browser, Page, expect
from pydantic import SecretStr
from sqlalchemy import select

from channels.telegram.conversations import set_reachable
from channels.telegram.edits import apply_edit
from gateway.appkeys import PIPELINE, SETTINGS
from gateway.models import AgentRole, Channel
from gateway.store.tables import OutboxRow
from gateway.store.types import utcnow
from tests.api.conftest import add_agent
from tests.console.conftest import ConsoleApp, Dialogs, console_login, needs_chromium
from tests.factories import inbound
from workers.jobs import deliver_async

pytestmark = needs_chromium


async def ticket_open_in_console(console_app: ConsoleApp, browser: Browser, text: str) -> Page:
    """Li's console, with the ticket a Telegram customer opened by asking ``text`` (for a
    person: dispatched to Li) open; the customer's message is ``888:11`` in chat 888."""
    app = console_app.app
    await add_agent(console_app.store, "li@shop.test", AgentRole.AGENT)
    page = await browser.new_page(locale="en-US", viewport={"width": 1280, "height": 800})
    Dialogs().watch(page)
    await console_login(page, console_app.base, "li@shop.test")
    message = inbound(
        channel=Channel.TELEGRAM,
        external_user_id="888",
        external_id="888:11",
        thread_key="888",
        text=text,
        channel_meta={"chat_id": 888, "edit_date": 0},
    )
    number = (await app[PIPELINE].on_message(message)).ticket.number
    await app[PIPELINE].drain()
    await page.locator(f'#queue-list .ticket-row[data-number="{number}"]').click()
    await expect(page.locator("#ticket-number")).to_have_text(number)
    return page


async def test_an_edit_reaches_the_open_ticket_live_marked_as_edited(
    console_app: ConsoleApp, browser: Browser
) -> None:
    """Before, an edit changed the stored message and not the ticket's ``updated_at``: the
    console, which reloads an open ticket when that moves, kept showing the words the
    customer had corrected, with nothing to say they had changed."""
    app, store = console_app.app, console_app.store
    page = await ticket_open_in_console(console_app, browser, "人工 please, order 123 never came")
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


async def test_a_reply_that_cannot_be_delivered_says_so_live(
    console_app: ConsoleApp, browser: Browser
) -> None:
    """A reply to a customer who blocked the bot failed in the outbox, which admins see; the
    agent took it as sent."""
    app, store = console_app.app, console_app.store
    page = await ticket_open_in_console(console_app, browser, "人工 please")
    await page.fill("#composer", "Your parcel leaves today.")
    await page.click("#send-reply")
    reply = page.locator("#thread .msg-agent")
    await expect(reply.locator(".msg-text")).to_have_text("Your parcel leaves today.")
    await expect(reply.locator(".msg-undelivered")).to_have_count(0)  # pending

    # The customer blocks the bot (Telegram's my_chat_member "kicked" does this), then the
    # delivery job takes the reply.
    async with store.write() as session:
        await set_reachable(session, "888", False, now=utcnow())
        row_id = await session.scalar(select(OutboxRow.id).where(OutboxRow.kind == "reply"))
    assert row_id is not None
    # The worker's settings name a bot (on a closed loopback port: the reply is never sent).
    bot = {"token": SecretStr("123:worker"), "base_url": "http://127.0.0.1:9"}
    worker = app[SETTINGS].model_copy(
        update={"telegram": app[SETTINGS].telegram.model_copy(update=bot)}
    )
    assert (await deliver_async(row_id, worker, store=store)).startswith("failed")
    undelivered = reply.locator(".msg-undelivered")
    await expect(undelivered).to_have_text(
        "Not delivered: the contact has no reachable identity on this channel", timeout=10_000
    )
    await expect(page.locator("#profile-channels")).to_have_text("Telegram (unreachable)")
