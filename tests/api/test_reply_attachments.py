"""Agents upload files for a reply and name them in it: what is refused, with the field named,
and what is kept (delivery: tests/channels/telegram/test_agent_files.py and the email sender's
tests)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from sqlalchemy import select

from channels.email.mime import MailPart
from gateway.appkeys import PIPELINE
from gateway.models import AgentRole, Channel
from gateway.store.tables import Ticket, TicketMessage
from tests.api.conftest import EMAIL_FILE_BYTES, AgentClient, Files
from tests.factories import inbound

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(32))


async def upload(
    agent: AgentClient, number: str, data: bytes, *, name: str = "a.png", part: str = "file"
) -> Any:
    form = aiohttp.FormData()
    form.add_field(part, data, filename=name, content_type="image/png")
    return await agent.send("POST", f"/api/v1/tickets/{number}/attachments", data=form)


async def webchat_ticket(files: Files) -> str:
    message = inbound(
        channel=Channel.WEBCHAT, external_user_id="s-1", thread_key="s-1", text="人工 please"
    )
    pipeline = files.server.app[PIPELINE]
    number = (await pipeline.on_message(message)).ticket.number
    await pipeline.drain()
    return number


async def error_of(response: Any) -> tuple[int, str | None]:
    return response.status, (await response.json())["field"]


async def test_an_uploaded_file_is_kept_once_and_a_reply_keeps_what_it_names(
    files: Files,
) -> None:
    number, _ = await files.ticket_with_files((), "ann@example.com")
    boss = await files.login("boss@shop.test", AgentRole.SUPERVISOR)
    first = await upload(boss, number, PNG, name="C:\\Users\\li\\标签.png")
    assert first.status == 201, await first.text()
    uploaded = await first.json()
    assert uploaded["filename"] == "标签.png"  # the last part of a path, never a path
    assert (await (await upload(boss, number, PNG)).json())["ref"] == uploaded["ref"]
    stored = files.directory / uploaded["ref"]
    assert await asyncio.to_thread(stored.read_bytes) == PNG

    reply = await boss.send(
        "POST",
        f"/api/v1/tickets/{number}/replies",
        {"text": "the label", "attachments": [{**uploaded, "size": 1}]},
    )
    assert reply.status == 201, await reply.text()
    message_id = (await reply.json())["message_id"]
    async with files.store.read() as session:
        message = await session.get_one(TicketMessage, message_id)
    # The size is the stored file's, whatever the client said.
    assert message.attachments == [
        {"filename": "标签.png", "content_type": "image/png", "size": len(PNG), "ref": str(stored)}
    ]
    detail = await (await boss.get(f"/api/v1/tickets/{number}")).json()
    [listed] = next(m["attachments"] for m in detail["messages"] if m["id"] == message_id)
    assert listed["stored"] is True
    download = await boss.get(f"/api/v1/tickets/{number}/messages/{message_id}/attachments/0")
    assert await download.read() == PNG


async def test_a_file_larger_than_aiohttps_body_limit_is_streamed_in(files: Files) -> None:
    """aiohttp refuses a body over 1 MB read whole (``client_max_size``); an upload is read part
    by part, to the channel's own limit (Telegram's is 50 MB)."""
    message = inbound(channel=Channel.TELEGRAM, text="人工 please")
    pipeline = files.server.app[PIPELINE]
    number = (await pipeline.on_message(message)).ticket.number
    await pipeline.drain()
    boss = await files.login("boss@shop.test", AgentRole.SUPERVISOR)
    big = bytes(range(256)) * (12 * 1024)  # 3 MB
    response = await upload(boss, number, big, name="scan.pdf")
    assert response.status == 201, await response.text()
    assert (await response.json())["size"] == len(big)


async def test_what_an_upload_refuses(files: Files) -> None:
    number, _ = await files.ticket_with_files((), "ann@example.com")
    boss = await files.login("boss@shop.test", AgentRole.SUPERVISOR)
    assert await error_of(await upload(boss, number, b"x" * (EMAIL_FILE_BYTES + 1))) == (
        413,
        "file",
    )
    assert await error_of(await upload(boss, number, b"")) == (400, "file")
    assert await error_of(await upload(boss, number, PNG, part="photo")) == (400, "file")
    not_multipart = await boss.send("POST", f"/api/v1/tickets/{number}/attachments", {"a": 1})
    assert await error_of(not_multipart) == (400, "file")
    malformed = await boss.send(
        "POST",
        f"/api/v1/tickets/{number}/attachments",
        data=b'--b\r\nContent-Disposition: form-data; name="\x0e\xf0"\r\n\r\nx\r\n--b--\r\n',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert await error_of(malformed) == (400, "file")  # found by the OpenAPI fuzzer: was 500
    assert (await upload(boss, "G20990101001", PNG)).status == 404
    assert not files.directory.exists() or not any(files.directory.iterdir())  # nothing kept


async def test_only_tickets_the_agent_may_see(files: Files) -> None:
    number, _ = await files.ticket_with_files(
        (MailPart("a.txt", "text/plain", 5, b"hello"),), "ann@example.com"
    )
    other = await files.login("wang@shop.test", AgentRole.AGENT)
    async with files.store.write() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        ticket.escalated_at = None  # in nobody's queue
    assert (await upload(other, number, PNG)).status == 404


async def test_what_a_reply_refuses(files: Files) -> None:
    number, _ = await files.ticket_with_files((), "ann@example.com")
    chat = await webchat_ticket(files)
    boss = await files.login("boss@shop.test", AgentRole.SUPERVISOR)
    uploaded = await (await upload(boss, number, PNG)).json()

    async def reply(to: str, body: dict[str, Any]) -> tuple[int, str | None]:
        return await error_of(await boss.send("POST", f"/api/v1/tickets/{to}/replies", body))

    assert await reply(number, {"text": " "}) == (400, "text")
    assert await reply(number, {}) == (400, "text")
    assert await reply(number, {"attachments": []}) == (400, "text")
    assert await reply(number, {"attachments": [{**uploaded, "ref": "0" * 64}]}) == (
        400,
        "attachments.0.ref",
    )
    assert await reply(number, {"attachments": [{**uploaded, "ref": "../../etc/passwd"}]}) == (
        400,
        "attachments.0.ref",
    )
    assert await reply(number, {"attachments": [uploaded] * 11}) == (400, "attachments")
    # A file kept in another channel's store (the web chat's is a directory of its own here).
    assert await reply(chat, {"text": "hi", "attachments": [uploaded]}) == (
        400,
        "attachments.0.ref",
    )
    async with files.store.read() as session:
        agents = await session.scalars(
            select(TicketMessage.id).where(TicketMessage.author_type == "agent")
        )
        assert agents.all() == []  # nothing refused was stored
