"""A customer's files: uploaded from the widget (``POST /api/v1/webchat/attachments``), then
named by a message, which is stored with them so the agent can see and download them."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from gateway.models import AgentRole, AuthorType
from gateway.store.tables import Ticket, TicketMessage
from tests.api.conftest import AgentClient, Client, add_agent, log_in
from tests.channels.webchat.conftest import Chat, incoming_count, message, receive_until

MakeChat = Callable[..., Awaitable[Chat]]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
CAP = 1000
"""The web chat's file cap in these tests: small, so a test can pass it."""


@pytest.fixture
async def files_chat(make_chat: MakeChat, tmp_path: Path) -> Chat:
    directory = tmp_path / "webchat-files"
    return await make_chat(
        webchat={"attachment_dir": str(directory), "attachment_max_bytes": CAP},
    )


def store_of(chat: Chat) -> Path:
    return Path(chat.settings.webchat.attachment_dir)


def stored_names(chat: Chat) -> list[str]:
    directory = store_of(chat)
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.fixture
async def agents(files_chat: Chat) -> AsyncIterator[Callable[[str], Awaitable[AgentClient]]]:
    clients: list[Client] = []

    async def login(email: str) -> AgentClient:
        agent_id = await add_agent(files_chat.store, email, AgentRole.SUPERVISOR, online=False)
        server = files_chat.client.server
        assert isinstance(server, TestServer)
        return await log_in(server, clients, email, agent_id)

    yield login
    for client in clients:
        await client.close()


async def upload(
    chat: Chat,
    token: str | None,
    data: bytes,
    *,
    name: str = "截图.png",
    media_type: str = "image/png",
    part: str = "file",
) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field(part, data, filename=name, content_type=media_type)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await chat.client.post("/api/v1/webchat/attachments", data=form, headers=headers)


