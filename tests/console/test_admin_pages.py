"""The console's admin page (Chromium): an admin adds a team, a category dispatched to it and a
canned response, edits an agent and deletes a team (one still in use is refused); an agent then
answers a customer with that canned response through "/shortcut".
Supervisors see the page but not the admin-only forms; agents do not see it at all."""

from __future__ import annotations

from playwright.async_api import Browser, expect
from sqlalchemy import select, update

from gateway.appkeys import PIPELINE
from gateway.models import AgentRole, AuthorType
from gateway.store.tables import Agent, CannedResponse, Category, Team, Ticket, TicketMessage
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

TEAM = "售后组"
CATEGORY = "退换货"
SHORTCUT = "refund"
TITLE = "退款时效"
TEXT = "您好，退款将在 3-5 个工作日内原路退回。"
pytestmark = needs_chromium


async def test_admin_sets_up_the_directory_and_an_agent_uses_the_canned_response(
    console_app: ConsoleApp, db_url: str, browser: Browser
) -> None:
    app, store, base = console_app.app, console_app.store, console_app.base
    await add_agent(store, "admin@shop.test", AgentRole.ADMIN, online=False)
    boss_id = await add_agent(store, "boss@shop.test", AgentRole.SUPERVISOR, online=False)
    li = await add_agent(store, "li@shop.test", AgentRole.AGENT)
    dialogs = Dialogs()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = f"console-admin-{backend(db_url)}"

    # The admin opens the admin page from the top bar.
    admin = await watched_page(browser, dialogs, locale="zh-CN", height=860)
    await console_login(admin, base, "admin@shop.test")
    await admin.click("#nav-admin")
    await expect(admin.locator("body")).to_have_attribute("data-view", "admin")
    await expect(admin.locator("#desk-view")).to_be_hidden()
    await expect(admin.locator("#admin-agents tr")).to_have_count(3)
    li_row = admin.locator("#admin-agents tr", has_text="li@shop.test")
    await expect(li_row).to_have_attribute("data-role", "agent")
    await expect(li_row).to_contain_text("客服专员")

    # A team ...
    await admin.fill("#team-name", TEAM)
    await admin.click("#team-form-submit")
    await expect(admin.locator("#admin-teams tr", has_text=TEAM)).to_have_count(1)
    # ... a category whose tickets go to that team ...
    await admin.fill("#category-name", CATEGORY)
    await admin.select_option("#category-team", label=TEAM)
    await admin.click("#category-form-submit")
    category_row = admin.locator("#admin-categories tr", has_text=CATEGORY)
    await expect(category_row).to_contain_text(TEAM)
    # ... a second-level category under it, and a refused duplicate shows the API's reason.
    await admin.fill("#category-name", "质量问题")
    await admin.select_option("#category-parent", label=CATEGORY)
    await admin.click("#category-form-submit")
    await expect(admin.locator("#admin-categories tr", has_text="质量问题")).to_contain_text(
        CATEGORY
    )
    await admin.fill("#team-name", TEAM)
    await admin.click("#team-form-submit")
    await expect(admin.locator("#team-error")).to_contain_text("exists")
    # ... and a canned response (typed with its slash, as agents will type it).
    await admin.fill("#canned-shortcut", SHORTCUT)
    await admin.fill("#canned-title", TITLE)
    await admin.fill("#canned-text", TEXT)
    await admin.click("#canned-form-submit")
    canned_row = admin.locator(f'#admin-canned tr[data-shortcut="{SHORTCUT}"]')
    await expect(canned_row).to_contain_text(TITLE)
    await admin.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    # The page follows the language switch, its tables included.
    await admin.select_option("#lang", "en")
    await expect(admin.locator("#admin-view h2").first).to_have_text("Teams")
    await expect(li_row).to_contain_text("Agent")
    await expect(admin.locator('#page-nav [data-go="desk"]')).to_have_text("Tickets")
    await admin.select_option("#lang", "zh-CN")

    async with store.read() as session:
        team = (await session.scalars(select(Team).where(Team.name == TEAM))).one()
        top = (await session.scalars(select(Category).where(Category.name == CATEGORY))).one()
        sub = (await session.scalars(select(Category).where(Category.name == "质量问题"))).one()
        canned = (await session.scalars(select(CannedResponse))).one()
    assert (top.team_id, top.parent_id) == (team.id, None)
    assert sub.parent_id == top.id
    assert (canned.shortcut, canned.title, canned.text) == (SHORTCUT, TITLE, TEXT)

    # Edit: the admin changes an agent; the form comes filled in with the row's values.
    await li_row.locator("button.row-edit").click()
    await expect(admin.locator("#agent-form")).to_be_visible()
    await expect(admin.locator("#agent-form-who")).to_contain_text("li@shop.test")
    await expect(admin.locator("#agent-role")).to_have_value("agent")
    await expect(admin.locator("#agent-capacity")).to_have_value("10")
    await admin.fill("#agent-capacity", "3")
    await admin.select_option("#agent-team", label=TEAM)
    await admin.click("#agent-form-submit")
    await expect(admin.locator("#agent-form")).to_be_hidden()
    await expect(li_row.locator("td").nth(3)).to_have_text(TEAM)
    await expect(li_row.locator("td").nth(4)).to_have_text("3")
    async with store.read() as session:
        edited = await session.get_one(Agent, li)
    assert (edited.capacity, edited.team_id, edited.role) == (3, team.id, "agent")

    # Delete: a second click confirms; a team still in use stays, and the page says why.
    await admin.fill("#team-name", "临时组")
    await admin.click("#team-form-submit")
    spare = admin.locator("#admin-teams tr", has_text="临时组")
    await spare.locator("button.row-delete").click()
    await expect(spare.locator("button.row-delete")).to_have_text("再次点击确认删除")
    await spare.locator("button.row-delete").click()
    await expect(spare).to_have_count(0)
    used = admin.locator("#admin-teams tr", has_text=TEAM)
    await used.locator("button.row-delete").click()
    await used.locator("button.row-delete").click()
    await expect(admin.locator("#team-error")).to_contain_text(
        "still used by 1 agent and 1 category"
    )
    await expect(used).to_have_count(1)
    async with store.read() as session:
        names = set((await session.scalars(select(Team.name))).all())
    assert names == {TEAM}
    await admin.screenshot(path=str(ARTIFACTS / f"{shot}-edited.png"), full_page=True)

    # A supervisor sees the page and may add canned responses, not teams or categories.
    boss = await watched_page(browser, dialogs, locale="zh-CN", height=860)
    await console_login(boss, base, "boss@shop.test")
    await boss.click("#nav-admin")
    await expect(boss.locator("#admin-teams tr", has_text=TEAM)).to_have_count(1)
    await expect(boss.locator("#canned-form")).to_be_visible()
    await expect(boss.locator("#team-form")).to_be_hidden()
    await expect(boss.locator("#category-form")).to_be_hidden()
    await expect(boss.locator("#admin-view .row-edit, #admin-view .row-delete")).to_have_count(0)

    # A ticket dispatched to the supervisor while on the admin page: its toast opens the desk.
    async with store.write() as session:
        await session.execute(update(Agent).where(Agent.id != boss_id).values(online=False))
    urgent = (await app[PIPELINE].on_message(inbound(text="人工", thread_key="vip"))).ticket
    await app[PIPELINE].drain()
    toast = boss.locator(f'#toasts .toast-assignment[data-number="{urgent.number}"]')
    await toast.click(timeout=10_000)
    await expect(boss.locator("body")).to_have_attribute("data-view", "desk")
    await expect(boss.locator("#ticket-number")).to_have_text(urgent.number)

    # The agent has no admin page; a customer asks for a person and it lands in their queue
    # (logging in put the admin and the supervisor online too: they step out of dispatch).
    agent = await watched_page(browser, dialogs, locale="zh-CN", height=860)
    await console_login(agent, base, "li@shop.test")
    async with store.write() as session:
        await session.execute(update(Agent).where(Agent.id != li).values(online=False))
    await expect(agent.locator("#nav-admin")).to_be_hidden()
    number = (
        await app[PIPELINE].on_message(inbound(text="人工，我要退款", sender_name="Ann"))
    ).ticket.number
    await app[PIPELINE].drain()
    row = agent.locator(f'#queue-list .ticket-row[data-number="{number}"]')
    await row.click(timeout=10_000)
    await expect(agent.locator("#ticket-number")).to_have_text(number)

    # "/ref" + "u" in the reply box offers the admin's canned response; picking it fills the box.
    await agent.fill("#composer", "/ref")
    await agent.press("#composer", "u")
    item = agent.locator(f'#canned-list .canned-item[data-shortcut="{SHORTCUT}"]')
    await expect(item).to_contain_text(TITLE)
    await item.click()
    await expect(agent.locator("#composer")).to_have_value(TEXT)
    await agent.click("#send-reply")
    await expect(agent.locator("#thread .msg-agent .msg-text")).to_have_text(TEXT)
    await agent.screenshot(path=str(ARTIFACTS / f"{shot}-canned-reply.png"))

    async with store.read() as session:
        ticket = (await session.scalars(select(Ticket).where(Ticket.number == number))).one()
        sent = await session.scalars(
            select(TicketMessage.text).where(
                TicketMessage.ticket_id == ticket.id,
                TicketMessage.author_type == AuthorType.AGENT.value,
            )
        )
        assert list(sent) == [TEXT]

    # Back to the desk from the admin page: the queue is there, still live.
    await admin.click('#page-nav [data-go="desk"]')
    await expect(admin.locator("body")).to_have_attribute("data-view", "desk")
    await expect(admin.locator("#admin-view")).to_be_hidden()
    await expect(admin.locator("body")).to_have_attribute("data-ws", "open")
    assert dialogs.seen == []
