"""An agent attaches files to a reply in the console (Chromium): the files chosen with the
attach button are listed under the reply box (names inert, one removable), uploaded when the
reply is sent and stored on the reply message, which the thread then shows with its files; a
refused upload sends nothing and keeps the draft; opening another ticket (a web chat one, which
takes files too) empties the list."""

from __future__ import annotations

import asyncio
import hashlib
import struct
import zlib
from pathlib import Path

from playwright.async_api import Browser, FilePayload, Page, expect
from sqlalchemy import select

from gateway.appkeys import PIPELINE
from gateway.models import AgentRole, AuthorType, Channel, MessageKind
from gateway.store import Store
from gateway.store.tables import Ticket, TicketMessage
from tests.api.conftest import add_agent
from tests.chromium import ARTIFACTS
from tests.console.conftest import (
    ConsoleApp,
    Dialogs,
    StartConsole,
    backend,
    console_login,
    needs_chromium,
)
from tests.factories import inbound

IMG = '<img src=x onerror="alert(1);window.__xss=1">'
NOTES = f"{IMG}说明.txt"
NOTES_BYTES = "退货步骤：\n1. 打开订单\n2. 点击退货\n".encode()
REPLY = "您好，截图和说明见附件。"
pytestmark = needs_chromium


def tiny_png() -> bytes:
    """A valid 1x1 PNG (RFC 2083): signature, IHDR, one zlib-compressed row, IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00")  # filter byte, one red pixel
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


PNG = tiny_png()


async def log_in(page: Page, console_app: ConsoleApp) -> None:
    """The agent logs in; the page ran attach.js (else every step below would time out)."""
    await console_login(page, console_app.base, "li@shop.test")
    loaded = await page.evaluate("typeof window.GW_ATTACH === 'object'")
    assert loaded, "attach.js did not run: is it served (gateway/console/routes.py ASSETS)?"


async def open_ticket(console_app: ConsoleApp, page: Page, channel: Channel, user: str) -> str:
    """A customer on ``channel`` asks for a person (dispatched to the online agent); the agent
    opens the ticket. Its number."""
    extra = {"email": user, "thread_key": None} if channel is Channel.EMAIL else {}
    message = inbound(channel=channel, external_user_id=user, text="人工：怎么退货？", **extra)
    app = console_app.app
    number = (await app[PIPELINE].on_message(message)).ticket.number
    await app[PIPELINE].drain()
    await page.locator(f'#queue-list .ticket-row[data-number="{number}"]').click(timeout=10_000)
    await expect(page.locator("#ticket-number")).to_have_text(number)
    return number


async def choose(page: Page, files: list[FilePayload]) -> None:
    """Click the attach button and pick ``files`` in the file chooser it opens."""
    async with page.expect_file_chooser() as chooser:
        await page.click("#attach")
    await (await chooser.value).set_files(files)


async def agent_replies(store: Store, number: str) -> list[TicketMessage]:
    async with store.read() as session:
        ticket = (await session.scalars(select(Ticket).where(Ticket.number == number))).one()
        return list(
            (
                await session.scalars(
                    select(TicketMessage)
                    .where(
                        TicketMessage.ticket_id == ticket.id,
                        TicketMessage.author_type == AuthorType.AGENT.value,
                        TicketMessage.kind == MessageKind.OUTGOING.value,
                    )
                    .order_by(TicketMessage.id)
                )
            ).all()
        )


async def test_an_agent_replies_with_a_picture_and_a_text_file(
    start_console: StartConsole, db_url: str, browser: Browser, tmp_path: Path
) -> None:
    directory = tmp_path / "attachments"
    console_app = await start_console(
        telegram={"attachment_dir": str(directory)}, email={"attachment_dir": str(directory)}
    )
    await add_agent(console_app.store, "li@shop.test", AgentRole.AGENT)
    page = await browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 800})
    dialogs = Dialogs()
    dialogs.watch(page)
    await log_in(page, console_app)
    number = await open_ticket(console_app, page, Channel.TELEGRAM, "user-7")
    await expect(page.locator("#attach")).to_have_text("添加附件")
    await expect(page.locator("#attach")).to_be_enabled()

    # Three files chosen, listed by name and size; the agent drops the third.
    await choose(
        page,
        [
            FilePayload(name="截图.png", mimeType="image/png", buffer=PNG),
            FilePayload(name=NOTES, mimeType="text/plain", buffer=NOTES_BYTES),
            FilePayload(name="drop-me.pdf", mimeType="application/pdf", buffer=b"%PDF-1.4\n"),
        ],
    )
    listed = page.locator("#attach-list .attach-item")
    await expect(listed.locator(".attach-name")).to_have_text(["截图.png", NOTES, "drop-me.pdf"])
    await expect(listed.locator(".attach-size")).to_have_text(["1 KB", "1 KB", "1 KB"])
    await listed.nth(2).locator(".attach-remove").click()
    await expect(listed.locator(".attach-name")).to_have_text(["截图.png", NOTES])

    await page.fill("#composer", REPLY)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = f"console-reply-files-{backend(db_url)}"
    await page.screenshot(path=str(ARTIFACTS / f"{shot}-pending.png"))
    await page.click("#send-reply")
    shown = page.locator("#thread .msg-agent")
    await expect(shown.locator(".msg-text")).to_have_text(REPLY, timeout=10_000)
    await expect(shown.locator(".attachment a")).to_have_text(["截图.png", NOTES])
    await expect(page.locator("#attach-list")).to_be_hidden()
    await expect(page.locator("#composer")).to_have_value("")
    await expect(page.locator("#composer-error")).to_have_text("")
    await page.screenshot(path=str(ARTIFACTS / f"{shot}-sent.png"))

    # The reply message holds both files, each a stored file with the bytes the agent chose.
    (reply,) = await agent_replies(console_app.store, number)
    assert reply.text == REPLY
    assert [(a["filename"], a["content_type"], a["size"]) for a in reply.attachments] == [
        ("截图.png", "image/png", len(PNG)),
        (NOTES, "text/plain", len(NOTES_BYTES)),
    ]
    for attachment, data in zip(reply.attachments, (PNG, NOTES_BYTES), strict=True):
        stored = Path(attachment["ref"])
        assert stored.parent == directory.resolve()
        assert stored.name == hashlib.sha256(data).hexdigest()
        assert await asyncio.to_thread(stored.read_bytes) == data
    link = shown.locator(".attachment a").nth(1)
    href = f"/api/v1/tickets/{number}/messages/{reply.id}/attachments/1"
    await expect(link).to_have_attribute("href", href)

    # A file picked, then the agent opens a web chat ticket: no pending file; it takes files
    # too (tests/console/test_webchat_files_in_browser.py).
    await choose(page, [FilePayload(name="a.txt", mimeType="text/plain", buffer=b"a")])
    await expect(listed).to_have_count(1)
    await open_ticket(console_app, page, Channel.WEBCHAT, "visitor-1")
    await expect(page.locator("#attach")).to_be_visible()
    await expect(page.locator("#attach")).to_be_enabled()
    await expect(page.locator("#attach-list")).to_be_hidden()
    await expect(listed).to_have_count(0)

    await page.wait_for_timeout(300)  # an onerror handler would have run by now
    assert dialogs.seen == []
    assert await page.evaluate("window.__xss === undefined")
    assert await page.locator("img, svg, iframe").count() == 0
    await page.screenshot(path=str(ARTIFACTS / f"{shot}-webchat.png"))


async def test_a_refused_upload_sends_nothing_and_keeps_the_draft(
    start_console: StartConsole, db_url: str, browser: Browser, tmp_path: Path
) -> None:
    directory = tmp_path / "attachments"
    console_app = await start_console(
        email={"attachment_dir": str(directory), "attachment_max_bytes": 1000}
    )
    await add_agent(console_app.store, "li@shop.test", AgentRole.AGENT)
    page = await browser.new_page(locale="en-US", viewport={"width": 1280, "height": 800})
    await log_in(page, console_app)
    number = await open_ticket(console_app, page, Channel.EMAIL, "eve@example.com")

    big = FilePayload(name="big.bin", mimeType="application/octet-stream", buffer=b"x" * 2000)
    await choose(page, [FilePayload(name="ok.txt", mimeType="text/plain", buffer=b"ok"), big])
    await page.fill("#composer", "see attached")
    await page.click("#send-reply")

    # The mail cap refuses the second file: its name and the API's reason are shown, and the
    # reply is not sent; the text and both files are still there.
    error = page.locator("#composer-error")
    await expect(error).to_contain_text("Upload failed: big.bin: ", timeout=10_000)
    await expect(error).to_contain_text("1000 bytes")
    await expect(page.locator("#composer")).to_have_value("see attached")
    names = page.locator("#attach-list .attach-item .attach-name")
    await expect(names).to_have_text(["ok.txt", "big.bin"])
    await expect(page.locator("#send-reply")).to_be_enabled()
    assert await agent_replies(console_app.store, number) == []

    # Without the big file, the retry sends the reply with the file uploaded the first time.
    await page.locator("#attach-list .attach-item").nth(1).locator(".attach-remove").click()
    await page.click("#send-reply")
    shown = page.locator("#thread .msg-agent")
    await expect(shown.locator(".attachment a")).to_have_text(["ok.txt"], timeout=10_000)
    await expect(error).to_have_text("")
    (reply,) = await agent_replies(console_app.store, number)
    assert reply.text == "see attached"
    assert [a["filename"] for a in reply.attachments] == ["ok.txt"]
    assert await asyncio.to_thread(Path(reply.attachments[0]["ref"]).read_bytes) == b"ok"
