"""Customer-supplied text renders inert in the console (Chromium): a name, a message, an email
subject, an attachment's file name, a canned response and a note carrying script payloads show
as text, open no dialog and add no element."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from gateway.appkeys import PIPELINE
from gateway.models import AgentRole, Attachment, Channel
from gateway.store.tables import CannedResponse
from gateway.store.types import utcnow
from tests.api.conftest import add_agent
from tests.chromium import ARTIFACTS
from tests.console.conftest import ConsoleApp, Dialogs, backend, console_login, needs_chromium
from tests.factories import inbound

IMG = '<img src=x onerror="alert(1);window.__xss=1">'
SCRIPT = "<script>alert(2);window.__xss=2</script>"
SVG = "<svg onload=alert(3)>"
NAME = f"Eve {IMG}"
SUBJECT = f"Order {SCRIPT}"
TEXT = f"人工 please {IMG} {SVG} {SCRIPT}"
FILENAME = f"{IMG}.pdf"
# What the page renders does not depend on the database (the takeover test runs on both).
pytestmark = [needs_chromium, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


async def test_script_payloads_render_as_text(
    console_app: ConsoleApp, db_url: str, browser: Browser
) -> None:
    app, store = console_app.app, console_app.store
    await add_agent(store, "boss@shop.test", AgentRole.SUPERVISOR)
    async with store.write() as session:
        session.add(
            CannedResponse(
                shortcut="thanks", title=IMG, text=f"Thanks! {SCRIPT}", created_at=utcnow()
            )
        )
    page = await browser.new_page(locale="en-US", viewport={"width": 1280, "height": 800})
    dialogs = Dialogs()
    dialogs.watch(page)
    await console_login(page, console_app.base, "boss@shop.test")
    await expect(page.locator("#send-reply")).to_have_text("Reply")  # English, from the browser

    # An email from "Eve <img ...>" asking for a person, with a payload subject and file name.
    message = inbound(
        channel=Channel.EMAIL,
        external_user_id="eve@example.com",
        email="eve@example.com",
        thread_key=None,
        sender_name=NAME,
        subject=SUBJECT,
        text=TEXT,
        attachments=(Attachment(filename=FILENAME, content_type="application/pdf", size=2048),),
        channel_meta={"subject": SUBJECT},
    )
    number = (await app[PIPELINE].on_message(message)).ticket.number
    await app[PIPELINE].drain()

    # It arrives live, and is dispatched to this (online) supervisor: a toast names the customer.
    row = page.locator(f'#queue-list .ticket-row[data-number="{number}"]')
    await expect(row.locator(".contact")).to_have_text(NAME, timeout=10_000)
    await expect(row.locator(".subject")).to_have_text(SUBJECT)
    await expect(page.locator("#toasts .toast-assignment")).to_contain_text(NAME)

    await row.click()
    await expect(page.locator("#ticket-subject")).to_have_text(SUBJECT)
    customer = page.locator("#thread .msg-customer")
    await expect(customer.locator(".msg-author")).to_have_text(NAME)
    await expect(customer.locator(".msg-subject")).to_have_text(SUBJECT)
    await expect(customer.locator(".msg-text")).to_have_text(TEXT)
    await expect(customer.locator(".attachment")).to_contain_text(FILENAME)
    await expect(page.locator("#profile-name")).to_have_text(NAME)

    # A canned response whose title and text carry payloads, and an internal note.
    await page.fill("#composer", "/than")
    await page.press("#composer", "k")  # "/thank": fires "input" like typing does
    item = page.locator('#canned-list .canned-item[data-shortcut="thanks"]')
    await expect(item).to_contain_text(IMG)
    await item.click()
    await expect(page.locator("#composer")).to_have_value(f"Thanks! {SCRIPT}")
    await page.fill("#composer", f"note: {IMG}")
    await page.click("#send-note")
    await expect(page.locator("#thread .msg-note .msg-text")).to_have_text(f"note: {IMG}")

    await page.wait_for_timeout(300)  # an onerror/onload handler would have run by now
    assert dialogs.seen == []
    assert await page.evaluate("window.__xss === undefined")
    assert await page.locator("img, svg, iframe").count() == 0
    assert await page.locator("script:not([src])").count() == 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"console-xss-{backend(db_url)}.png"))