async def post(chat: Chat, token: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
    auth = {"Authorization": f"Bearer {token}"}
    return await chat.client.post("/api/v1/webchat/messages", json=body, headers=auth)


async def error_of(response: aiohttp.ClientResponse) -> tuple[int, str, str | None]:
    body = await response.json()
    return response.status, body["error"], body["field"]


async def test_a_screenshot_reaches_the_agent_as_a_telegram_photo_does(
    files_chat: Chat, agents: Callable[[str], Awaitable[AgentClient]]
) -> None:
    chat = files_chat
    token, _ = await chat.session(locale="zh-CN")
    uploaded = await upload(chat, token, PNG, name="C:\\Users\\wang\\截图.png")
    assert uploaded.status == 201, await uploaded.text()
    reference = await uploaded.json()
    digest = hashlib.sha256(PNG).hexdigest()
    assert reference == {
        "file": digest,
        "name": "截图.png",
        "media_type": "image/png",
        "size": len(PNG),
    }
    stored = store_of(chat) / digest
    assert await asyncio.to_thread(stored.read_bytes) == PNG

    # A file with no words: stored with it, and (only people can read it) it goes to people.
    ws = await chat.connect(token)
    frame = message("", "shot-1", attachments=[reference])
    await ws.send_json(frame)
    ack = await receive_until(ws, lambda f: f["type"] == "ack")
    assert ack["client_id"] == "shot-1"
    await chat.drain()
    async with chat.store.read() as session:
        stored_message = await session.get_one(TicketMessage, ack["message_id"])
        ticket = (await session.scalars(select(Ticket).where(Ticket.number == ack["ticket"]))).one()
    assert stored_message.author_type == AuthorType.CUSTOMER.value
    assert stored_message.text == ""
    assert stored_message.attachments == [
        {
            "filename": "截图.png",
            "content_type": "image/png",
            "size": len(PNG),
            "ref": str(stored.resolve()),
        }
    ]
    assert ticket.escalated_at is not None

    # The same client_id again (a reconnect resends the outbox): the same ack, nothing new.
    await ws.send_json(frame)
    again = await receive_until(ws, lambda f: f["type"] == "ack")
    assert again == ack
    assert await incoming_count(chat.store) == 1
    await ws.close()

    # The agent sees it in the ticket and downloads it through the console's route.
    boss = await agents("boss@shop.test")
    detail = await (await boss.get(f"/api/v1/tickets/{ack['ticket']}")).json()
    [listed] = next(m["attachments"] for m in detail["messages"] if m["id"] == ack["message_id"])
    assert (listed["filename"], listed["content_type"], listed["stored"]) == (
        "截图.png",
        "image/png",
        True,
    )
    path = f"/api/v1/tickets/{ack['ticket']}/messages/{ack['message_id']}/attachments/0"
    download = await boss.get(path)
    assert download.status == 200
    assert await download.read() == PNG


async def test_a_file_and_words_go_by_http_too(files_chat: Chat) -> None:
    chat = files_chat
    token, _ = await chat.session()
    reference = await (
        await upload(chat, token, b"order 1234\n", name="o.txt", media_type="text/plain")
    ).json()
    assert reference["media_type"] == "text/plain"
    body = message("see the file", "h-1", attachments=[{"file": reference["file"], "name": "o"}])
    response = await post(chat, token, body)
    assert response.status == 200, await response.text()
    ack = await response.json()
    async with chat.store.read() as session:
        stored = await session.get_one(TicketMessage, ack["message_id"])
    # The type named in the message is kept (the widget names the upload's); none: bytes.
    assert [(a["filename"], a["content_type"]) for a in stored.attachments] == [
        ("o", "application/octet-stream")
    ]
    assert stored.text == "see the file"


async def test_what_an_upload_refuses(make_chat: MakeChat, tmp_path: Path) -> None:
    chat = await make_chat(
        webchat={
            "attachment_dir": str(tmp_path / "files"),
            "attachment_max_bytes": CAP,
            "upload_burst": 9,
            "uploads_per_minute": 0.6,
        }
    )
    token, _ = await chat.session()
    assert await error_of(await upload(chat, token, b"x" * (CAP + 1))) == (413, "too_large", "file")
    assert await error_of(await upload(chat, token, b"")) == (400, "invalid", "file")
    assert await error_of(await upload(chat, token, PNG, part="photo")) == (400, "invalid", "file")
    auth = {"Authorization": f"Bearer {token}"}
    not_multipart = await chat.client.post(
        "/api/v1/webchat/attachments", json={"file": "x"}, headers=auth
    )
    assert await error_of(not_multipart) == (400, "invalid", "file")
    malformed = await chat.client.post(
        "/api/v1/webchat/attachments",
        data=b'--b\r\nContent-Disposition: form-data; name="\x0e\xf0"\r\n\r\nx\r\n--b--\r\n',
        headers={**auth, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert await error_of(malformed) == (400, "invalid", "file")
    assert await error_of(await upload(chat, None, PNG)) == (401, "token_required", "token")
    assert await error_of(await upload(chat, "forged.token", PNG)) == (
        401,
        "invalid_token",
        "token",
    )
    assert stored_names(chat) == []  # nothing refused was kept, not even a temporary file

    # Uploads spend the session's upload budget (burst 9 here; the 5 refused above spent
    # theirs: only a request without a valid token spends none), not its message budget.
    statuses = [(await upload(chat, token, PNG)).status for _ in range(5)]
    assert statuses == [201, 201, 201, 201, 429]
    refused = await (await upload(chat, token, PNG)).json()
    assert refused["detail"].startswith("too many files"), refused
    # The customer can still write (and name a file uploaded before).
    said = await post(chat, token, message("can you see them?", "c-after-uploads"))
    assert said.status == 200, await said.text()


async def test_a_message_names_only_files_that_were_uploaded(files_chat: Chat) -> None:
    chat = files_chat
    token, _ = await chat.session()
    reference = await (await upload(chat, token, PNG)).json()
    never = {"file": "0" * 64, "name": "x.png"}
    for attachments in (
        [never],
        [reference, never],
        [{"file": "../../etc/passwd", "name": "p"}],
        [{"file": reference["file"].upper(), "name": "p"}],
        [{"name": "no file"}],
        [reference["file"]],
        {"file": reference["file"]},
        [{**reference, "name": "n" * 300}],
        [reference] * 11,
    ):
        response = await post(chat, token, message("hi", attachments=attachments))
        assert await error_of(response) == (422, "invalid", "attachments"), attachments
    assert await error_of(await post(chat, token, message(" ", attachments=[]))) == (
        422,
        "invalid",
        "text",
    )

    ws = await chat.connect(token)
    await ws.send_json(message("", "ws-1", attachments=[never]))
    error = await receive_until(ws, lambda f: f["type"] == "error")
    assert (error["code"], error["field"], error["client_id"]) == (
        "invalid",
        "attachments",
        "ws-1",
    )
    await ws.close()
    assert await incoming_count(chat.store) == 0


async def agent_upload(
    agent: AgentClient, number: str, data: bytes, *, name: str, media_type: str
) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type=media_type)
    response: aiohttp.ClientResponse = await agent.send(
        "POST", f"/api/v1/tickets/{number}/attachments", data=form
    )
    return response


async def test_an_agents_files_reach_the_customer_and_no_one_else(
    files_chat: Chat, agents: Callable[[str], Awaitable[AgentClient]]
) -> None:
    chat = files_chat
    token, _ = await chat.session(locale="zh-CN")
    other, _ = await chat.session()
    ws = await chat.connect(token)
    await ws.send_json(message("人工", "ask-1", handoff=True))
    ack = await receive_until(ws, lambda f: f["type"] == "ack")
    await chat.drain()
    number = ack["ticket"]

    # The agent uploads for the web chat ticket: kept in the web chat's store, to its cap.
    boss = await agents("boss@shop.test")
    html = b"<script>alert(1)</script>"
    picture = await (
        await agent_upload(boss, number, PNG, name="label.png", media_type="image/png")
    ).json()
    page = await agent_upload(boss, number, html, name="page.html", media_type="text/html")
    assert page.status == 201, await page.text()
    script = await page.json()
    assert picture["ref"] in stored_names(chat) and script["ref"] in stored_names(chat)
    big = await agent_upload(boss, number, b"x" * (CAP + 1), name="b", media_type="text/plain")
    assert big.status == 413
    assert (await big.json())["field"] == "file"

    reply = await boss.send(
        "POST",
        f"/api/v1/tickets/{number}/replies",
        {"text": "见附件", "attachments": [picture, script]},
    )
    assert reply.status == 201, await reply.text()
    reply_id = (await reply.json())["message_id"]

    # Live: the reply's frame lists the files, each with the URL the widget downloads it from.
    live = await receive_until(ws, lambda f: f.get("message_id") == reply_id)
    assert live["author"] == "agent"
    png_url = f"/api/v1/webchat/attachments/{picture['ref']}"
    html_url = f"/api/v1/webchat/attachments/{script['ref']}"
    assert live["attachments"] == [
        {"url": png_url, "name": "label.png", "media_type": "image/png", "size": len(PNG)},
        {"url": html_url, "name": "page.html", "media_type": "text/html", "size": len(html)},
    ]
    await ws.close()

    # The customer downloads them: a picture inline, anything else as a download, never as
    # HTML, never sniffed.
    auth = {"Authorization": f"Bearer {token}"}
    shown = await chat.client.get(png_url, headers=auth)
    assert shown.status == 200
    assert await shown.read() == PNG
    assert shown.headers["Content-Type"] == "image/png"
    assert shown.headers["Content-Disposition"].startswith("inline;")
    assert shown.headers["X-Content-Type-Options"] == "nosniff"
    kept = await chat.client.get(f"{html_url}?token={token}")
    assert kept.status == 200
    assert await kept.read() == html
    assert kept.headers["Content-Type"] == "application/octet-stream"
    assert kept.headers["Content-Disposition"] == 'attachment; filename="page.html"'
    assert kept.headers["X-Content-Type-Options"] == "nosniff"

    # Another session (knowing the digests) finds nothing; nor does anyone without a token.
    for url in (png_url, html_url):
        assert (
            await chat.client.get(url, headers={"Authorization": f"Bearer {other}"})
        ).status == 404
        assert (await chat.client.get(url)).status == 401
    for name in ("0" * 64, "abc", "..%2F..%2Fetc%2Fpasswd"):
        missing = await chat.client.get(f"/api/v1/webchat/attachments/{name}", headers=auth)
        assert missing.status == 404, name

    # Resume and the long poll list the files too.
    again = await chat.connect(token)
    await again.send_json({"type": "resume", "after": 0})
    resumed = await receive_until(again, lambda f: f.get("message_id") == reply_id)
    assert resumed["attachments"] == live["attachments"]
    await again.close()
    polled = await (await chat.client.get("/api/v1/webchat/messages?after=0", headers=auth)).json()
    [from_agent] = [m for m in polled["messages"] if m["message_id"] == reply_id]
    assert from_agent["attachments"] == live["attachments"]


async def test_a_customer_downloads_their_own_uploads_once_sent_only(files_chat: Chat) -> None:
    chat = files_chat
    token, _ = await chat.session()
    other, _ = await chat.session()
    auth = {"Authorization": f"Bearer {token}"}
    reference = await (await upload(chat, token, PNG)).json()
    url = f"/api/v1/webchat/attachments/{reference['file']}"
    # Uploaded but named by no message: not the conversation's yet.
    assert (await chat.client.get(url, headers=auth)).status == 404
    ack = await (await post(chat, token, message("", "own-1", attachments=[reference]))).json()
    assert (await chat.client.get(url, headers=auth)).status == 200
    # The other session uploads the same bytes (so it knows the digest): still not theirs.
    assert (await (await upload(chat, other, PNG)).json())["file"] == reference["file"]
    assert (await chat.client.get(url, headers={"Authorization": f"Bearer {other}"})).status == 404
    # On resume the customer's own message carries its file, with its client_id.
    ws = await chat.connect(token)
    await ws.send_json({"type": "resume", "after": 0})
    own = await receive_until(ws, lambda f: f.get("message_id") == ack["message_id"])
    assert own["client_id"] == "own-1"
    assert [f["url"] for f in own["attachments"]] == [url]
    await ws.close()
