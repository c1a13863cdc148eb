"""The widget in headless Chromium (Debian's, driven by Playwright) on the real demo page.

A customer asks a question the demo knowledge base answers (and says it helped), asks for a person
and gets the agent's reply, types HTML that stays text, reloads and still sees the conversation,
and rates the service when a survey arrives. The agent's reply is written the way the agent API
(issue 4) writes it, by ``agent_reply``; switch to that API once it is merged.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Dialog, Page, expect
from sqlalchemy import select

from channels.webchat.hub import publish
from channels.webchat.state import WEBCHAT
from channels.webchat.tokens import verify_token
from gateway.app import create_app
from gateway.appkeys import REDIS, STORE
from gateway.models import MessageKind
from gateway.store.tables import TicketMessage
from knowledge_base.encoder import HashingEncoder
from knowledge_base.loaders import load_entries
from knowledge_base.service import MatcherKB
from tests.channels.webchat.conftest import (
    agent_reply,
    chat_settings,
    courier,
    escalated_webchat_ticket,
)
from tests.chromium import ARTIFACTS, CHROMIUM
from tests.chromium import browser as browser  # fails a test on the page's JS errors

ROOT = Path(__file__).parents[3]
XSS = "<img src=x onerror=alert(1)>"

MakeServer = Callable[[web.Application], Awaitable[TestServer]]

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian chromium")


@pytest.fixture
async def demo_kb() -> AsyncIterator[MatcherKB]:
    entries = load_entries(ROOT / "knowledge_base" / "demo" / "demo_kb.yaml")
    kb = await MatcherKB.build(entries, encoder=HashingEncoder())
    yield kb
    kb.close()


async def open_panel(page: Page) -> None:
    await page.click("#gw-chat-button")
    await expect(page.locator("#gw-chat-status")).to_have_attribute("data-state", "open")


async def webchat_ticket(server: TestServer) -> str:
    assert server.app is not None
    return await escalated_webchat_ticket(server.app[STORE])


async def until_feedback(server: TestServer, message_id: int) -> None:
    assert server.app is not None
    store = server.app[STORE]
    async with asyncio.timeout(10):
        while True:
            async with store.read() as session:
                meta = (await session.get_one(TicketMessage, message_id)).channel_meta
            if meta.get("feedback", {}).get("helpful") is True:
                return
            await asyncio.sleep(0.05)


async def stored_rating(server: TestServer) -> tuple[int, str]:
    assert server.app is not None
    store = server.app[STORE]
    async with asyncio.timeout(10):
        while True:
            async with store.read() as session:
                found = (
                    await session.scalars(
                        select(TicketMessage).where(TicketMessage.kind == MessageKind.SYSTEM.value)
                    )
                ).first()
            if found is not None:
                return found.channel_meta["rating"], found.text
            await asyncio.sleep(0.05)


async def test_the_widget_on_the_demo_page(
    aiohttp_server: MakeServer,
    db_url: str,
    redis_url: str,
    demo_kb: MatcherKB,
    browser: Browser,
) -> None:
    settings = chat_settings(db_url, redis_url, demo=True)
    server = await aiohttp_server(create_app(settings, kb=demo_kb))
    app = server.app
    assert app is not None
    await asyncio.wait_for(app[WEBCHAT].hub.ready.wait(), 5)
    delivery = asyncio.create_task(courier(settings, app[STORE]))
    dialogs: list[str] = []
    try:
        page = await browser.new_page(viewport={"width": 900, "height": 700})

        async def on_dialog(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", on_dialog)
        await page.goto(f"http://127.0.0.1:{server.port}/")
        await open_panel(page)
        log = page.locator("#gw-chat-log")

        # A question the demo knowledge base answers: the answer appears, with "did this help?".
        await page.fill("#gw-chat-input", "我的订单到哪了？")
        await page.press("#gw-chat-input", "Enter")
        bot = log.locator(".gw-bot").first
        await expect(bot.locator(".gw-text")).to_contain_text("我的订单", timeout=10_000)
        await expect(bot.locator(".gw-helpful-no")).to_be_visible()
        await expect(log.locator(".gw-customer").first).to_have_attribute("data-state", "sent")
        await bot.locator(".gw-helpful-yes").click()
        await expect(bot.locator(".gw-feedback")).to_have_text("感谢您的反馈")
        bot_id = int(await bot.get_attribute("data-message-id") or 0)
        await until_feedback(server, bot_id)

        # "Talk to a person": the ticket escalates and an agent's reply shows up with a name.
        await page.click("#gw-chat-human")
        number = await webchat_ticket(server)
        await agent_reply(app[STORE], number, "您好，我是客服小李，马上为您查询。", name="小李")
        agent = log.locator(".gw-agent").first
        await expect(agent.locator(".gw-text")).to_have_text(
            "您好，我是客服小李，马上为您查询。", timeout=10_000
        )
        await expect(agent.locator(".gw-name")).to_have_text("小李")

        # HTML typed by the customer, or sent back by an agent, is shown as text and never runs.
        await page.fill("#gw-chat-input", XSS)
        await page.press("#gw-chat-input", "Enter")
        mine = log.locator(".gw-customer", has_text=XSS)
        await expect(mine).to_have_count(1)
        await expect(mine).to_have_attribute("data-state", "sent")  # acked: stored
        await agent_reply(app[STORE], number, f"You wrote: {XSS}<script>alert(2)</script>")
        await expect(log.locator(".gw-agent .gw-text", has_text="You wrote:")).to_have_text(
            f"You wrote: {XSS}<script>alert(2)</script>", timeout=10_000
        )
        assert await log.locator("img, script").count() == 0

        # Reload: the conversation comes back from the server (resume), in order.
        await page.reload()
        await expect(page.locator("#gw-chat-status")).to_have_attribute("data-state", "open")
        await expect(page.locator("#gw-chat-panel")).to_be_visible()
        await expect(log.locator(".gw-agent")).to_have_count(2, timeout=10_000)
        texts = await log.locator(".gw-msg .gw-text").all_text_contents()
        ids = [
            int(i)
            for i in await log.locator(".gw-msg").evaluate_all(
                "rows => rows.map(r => r.getAttribute('data-message-id'))"
            )
        ]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)  # stored order, no repeats
        assert texts[0] == "我的订单到哪了？"
        # The knowledge base's answer and the "ticket received" notice are written by two
        # workers at once: either may come first, both come back.
        assert "我的订单" in (await log.locator(".gw-bot .gw-text").first.text_content() or "")
        assert any(t.startswith("您好，我们已收到您的问题") for t in texts[1:3])
        assert XSS in texts
        assert texts[-1].startswith("You wrote:")
        assert await log.locator("img, script").count() == 0

        # A survey arrives: 1-5 stars and a comment, stored against the ticket.
        token = await page.evaluate(
            "Object.keys(localStorage).filter(k => k.endsWith(':token'))"
            ".map(k => JSON.parse(localStorage.getItem(k)))[0]"
        )
        secret = settings.secret_key.get_secret_value()  # type: ignore[union-attr]
        session_id = verify_token(token, secret).session_id
        survey = {"type": "message", "kind": "survey", "text": "请为本次服务评分", "ticket": number}
        await publish(app[REDIS], session_id, survey)
        rating = log.locator(".gw-rating")
        await rating.get_by_role("radio", name="4 星").click()
        await rating.get_by_role("textbox").fill("回复很快 <b>")
        await rating.get_by_role("button", name="提交评价").click()
        await expect(log.locator(".gw-note", has_text="感谢您的评价")).to_be_visible()
        assert await stored_rating(server) == (4, "回复很快 <b>")

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        backend = "postgres" if db_url.startswith("postgresql") else "sqlite"
        await page.screenshot(path=str(ARTIFACTS / f"webchat-panel-{backend}.png"))
        await asyncio.sleep(0.3)  # any onerror handler would have fired by now
        assert dialogs == []
    finally:
        delivery.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await delivery
