"""Files both ways between the web chat widget and the console, in two browser contexts.

The customer sends a screenshot with the widget's paperclip: it shows in their own thread at
once, and the agent sees the picture in the console's thread, fetched through the console's
download route. A file over the web chat's cap is refused in the widget with a reason and
nothing is stored. The agent answers with a picture and a text file: the widget shows the
picture and links the text file, both fetched with the session token; after a reload both
directions' files come back with the conversation.
"""

from __future__ import annotations

import asyncio

from playwright.async_api import Browser, FilePayload, Page, expect

from tests.channels.webchat.conftest import chat_settings, escalated_webchat_ticket
from tests.chromium import ARTIFACTS
from tests.console.conftest import backend, needs_chromium
from tests.console.test_reply_attachments import PNG
from tests.console.webchat_desk import MakeServer, webchat_desk

CAP = 4000
pytestmark = needs_chromium


async def attach(page: Page, files: list[FilePayload]) -> None:
    """The customer clicks the paperclip and picks ``files``."""
    async with page.expect_file_chooser() as chooser:
        await page.click("#gw-chat-attach")
    await (await chooser.value).set_files(files)


async def until_loaded(page: Page, selector: str) -> None:
    """Wait until the picture at ``selector`` decoded (a broken one has no natural width)."""
    await page.wait_for_function(
        "s => { const i = document.querySelector(s);"
        " return !!i && i.complete && i.naturalWidth > 0 }",
        arg=selector,
        timeout=10_000,
    )


async def test_a_customer_sends_a_screenshot_and_the_agent_sees_it(
    aiohttp_server: MakeServer, db_url: str, redis_url: str, browser: Browser, tmp_path: object
) -> None:
    directory = f"{tmp_path}/attachments"
    settings = chat_settings(
        db_url,
        redis_url,
        demo=True,
        webchat={"attachment_dir": directory, "attachment_max_bytes": CAP},
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = f"webchat-files-{backend(db_url)}"
    async with webchat_desk(aiohttp_server, browser, settings) as desk:
        store, base, console, widget = desk.store, desk.base, desk.console, desk.widget
        dialogs = desk.dialogs

        # The customer sends a screenshot: shown at once in their thread, then acked (stored).
        await widget.goto(f"{base}/")
        await widget.click("#gw-chat-button")
        await expect(widget.locator("#gw-chat-status")).to_have_attribute("data-state", "open")
        await attach(widget, [FilePayload(name="订单截图.png", mimeType="image/png", buffer=PNG)])
        mine = widget.locator("#gw-chat-log .gw-customer").last
        await expect(mine).to_have_attribute("data-state", "sent", timeout=10_000)
        await expect(mine.locator(".gw-file-link")).to_have_text("订单截图.png")
        await until_loaded(widget, "#gw-chat-log .gw-customer .gw-thumb")

        # A file over the cap: refused with the reason, marked failed, nothing sent.
        big = FilePayload(
            name="big.bin", mimeType="application/octet-stream", buffer=b"x" * CAP * 2
        )
        await attach(widget, [big])
        failed = widget.locator("#gw-chat-log .gw-customer", has_text="big.bin")
        await expect(failed).to_have_attribute("data-state", "failed", timeout=10_000)
        await expect(widget.locator("#gw-chat-log .gw-note", has_text="文件太大")).to_have_count(1)

        # A file alone is for people: the ticket escalates to the online agent, who sees the
        # picture in the thread (loaded through the console's download route).
        number = await escalated_webchat_ticket(store)
        row = console.locator(f'#queue-list .ticket-row[data-number="{number}"]')
        await row.click(timeout=10_000)
        await expect(console.locator("#ticket-number")).to_have_text(number)
        customer = console.locator("#thread .msg-customer")
        await expect(customer.locator(".attachment a")).to_have_text(["订单截图.png"])
        await expect(customer.locator("img.msg-photo")).to_have_count(1)
        await until_loaded(console, "#thread .msg-customer img.msg-photo")
        assert "big.bin" not in (await console.locator("#thread").inner_text())

        # The agent answers with a picture and a text file; the widget shows both.
        notes = "退货步骤.txt"
        async with console.expect_file_chooser() as chooser:
            await console.click("#attach")
        await (await chooser.value).set_files(
            [
                FilePayload(name="标签.png", mimeType="image/png", buffer=PNG),
                FilePayload(name=notes, mimeType="text/plain", buffer="1. 打开订单".encode()),
            ]
        )
        await console.fill("#composer", "请看附件")
        await console.click("#send-reply")
        await expect(console.locator("#thread .msg-agent .attachment a")).to_have_text(
            ["标签.png", notes], timeout=10_000
        )
        agent = widget.locator("#gw-chat-log .gw-agent").last
        await expect(agent.locator(".gw-text")).to_have_text("请看附件", timeout=10_000)
        await expect(agent.locator(".gw-file-link")).to_have_text(["标签.png", notes])
        await until_loaded(widget, "#gw-chat-log .gw-agent .gw-thumb")
        assert await agent.locator(".gw-thumb").count() == 1  # the text file is a link only
        async with widget.expect_download() as downloading:
            await agent.locator(".gw-file-link", has_text=notes).click()
        download = await downloading.value
        assert download.suggested_filename == notes
        saved = await download.path()
        assert await asyncio.to_thread(saved.read_text, encoding="utf-8") == "1. 打开订单"
        # The token never went into a URL the page holds: the files are blob: URLs.
        sources = await widget.locator("#gw-chat-log img").evaluate_all(
            "imgs => imgs.map(i => i.src)"
        )
        assert sources and all(src.startswith("blob:") for src in sources)

        # After a reload both files come back with the conversation (resume).
        await widget.reload()
        await expect(widget.locator("#gw-chat-status")).to_have_attribute("data-state", "open")
        thumbs = widget.locator("#gw-chat-log .gw-thumb")
        await expect(thumbs).to_have_count(2, timeout=10_000)
        await until_loaded(widget, "#gw-chat-log .gw-customer .gw-thumb")
        await until_loaded(widget, "#gw-chat-log .gw-agent .gw-thumb")
        await widget.screenshot(path=str(ARTIFACTS / f"{shot}-widget.png"))
        await console.screenshot(path=str(ARTIFACTS / f"{shot}-console.png"))
        assert dialogs.seen == []
