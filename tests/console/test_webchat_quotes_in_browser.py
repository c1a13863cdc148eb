"""Words with a file, and an agent's answer to them, between the widget and the console (Chromium).

The customer types a few words, then picks a photo with the paperclip: both go in one message
(the box is emptied), and the agent sees both in the console's thread. The agent answers that
message ("Reply"): the widget shows its first words quoted above the reply, as text, live and
after a reload. Closing the widget revokes its pictures' object URLs; opening it shows them again.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, FilePayload, Locator, Page, expect
from sqlalchemy import select

from gateway.models import MessageKind
from gateway.store.tables import TicketMessage
from tests.channels.webchat.conftest import chat_settings, escalated_webchat_ticket
from tests.chromium import ARTIFACTS
from tests.console.conftest import needs_chromium
from tests.console.test_reply_attachments import PNG
from tests.console.test_webchat_files_in_browser import (
    attach,
    until_loaded,
)
from tests.console.webchat_desk import MakeServer, webchat_desk

WORDS = "订单 G-1234 的收据 <b>请看</b>：" + "包装破损，里面的杯子碎了两个。" * 8
QUOTED = WORDS[:120] + "…"  # no runs of spaces, nor characters beyond one code point
THUMB = "#gw-chat-log .gw-customer .gw-thumb"
# What the page renders does not depend on the database (the resume's query is tested on both).
pytestmark = [needs_chromium, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


async def quoted_above_the_reply(page: Page, reply: Locator) -> None:
    """``reply`` quotes ``WORDS``, as text, right above its own words."""
    quote = reply.locator(".gw-quote")
    await expect(quote).to_have_text(QUOTED, timeout=10_000)
    await expect(quote.locator("*")).to_have_count(0)  # the customer's <b> stayed text
    after = await quote.evaluate("q => q.nextElementSibling && q.nextElementSibling.className")
    assert after == "gw-text"


# Which object URLs the page revoked, told by the browser's own URL.revokeObjectURL (still
# called): loading a revoked URL to see it fail would log an error the page did not make.
WATCH_REVOKED = """
window.__revoked = [];
const revoke = URL.revokeObjectURL.bind(URL);
URL.revokeObjectURL = u => { window.__revoked.push(String(u)); revoke(u); };
"""


async def revoked(page: Page) -> list[str]:
    urls: list[str] = await page.evaluate("() => window.__revoked.slice()")
    return urls


async def test_words_go_with_a_file_and_the_answer_to_them_is_quoted(
    aiohttp_server: MakeServer, db_url: str, redis_url: str, browser: Browser, tmp_path: object
) -> None:
    settings = chat_settings(
        db_url, redis_url, demo=True, webchat={"attachment_dir": f"{tmp_path}/attachments"}
    )
    async with webchat_desk(aiohttp_server, browser, settings, widget_script=WATCH_REVOKED) as desk:
        store, base, console, widget = desk.store, desk.base, desk.console, desk.widget
        dialogs, failures = desk.dialogs, desk.failures

        # Words typed, then a photo picked: one message carrying both; the box is emptied.
        await widget.goto(f"{base}/")
        await widget.click("#gw-chat-button")
        await expect(widget.locator("#gw-chat-status")).to_have_attribute("data-state", "open")
        await widget.fill("#gw-chat-input", f"  {WORDS}\n")
        await attach(widget, [FilePayload(name="收据.png", mimeType="image/png", buffer=PNG)])
        await expect(widget.locator("#gw-chat-input")).to_have_value("")
        mine = widget.locator("#gw-chat-log .gw-customer")
        await expect(mine).to_have_count(1)
        await expect(mine).to_have_attribute("data-state", "sent", timeout=10_000)
        await expect(mine.locator(".gw-text")).to_have_text(WORDS)
        await expect(mine.locator(".gw-file-link")).to_have_text("收据.png")
        await until_loaded(widget, THUMB)
        async with store.read() as session:
            stored = (
                await session.scalars(
                    select(TicketMessage).where(TicketMessage.kind == MessageKind.INCOMING.value)
                )
            ).all()
        assert [(m.text, [a["filename"] for a in m.attachments]) for m in stored] == [
            (WORDS, ["收据.png"])
        ]

        # The agent sees both in the console and answers that message.
        number = await escalated_webchat_ticket(store)
        await console.locator(f'#queue-list .ticket-row[data-number="{number}"]').click(
            timeout=10_000
        )
        await expect(console.locator("#ticket-number")).to_have_text(number)
        customer = console.locator("#thread .msg-customer")
        await expect(customer).to_have_count(1)
        await expect(customer.locator(".msg-text")).to_have_text(WORDS)
        await expect(customer.locator(".attachment a")).to_have_text(["收据.png"])
        await until_loaded(console, "#thread .msg-customer img.msg-photo")
        await customer.locator(".msg-reply").click()
        await console.fill("#composer", "很抱歉，我们给您补发两个杯子。")
        await console.click("#send-reply")

        # Live: the quote above the agent's words.
        reply = widget.locator("#gw-chat-log .gw-agent")
        await expect(reply.locator(".gw-text")).to_have_text(
            "很抱歉，我们给您补发两个杯子。", timeout=10_000
        )
        await quoted_above_the_reply(widget, reply)

        # Closed, the picture's object URL is revoked; opened again, the picture shows again.
        shown = await widget.locator(THUMB).get_attribute("src")
        assert shown is not None and shown.startswith("blob:")
        assert shown not in await revoked(widget)
        await widget.click("#gw-chat-panel .gw-close")
        await expect(widget.locator("#gw-chat-panel")).to_be_hidden()
        assert shown in await revoked(widget)
        assert await widget.locator(THUMB).get_attribute("src") is None
        await widget.click("#gw-chat-button")
        await until_loaded(widget, THUMB)
        again = await widget.locator(THUMB).get_attribute("src")
        assert again is not None and again.startswith("blob:") and again != shown
        assert again not in await revoked(widget)

        # After a reload (resume): the quote, the words and the file come back.
        await widget.reload()
        await expect(widget.locator("#gw-chat-status")).to_have_attribute("data-state", "open")
        await quoted_above_the_reply(widget, reply)
        await expect(mine.locator(".gw-text")).to_have_text(WORDS)
        await until_loaded(widget, THUMB)
        fetched = await widget.locator(THUMB).get_attribute("src")  # the gateway's bytes now
        await widget.click("#gw-chat-panel .gw-close")
        assert fetched in await revoked(widget)
        await widget.click("#gw-chat-button")
        await until_loaded(widget, THUMB)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await widget.screenshot(path=str(ARTIFACTS / "webchat-quote-widget.png"))
        assert failures == []
        assert dialogs.seen == []
