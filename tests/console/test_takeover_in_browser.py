"""Two browser contexts: a customer in the web chat widget, an agent in the console.

The customer asks for a person; the ticket appears in the agent's queue without a reload (the
live queue socket); the agent claims it and replies; the reply reaches the widget through the
outbox and the real delivery job; the bot says nothing more once the agent holds the ticket.
Then a ticket dispatched to the (online) agent raises a toast.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect
from sqlalchemy import select

from channels.webchat.state import WEBCHAT
from gateway.app import create_app
from gateway.appkeys import PIPELINE, STORE
from gateway.models import AgentRole, AuthorType, Channel, TicketStatus
from gateway.store.tables import Agent, Ticket, TicketMessage
from tests.api.conftest import add_agent
from tests.channels.webchat.conftest import TinyKB, chat_settings
from tests.chromium import ARTIFACTS
from tests.console.conftest import (
    Dialogs,
    backend,
    console_login,
    courier,
    needs_chromium,
)
from tests.factories import inbound

MakeServer = Callable[[web.Application], Awaitable[TestServer]]
REPLY = "您好，我是客服小李，马上为您查询。"
pytestmark = needs_chromium


async def test_customer_escalates_agent_claims_and_replies_live(
    aiohttp_server: MakeServer, db_url: str, redis_url: str, browser: Browser
) -> None:
    settings = chat_settings(db_url, redis_url, demo=True)
    server = await aiohttp_server(create_app(settings, kb=TinyKB()))
    app = server.app
    assert app is not None
    store = app[STORE]
    await asyncio.wait_for(app[WEBCHAT].hub.ready.wait(), 5)
    agent_id = await add_agent(store, "li@shop.test", AgentRole.AGENT)
    failures: list[str] = []
    delivery = asyncio.create_task(courier(settings, store, failures))
    base = f"http://127.0.0.1:{server.port}"
    dialogs = Dialogs()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = f"console-{backend(db_url)}"
    try:
        agent_ctx = await browser.new_context(
            locale="zh-CN", viewport={"width": 1280, "height": 800}
        )
        customer_ctx = await browser.new_context(
            locale="zh-CN", viewport={"width": 900, "height": 700}
        )
        console = await agent_ctx.new_page()
        widget = await customer_ctx.new_page()
        dialogs.watch(console)
        dialogs.watch(widget)

        # The agent logs in (the page is in Chinese, from the browser's language) and goes
        # offline for dispatch, so that the escalated ticket waits in the queue to be claimed.
        await console_login(console, base, "li@shop.test")
        await expect(console.locator("#send-reply")).to_have_text("回复客户")
        await console.locator("#online").uncheck()
        async with asyncio.timeout(5):
            while True:
                async with store.read() as session:
                    if not (await session.get_one(Agent, agent_id)).online:
                        break
                await asyncio.sleep(0.05)
        await expect(console.locator("#queue-list .ticket-row")).to_have_count(0)

        # The customer opens the widget and presses 转人工.
        await widget.goto(f"{base}/")
        await widget.click("#gw-chat-button")
        await expect(widget.locator("#gw-chat-status")).to_have_attribute("data-state", "open")
        await widget.click("#gw-chat-human")

        # The ticket shows up in the queue with no reload.
        row = console.locator("#queue-list .ticket-row")
        await expect(row).to_have_count(1, timeout=10_000)
        number = await row.get_attribute("data-number")
        assert number is not None
        await expect(row).to_have_attribute("data-priority", "normal")
        await expect(row.locator(".sla")).to_contain_text("剩余")
        await expect(row.locator(".assignee")).to_have_text("未分配")
        await console.screenshot(path=str(ARTIFACTS / f"{shot}-queue.png"))

        # The agent opens it, claims it and replies.
        await row.click()
        await expect(console.locator("#ticket-number")).to_have_text(number)
        await expect(console.locator("#thread .msg-customer")).to_have_count(1)
        await console.click("#claim")
        await expect(console.locator("#ticket-assignee")).to_have_text("处理人：我")
        await expect(console.locator("#ticket-status")).to_have_text("处理中")
        await console.fill("#composer", REPLY)
        await console.click("#send-reply")
        await expect(console.locator("#thread .msg-agent .msg-text")).to_have_text(REPLY)

        # The customer sees the reply in the widget.
        agent_line = widget.locator("#gw-chat-log .gw-agent .gw-text", has_text=REPLY)
        await expect(agent_line).to_have_count(1, timeout=10_000)

        # The customer asks what the bot would answer; the agent holds the ticket: no bot reply.
        await widget.fill("#gw-chat-input", "退款多久到账？")
        await widget.press("#gw-chat-input", "Enter")
        await expect(console.locator("#thread .msg-customer")).to_have_count(2, timeout=10_000)
        await app[PIPELINE].drain()
        await asyncio.sleep(1.0)
        async with store.read() as session:
            ticket = (await session.scalars(select(Ticket).where(Ticket.number == number))).one()
            authors = (
                await session.scalars(
                    select(TicketMessage.author_type)
                    .where(TicketMessage.ticket_id == ticket.id)
                    .order_by(TicketMessage.id)
                )
            ).all()
        assert ticket.assignee_id == agent_id
        assert ticket.status == TicketStatus.IN_PROGRESS
        assert ticket.first_response_at is not None
        assert AuthorType.BOT.value not in authors[authors.index(AuthorType.AGENT.value) :]
        assert await widget.locator("#gw-chat-log .gw-bot", has_text="退款1至5").count() == 0
        await console.screenshot(path=str(ARTIFACTS / f"{shot}-ticket.png"))
        await widget.screenshot(path=str(ARTIFACTS / f"{shot}-widget.png"))

        # Back online: the next escalated ticket is dispatched to this agent, with a toast.
        delivery.cancel()
        await console.locator("#online").check()
        await expect(console.locator("#online")).to_be_checked()
        await asyncio.sleep(0.3)  # the presence request lands
        other = inbound(channel=Channel.WEBCHAT, external_user_id="visitor-2", text="人工")
        assigned = (await app[PIPELINE].on_message(other)).ticket.number
        await app[PIPELINE].drain()
        toast = console.locator(f'#toasts .toast-assignment[data-number="{assigned}"]')
        await expect(toast).to_contain_text("新工单分配给你", timeout=10_000)

        # The language switch.
        await console.select_option("#lang", "en")
        await expect(console.locator("#send-reply")).to_have_text("Reply")
        await console.screenshot(path=str(ARTIFACTS / f"{shot}-toast-en.png"))
        assert dialogs.seen == []
        if failures:  # notices the job cannot render yet (a core gap): shown, not failed
            warnings.warn(f"undeliverable outbox rows: {failures}", stacklevel=1)
    finally:
        delivery.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await delivery
