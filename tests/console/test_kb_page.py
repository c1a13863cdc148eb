"""The console's knowledge-base page (Chromium): an admin edits an entry's answer and the next
customer who asks gets the new answer from the same running app (no restart); a question the bot
could not answer shows in the misses with its count and becomes a new entry that answers it; an
entry is disabled and deleted. Supervisors read the page but cannot change it."""

from __future__ import annotations

from aiohttp import web
from playwright.async_api import Browser, expect
from sqlalchemy import select, update

from gateway.appkeys import PIPELINE, ROUTER
from gateway.knowledge import import_entries
from gateway.models import AgentRole, AuthorType
from gateway.store import Store
from gateway.store.tables import Agent, KBEntry, Ticket, TicketMessage
from knowledge_base.encoder import HashingEncoder
from knowledge_base.service import MatcherKB
from knowledge_base.swappable import SwappableKB
from tests.api.conftest import add_agent
from tests.chromium import ARTIFACTS
from tests.console.conftest import (
    ConsoleApp,
    Dialogs,
    backend,
    console_login,
    needs_chromium,
    watched_page,
)
from tests.factories import inbound
from tests.knowledge_base.conftest import SHOP_KB

NEW_ANSWER = "Open Settings > Security > Reset password; the link lasts 30 minutes."
BIKES = "Do you sell bicycles?"
BIKES_ANSWER = "Yes: city and folding bikes, under Sports in the shop."
PAYLOAD = '<img src=x onerror="alert(1)"> what is the weather on mars'
pytestmark = needs_chromium


class Customers:
    """Customers asking the running app, each in a new conversation."""

    def __init__(self, app: web.Application, store: Store) -> None:
        self.app = app
        self.store = store
        self.asked = 0

    async def ask(self, text: str) -> tuple[Ticket, list[TicketMessage]]:
        """The ticket and the bot's messages after one customer asks ``text`` in English."""
        self.asked += 1
        message = inbound(
            text=text, locale="en", thread_key=f"c{self.asked}", external_user_id=f"u{self.asked}"
        )
        number = (await self.app[PIPELINE].on_message(message)).ticket.number
        await self.app[PIPELINE].drain()
        async with self.store.read() as session:
            ticket = (await session.scalars(select(Ticket).where(Ticket.number == number))).one()
            bot = await session.scalars(
                select(TicketMessage)
                .where(
                    TicketMessage.ticket_id == ticket.id,
                    TicketMessage.author_type == AuthorType.BOT.value,
                )
                .order_by(TicketMessage.id)
            )
            return ticket, list(bot)


def _answers(bot: list[TicketMessage]) -> list[tuple[str, str | None]]:
    return [(m.text, m.channel_meta.get("kb_entry_id")) for m in bot]


