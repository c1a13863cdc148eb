"""The first login asks for a new password before the desk opens (the operating procedure), and
the page keeps the session across a reload."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select

from gateway.accounts import create_agent
from gateway.models import AgentRole
from gateway.store.tables import Agent
from tests.console.conftest import PASSWORD, ConsoleApp, needs_chromium

NEW_PASSWORD = "a brand new password"
# What the page renders does not depend on the database (the takeover test runs on both).
pytestmark = [needs_chromium, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


async def test_first_login_changes_the_password_then_opens_the_desk(
    console_app: ConsoleApp, browser: Browser
) -> None:
    store = console_app.store
    await create_agent(
        store, email="new@shop.test", name="New", role=AgentRole.AGENT, password=PASSWORD
    )
    page = await browser.new_page(locale="zh-CN")
    await page.goto(f"{console_app.base}/console/")
    await page.fill("#login-email", "new@shop.test")
    await page.fill("#login-password", "wrong password!")
    await page.click("#login-submit")
    await expect(page.locator("#login-error")).to_have_text("邮箱或密码错误")

    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await expect(page.locator("body")).to_have_attribute("data-view", "password")
    await page.fill("#pw-current", PASSWORD)
    await page.fill("#pw-new", NEW_PASSWORD)
    await page.fill("#pw-confirm", NEW_PASSWORD + "x")
    await page.click("#pw-submit")
    await expect(page.locator("#pw-error")).to_have_text("两次输入的新密码不一致")
    await page.fill("#pw-confirm", NEW_PASSWORD)
    await page.click("#pw-submit")
    await expect(page.locator("body")).to_have_attribute("data-view", "desk")
    await expect(page.locator("body")).to_have_attribute("data-ws", "open", timeout=10_000)
    async with store.read() as session:
        agent = await session.scalar(select(Agent).where(Agent.email == "new@shop.test"))
        assert agent is not None
        assert agent.must_change_password is False

    # A reload keeps the session (cookie + the CSRF token kept for this tab).
    await page.reload()
    await expect(page.locator("body")).to_have_attribute("data-view", "desk")
    await expect(page.locator("#me-name")).to_have_text("New")
    await page.click("#logout")
    await expect(page.locator("body")).to_have_attribute("data-view", "login")
