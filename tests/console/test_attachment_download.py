"""The ticket view links each stored attachment for download (Chromium): the customer's file name
is the link's text, inert; clicking saves the file's bytes under a safe name; a file that was
not kept is listed without a link."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect

from channels.email.files import save_parts
from channels.email.mime import MailPart
from gateway.appkeys import PIPELINE
from gateway.models import AgentRole, Channel
from tests.api.conftest import add_agent
from tests.chromium import ARTIFACTS
from tests.console.conftest import (
    Dialogs,
    StartConsole,
    backend,
    console_login,
    needs_chromium,
)
from tests.factories import inbound

PAYLOAD = '<img src=x onerror="alert(1);window.__xss=1">'
HTML = b"<html><body><script>alert(2)</script></body></html>"
pytestmark = needs_chromium


async def test_an_agent_downloads_a_customers_file_from_the_thread(
    start_console: StartConsole, db_url: str, browser: Browser, tmp_path: Path
) -> None:
    directory = tmp_path / "attachments"
    console_app = await start_console(email={"attachment_dir": str(directory)})
    app = console_app.app
    await add_agent(console_app.store, "li@shop.test", AgentRole.AGENT)
    parts = (
        MailPart(f"{PAYLOAD}发票.html", "text/html", len(HTML), HTML),
        MailPart("too-big.mov", "video/quicktime", 90_000_000, None),
    )
    message = inbound(
        channel=Channel.EMAIL,
        external_user_id="eve@example.com",
        email="eve@example.com",
        thread_key=None,
        text="人工: the invoice is attached",
        attachments=await save_parts(directory, parts),
    )

    page = await browser.new_page(locale="zh-CN", accept_downloads=True)
    dialogs = Dialogs()
    dialogs.watch(page)
    await console_login(page, console_app.base, "li@shop.test")
    number = (await app[PIPELINE].on_message(message)).ticket.number
    await app[PIPELINE].drain()
    await page.locator(f'#queue-list .ticket-row[data-number="{number}"]').click(timeout=10_000)

    files = page.locator("#thread .msg-customer .attachment")
    await expect(files).to_have_count(2)
    link = files.nth(0).locator("a")
    await expect(link).to_have_text(f"{PAYLOAD}发票.html")
    await expect(files.nth(1).locator("a")).to_have_count(0)  # not kept: a name, no link
    await expect(files.nth(1)).to_contain_text("too-big.mov")

    async with page.expect_download() as waiting:
        await link.click()
    download = await waiting.value
    saved = tmp_path / "saved"
    await download.save_as(saved)
    assert saved.read_bytes() == HTML
    # The browser kept the customer's name minus what could not be a file name, and opened
    # nothing: the page is still the console, with no dialog and no injected element.
    assert download.suggested_filename.endswith("发票.html")
    assert "/" not in download.suggested_filename
    await page.wait_for_timeout(300)
    assert dialogs.seen == []
    assert await page.evaluate("window.__xss === undefined")
    assert await page.locator("img, svg, iframe").count() == 0
    assert page.url.startswith(f"{console_app.base}/console/")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"console-attachment-{backend(db_url)}.png"))