async def test_an_edit_in_the_console_answers_the_next_customer_without_a_restart(
    console_app: ConsoleApp, db_url: str, browser: Browser
) -> None:
    app, store, base = console_app.app, console_app.store, console_app.base
    kb = app[ROUTER].kb
    assert isinstance(kb, SwappableKB)
    kb.encoder = HashingEncoder(dim=512)  # fast; the real model is measured by bench/kb_eval.py
    await import_entries(store, SHOP_KB)
    kb.refresh()
    await kb.settled()
    matcher = kb.current
    assert isinstance(matcher, MatcherKB)
    customers = Customers(app, store)
    _, bot = await customers.ask("I forgot my password")
    assert _answers(bot) == [("Use Forgot password.", "password")]
    for _ in range(2):  # not in the knowledge base: people take it, supervisors see it twice
        ticket, bot = await customers.ask(BIKES)
        assert (bot, ticket.escalated_at is not None) == ([], True)
    ticket, bot = await customers.ask(PAYLOAD)  # a customer's markup, shown in the misses
    assert (bot, ticket.escalated_at is not None) == ([], True)

    await add_agent(store, "admin@shop.test", AgentRole.ADMIN, online=False)
    await add_agent(store, "boss@shop.test", AgentRole.SUPERVISOR, online=False)
    dialogs = Dialogs()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = f"console-kb-{backend(db_url)}"
    admin = await watched_page(browser, dialogs, locale="en-US", height=900)
    await console_login(admin, base, "admin@shop.test")
    async with store.write() as session:  # logging in put the admin online: no dispatch here
        await session.execute(update(Agent).values(online=False))
    await admin.click("#nav-kb")
    await expect(admin.locator("body")).to_have_attribute("data-view", "kb")
    await expect(admin.locator("#kb-rows tr")).to_have_count(len(SHOP_KB))

    # Search by a phrasing, open the entry, change its English answer, save.
    await admin.fill("#kb-search", "忘记密码")
    await expect(admin.locator("#kb-rows tr")).to_have_count(1)
    await admin.click('#kb-rows tr[data-id="password"]')
    await expect(admin.locator("#kb-title")).to_have_value("I forgot my password")
    await expect(admin.locator("#kb-answer-zh")).to_have_value("点击忘记密码。")
    await expect(admin.locator("#kb-id")).to_have_js_property("readOnly", True)
    await admin.fill("#kb-answer-en", NEW_ANSWER)
    await admin.click("#kb-save")
    await expect(admin.locator("#toasts .toast").last).to_contain_text("rebuilding")
    async with store.read() as session:
        row = await session.get_one(KBEntry, "password")
        assert row.answers == {"en": NEW_ANSWER, "zh-CN": "点击忘记密码。"}

    # The same app, the same matcher object, rebuilt in the background: the new answer.
    await kb.settled()
    assert kb.current is matcher
    _, bot = await customers.ask("I forgot my password")
    assert _answers(bot) == [(NEW_ANSWER, "password")]

    # The question nobody could answer is listed with its count, and becomes an entry.
    await admin.fill("#kb-search", "")
    miss = admin.locator('#kb-miss-rows tr[data-kind="unanswered"]', has_text=BIKES)
    await expect(miss.locator("td").nth(3)).to_have_text("2")
    await expect(admin.locator("#kb-miss-rows tr", has_text=PAYLOAD)).to_have_count(1)
    assert await admin.locator("#kb-view img").count() == 0
    await miss.locator(".kb-add-from").click()
    await expect(admin.locator("#kb-title")).to_have_value(BIKES)
    await admin.fill("#kb-id", "bikes")
    await admin.fill("#kb-examples", "do you have bikes\nbicycles for sale")
    await admin.fill("#kb-answer-en", BIKES_ANSWER)
    await admin.fill("#kb-answer-zh", "有，城市车和折叠车在运动频道。")
    await admin.fill("#kb-category", "products")
    await admin.click("#kb-save")
    await expect(admin.locator('#kb-rows tr[data-id="bikes"]')).to_contain_text("products")
    await kb.settled()
    _, bot = await customers.ask(BIKES)
    assert _answers(bot) == [(BIKES_ANSWER, "bikes")]
    await admin.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)

    # Disabled: listed as such, and no longer answers.
    await admin.uncheck("#kb-enabled")
    await admin.click("#kb-save")
    await expect(admin.locator('#kb-rows tr[data-id="bikes"]')).to_have_class(
        "kb-row kb-off selected"
    )
    await kb.settled()
    ticket, bot = await customers.ask(BIKES)
    assert (bot, ticket.escalated_at is not None) == ([], True)
    await admin.select_option("#kb-filter", "false")
    await expect(admin.locator("#kb-rows tr")).to_have_count(1)

    # Deleted, after a second click (no browser dialog).
    await admin.click('#kb-rows tr[data-id="bikes"]')
    await admin.click("#kb-delete")
    await expect(admin.locator("#kb-delete")).to_have_attribute("data-armed", "1")
    async with store.read() as session:
        assert await session.get(KBEntry, "bikes") is not None
    await admin.click("#kb-delete")
    await expect(admin.locator("#kb-rows tr")).to_have_count(0)
    await expect(admin.locator("#kb-form")).to_be_hidden()
    async with store.read() as session:
        assert await session.get(KBEntry, "bikes") is None

    # A supervisor reads the same page and cannot change it.
    boss = await watched_page(browser, dialogs, locale="en-US", height=900)
    await console_login(boss, base, "boss@shop.test")
    await boss.click("#nav-kb")
    await boss.click('#kb-rows tr[data-id="password"]')
    await expect(boss.locator("#kb-answer-en")).to_have_value(NEW_ANSWER)
    await expect(boss.locator("#kb-answer-en")).to_be_disabled()
    await expect(boss.locator("#kb-save")).to_be_hidden()
    await expect(boss.locator("#kb-new")).to_be_hidden()
    await expect(boss.locator(".kb-add-from")).to_have_count(0)
    await boss.screenshot(path=str(ARTIFACTS / f"{shot}-supervisor.png"), full_page=True)
    assert dialogs.seen == []
