"""Agents download a message's attachment: always as a file, named safely, only from tickets
they may see, only from the attachment store."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from channels.email.mime import MailPart
from gateway.api.attachment_routes import content_disposition, served_type
from gateway.api.schemas import attachments_out
from gateway.models import AgentRole
from gateway.store.tables import Ticket, TicketMessage
from tests.api.conftest import Client, Files

PDF = b"%PDF-1.4 invoice bytes \x00\xff"
HTML = b"<html><script>alert(1)</script></html>"


def _path(number: str, message_id: int, index: int) -> str:
    return f"/api/v1/tickets/{number}/messages/{message_id}/attachments/{index}"


async def test_an_agent_downloads_the_files_of_a_ticket(files: Files) -> None:
    parts = (
        MailPart("发票 2026.pdf", "application/pdf", len(PDF), PDF),
        MailPart('<img src=x onerror="alert(1)">.html', "text/html", len(HTML), HTML),
        MailPart("huge.mov", "video/quicktime", 50_000_000, None),  # over the cap: name only
    )
    number, message_id = await files.ticket_with_files(parts, "eve@example.com")
    agent = await files.login("li@shop.test", AgentRole.AGENT)

    # The ticket view lists them, and each listed file downloads from its message and index.
    detail = await (await agent.get(f"/api/v1/tickets/{number}")).json()
    listed = next(m["attachments"] for m in detail["messages"] if m["id"] == message_id)
    assert [a["filename"] for a in listed] == [p.filename for p in parts]
    # Where the server keeps the bytes is not shown: only whether they can be downloaded.
    assert [(a["index"], a["stored"]) for a in listed] == [(0, True), (1, True), (2, False)]
    assert all(set(a) == {"index", "filename", "content_type", "size", "stored"} for a in listed)
    assert str(files.directory) not in json.dumps(detail)

    pdf = await agent.get(_path(number, message_id, 0))
    assert pdf.status == 200
    assert await pdf.read() == PDF
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["X-Content-Type-Options"] == "nosniff"
    disposition = pdf.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=\"__ 2026.pdf\"; filename*=UTF-8''")
    assert unquote(disposition.split("UTF-8''", 1)[1]) == "发票 2026.pdf"

    # Markup a customer sent is a file to save, never a page to show.
    html = await agent.get(_path(number, message_id, 1))
    assert html.status == 200
    assert await html.read() == HTML
    assert html.headers["Content-Type"] == "application/octet-stream"
    assert html.headers["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in html.headers["Content-Security-Policy"]

    # Listed but not kept, past the end, another ticket's message, no such ticket: 404.
    for path in (
        _path(number, message_id, 2),
        _path(number, message_id, 3),
        _path(number, message_id + 1000, 0),
        _path("G20990101999", message_id, 0),
        f"/api/v1/tickets/{number}/messages/x/attachments/0",
    ):
        response = await agent.get(path)
        assert response.status == 404, path
        assert (await response.json())["error"] == "not_found"


async def test_only_tickets_the_agent_may_see(files: Files) -> None:
    number, message_id = await files.ticket_with_files(
        (MailPart("a.txt", "text/plain", 5, b"hello"),), "ann@example.com"
    )
    other = await files.login("wang@shop.test", AgentRole.AGENT)
    boss = await files.login("boss@shop.test", AgentRole.SUPERVISOR)
    async with files.store.write() as session:  # the ticket is boss's, not in any queue
        await session.execute(
            update(Ticket).where(Ticket.number == number).values(assignee_id=boss.agent_id)
        )
    assert (await other.get(_path(number, message_id, 0))).status == 404
    mine = await boss.get(_path(number, message_id, 0))
    assert mine.status == 200
    assert await mine.read() == b"hello"

    anonymous: Client = TestClient(files.server)
    await anonymous.start_server()
    refused = await anonymous.get(_path(number, message_id, 0))
    assert refused.status == 401
    await anonymous.close()


async def test_a_ref_outside_the_attachment_store_is_never_read(
    files: Files, tmp_path: Path
) -> None:
    number, message_id = await files.ticket_with_files(
        (MailPart("a.txt", "text/plain", 5, b"hello"),), "ann@example.com"
    )
    secret = tmp_path / ("0" * 64)  # named like a stored file, but not in the store
    secret.write_bytes(b"not for agents")
    boss = await files.login("boss@shop.test", AgentRole.SUPERVISOR)
    for ref in (str(secret), "/etc/passwd", str(files.directory / ".." / ("0" * 64))):
        async with files.store.write() as session:
            row = await session.get_one(TicketMessage, message_id)
            row.attachments = [{"filename": "x.txt", "content_type": "text/plain", "ref": ref}]
        response = await boss.get(_path(number, message_id, 0))
        assert response.status == 404, ref


@pytest.mark.parametrize(
    ("declared", "served"),
    [
        ("application/pdf", "application/pdf"),
        ("IMAGE/PNG; name=x.png", "image/png"),
        ("text/plain", "text/plain"),
        ("text/html", "application/octet-stream"),
        ("image/svg+xml", "application/octet-stream"),
        ("application/xhtml+xml", "application/octet-stream"),
        ("text/javascript", "application/octet-stream"),
        ("text/html\r\nX-Evil: 1", "application/octet-stream"),
        ("", "application/octet-stream"),
        (None, "application/octet-stream"),
    ],
)
def test_script_capable_types_are_served_as_bytes(declared: object, served: str) -> None:
    assert served_type(declared) == served


@pytest.mark.parametrize(
    ("filename", "header"),
    [
        ("report.pdf", 'attachment; filename="report.pdf"'),
        ("../../etc/passwd", 'attachment; filename="passwd"'),
        ("C:\\Users\\x\\a.doc", 'attachment; filename="a.doc"'),
        ('a"b\\c.txt', 'attachment; filename="c.txt"'),
        (
            'say "hi".txt',
            "attachment; filename=\"say _hi_.txt\"; filename*=UTF-8''say%20%22hi%22.txt",
        ),
        ("line\r\nX-Evil: 1.txt", 'attachment; filename="lineX-Evil: 1.txt"'),
        ("100%.txt", "attachment; filename=\"100_.txt\"; filename*=UTF-8''100%25.txt"),
        ("", 'attachment; filename="attachment"'),
        ("..", 'attachment; filename="attachment"'),
        ("图.png", "attachment; filename=\"_.png\"; filename*=UTF-8''%E5%9B%BE.png"),
    ],
)
def test_file_names_are_safe_in_the_header(filename: str, header: str) -> None:
    assert content_disposition(filename) == header


def test_the_agent_sees_whether_a_file_was_kept_never_where() -> None:
    raw = [
        "not a file",  # a hand-edited row: skipped, but its index stays taken
        {"filename": "a.pdf", "content_type": "application/pdf", "size": 3, "ref": "/srv/x/ab"},
        {"filename": "big.mov", "content_type": "video/quicktime", "size": 9, "ref": None},
        {"size": -1},
    ]
    listed = [a.model_dump() for a in attachments_out(raw)]
    assert listed == [
        {
            "index": 1,
            "filename": "a.pdf",
            "content_type": "application/pdf",
            "size": 3,
            "stored": True,
        },
        {
            "index": 2,
            "filename": "big.mov",
            "content_type": "video/quicktime",
            "size": 9,
            "stored": False,
        },
        {"index": 3, "filename": "", "content_type": "", "size": None, "stored": False},
    ]
    assert attachments_out(None) == []
