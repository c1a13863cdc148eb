"""An agent answers one of the customer's messages in the console (Chromium): its "Reply" action
shows "Replying to: <its first words>" above the reply box (cancelled with x, or by opening
another ticket), the reply sent names it (``reply_to``), and the thread shows its words quoted
above the reply, after a reload too."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from gateway.appkeys import PIPELINE
from gateway.models import AgentRole, Channel
from gateway.store.tables import TicketMessage
from tests.api.conftest import add_agent
from tests.chromium import ARTIFACTS
from tests.console.conftest import ConsoleApp, Dialogs, StartConsole, console_login, needs_chromium
from tests.factories import inbound

FIRST = "人工：我上周买的搅拌机 <b>不转了</b>，" + "插上电以后只有灯亮，按键没有任何反应。" * 4
SECOND = "另外盖子也有裂缝"
# What the page renders does not depend on the database.
pytestmark = [needs_chromium, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


def cut(words: str) -> str:
    """The quote of ``words``: its first 80 characters, then an ellipsis."""
    return words[:80] + "…"


async def customer_says(console_app: ConsoleApp, text: str, user: str = "user-9") -> str:
    """A Telegram customer writes ``text``; their ticket's number."""
    message = inbound(channel=Channel.TELEGRAM, external_user_id=user, thread_key=user, text=text)
    number = (await console_app.app[PIPELINE].on_message(message)).ticket.number
    await console_app.app[PIPELINE].drain()
    return number


async def open_ticket(page: Page, number: str) -> None:
    await page.locator(f'#queue-list .ticket-row[data-number="{number}"]').click(timeout=10_000)
    await expect(page.locator("#ticket-number")).to_have_text(number)


async def message_id(console_app: ConsoleApp, text: str) -> int:
    async with console_app.store.read() as session:
        found = await session.scalar(select(TicketMessage.id).where(TicketMessage.text == text))
    assert found is not None
    return found


async def test_an_agent_replies_to_the_customers_first_message(
    start_console: StartConsole, browser: Browser
) -> None:
    console_app = await start_console()
    await add_agent(console_app.store, "li@shop.test", AgentRole.AGENT)
    number = await customer_says(console_app, FIRST)
    await customer_says(console_app, SECOND)
    other = await customer_says(console_app, "人工：发票", user="user-10")
    page = await browser.new_page(locale="en-US", viewport={"width": 1280, "height": 900})
    dialogs = Dialogs()
    dialogs.watch(page)
    await console_login(page, console_app.base, "li@shop.test")
    await open_ticket(page, number)

    customer = page.locator("#thread .msg-customer")
    await expect(customer.locator(".msg-reply")).to_have_text(["Reply", "Reply"])
    bar = page.locator("#reply-to")
    await expect(bar).to_be_hidden()
    await customer.nth(0).locator(".msg-reply").click()
    await expect(bar).to_be_visible()
    await expect(bar).to_contain_text("Replying to:")
    await expect(page.locator("#reply-to-text")).to_have_text(cut(FIRST))  # as text, not HTML
    await expect(page.locator("#composer")).to_be_focused()
    await page.click("#reply-to-cancel")
    await expect(bar).to_be_hidden()

    # Chosen, then another ticket opened: the reply there answers nothing.
    await customer.nth(0).locator(".msg-reply").click()
    await open_ticket(page, other)
    await expect(bar).to_be_hidden()
    await open_ticket(page, number)

    await customer.nth(0).locator(".msg-reply").click()
    await page.fill("#composer", "The motor is covered: we will swap it.")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "console-reply-to-pending.png"))
    await page.click("#send-reply")
    reply = page.locator("#thread .msg-agent")
    await expect(reply.locator(".msg-text")).to_have_text("The motor is covered: we will swap it.")
    await expect(reply.locator(".msg-quote")).to_have_text(cut(FIRST))
    await expect(bar).to_be_hidden()
    async with console_app.store.read() as session:
        sent = await session.scalar(
            select(TicketMessage).where(TicketMessage.author_type == "agent")
        )
    assert sent is not None
    assert sent.channel_meta["reply_to_message"] == await message_id(console_app, FIRST)

    # A reply without a choice quotes nothing; the quote comes back from the API on a reload.
    await page.fill("#composer", "Anything else?")
    await page.click("#send-reply")
    await expect(reply.locator(".msg-text")).to_have_count(2)
    await page.reload()
    await expect(page.locator("#ticket-number")).to_have_text(number, timeout=10_000)
    await expect(reply.locator(".msg-quote")).to_have_text([cut(FIRST)])
    await expect(reply.nth(1).locator(".msg-quote")).to_have_count(0)
    await expect(page.locator("#thread .msg-agent .msg-reply")).to_have_count(0)
    await page.screenshot(path=str(ARTIFACTS / "console-reply-to-sent.png"))

    # In Chinese.
    await page.select_option("#lang", "zh-CN")
    await expect(customer.locator(".msg-reply").first).to_have_text("回复")
    await customer.nth(1).locator(".msg-reply").click()
    await expect(bar).to_contain_text("回复：")
    await expect(page.locator("#reply-to-text")).to_have_text(SECOND)
    assert await page.locator("#reply-to-cancel").get_attribute("title") == "取消回复"
    assert dialogs.seen == []
