"""What goes out with a text: the buttons under the bot's answers and surveys, and an
agent's files (sent as photo or document, read one at a time, a 413 final)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import update
from telegram.error import NetworkError

from channels.attachment_store import read_stored
from channels.telegram import delivery_parts, sender
from channels.telegram.sender import TelegramSender
from gateway.models import Attachment, OutboxKind
from gateway.outbox_admin import retry_row
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import TicketMessage
from tests.channels.telegram.conftest import Gateway, outbox
from tests.channels.telegram.deliveries import as_agent_reply, first_notice, outbound
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from workers.jobs import deliver_async


async def test_bot_answers_carry_did_this_help_and_surveys_the_stars(
    fake: FakeBotAPI, settings: Settings
) -> None:
    sender = TelegramSender(settings)
    await sender.send(
        outbound(
            "Orders ship within 48 hours.", channel_meta={"kb_entry_id": "shipping"}, message_id=42
        )
    )
    await sender.send(outbound("请为本次服务打分", kind=OutboxKind.SURVEY, outbox_id=2))
    await sender.send(outbound("An agent's answer", outbox_id=3))
    helpful, survey, plain = fake.sent
    assert helpful["reply_markup"] == {
        "inline_keyboard": [
            [
                {"text": "有帮助", "callback_data": "a:42:y"},
                {"text": "没有，转人工", "callback_data": "a:42:n"},
            ]
        ]
    }
    stars = survey["reply_markup"]["inline_keyboard"][0]
    assert [b["callback_data"] for b in stars] == [f"r:G20261122001:{n}" for n in range(1, 6)]
    assert "reply_markup" not in plain


async def test_agents_attachments_are_sent_as_photo_and_document(
    fake: FakeBotAPI, settings: Settings, tmp_path: Path
) -> None:
    photo, pdf = tmp_path / "a.png", tmp_path / "b.pdf"
    await asyncio.to_thread(photo.write_bytes, b"\x89PNG...")
    await asyncio.to_thread(pdf.write_bytes, b"%PDF-1.7")
    receipt = await TelegramSender(settings).send(
        outbound(
            "See attached",
            attachments=[
                {"filename": "a.png", "content_type": "image/png", "size": 7, "ref": str(photo)},
                {
                    "filename": "b.pdf",
                    "content_type": "application/pdf",
                    "size": 8,
                    "ref": str(pdf),
                },
            ],
        )
    )
    assert [s["method"] for s in fake.sent] == ["sendMessage", "sendPhoto", "sendDocument"]
    assert fake.sent[2]["document"]["filename"] == "b.pdf"
    assert receipt.channel_meta["message_ids"] == [s["message_id"] for s in fake.sent]


async def test_a_file_gone_from_the_store_fails_the_reply_before_its_text_goes(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings, tmp_path: Path
) -> None:
    """The text went, then the file could not be read (a worker host without the shared
    attachment directory): the row failed as if nothing had gone, and an admin's retry, once
    the file was back, sent the text again."""
    row = await first_notice(gateway, db)
    await as_agent_reply(db, row, "Here is your invoice.")
    gone = tmp_path / "gone.pdf"
    [reloaded] = [r for r in await outbox(db) if r.id == row.id]
    invoice = {"filename": "invoice.pdf", "content_type": "application/pdf", "size": 8}
    async with db.write() as session:
        await session.execute(
            update(TicketMessage)
            .where(TicketMessage.id == reloaded.message_id)
            .values(attachments=[{**invoice, "ref": str(gone)}])
        )
    result = await deliver_async(row.id, settings)
    assert result.startswith("failed: attachment 'invoice.pdf' unreadable")
    assert fake.sent == []
    await asyncio.to_thread(gone.write_bytes, b"%PDF-1.7")  # the operator restores the file
    assert await retry_row(db, row.id)
    assert await deliver_async(row.id, settings) == "sent"
    assert [s["method"] for s in fake.sent] == ["sendMessage", "sendDocument"]


async def test_a_replys_files_are_read_one_at_a_time_as_their_turn_comes(
    gateway: Gateway,
    db: Store,
    fake: FakeBotAPI,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checking a reply's files before its text goes read them all, and held them till the
    last was sent: ten files of 50 MB a send, and a job has eight sends under way."""
    row = await first_notice(gateway, db)
    await as_agent_reply(db, row, "Here are your files.")
    files = []
    for n in range(3):
        path = tmp_path / f"f{n}.pdf"
        path.write_bytes(b"%PDF-1.7 " + bytes([n]) * 1000)
        files.append(
            {"filename": path.name, "content_type": "application/pdf", "size": 1009}
            | {"ref": str(path)}
        )
    [reloaded] = [r for r in await outbox(db) if r.id == row.id]
    async with db.write() as session:
        await session.execute(
            update(TicketMessage)
            .where(TicketMessage.id == reloaded.message_id)
            .values(attachments=files)
        )
    sent_when_read: list[int] = []

    def counting(attachment: Attachment) -> bytes:
        sent_when_read.append(len(fake.sent))
        return read_stored(attachment)

    monkeypatch.setattr(delivery_parts, "read_stored", counting)
    assert await deliver_async(row.id, settings) == "sent"
    assert [s["method"] for s in fake.sent] == ["sendMessage"] + ["sendDocument"] * 3
    assert sent_when_read == [1, 2, 3]  # each once the parts before it went


@pytest.mark.parametrize(
    "said",
    [
        "Request Entity Too Large",  # the Bot API's description (JSON), on every Python
        # python-telegram-bot's own words when the body is not JSON (a proxy's page): the
        # status's phrase, which Python 3.13 renamed after RFC 9110.
        "Request Entity Too Large (413). Parsing the server response b'<html>' failed",
        "Content Too Large (413). Parsing the server response b'<html>' failed",
    ],
)
def test_a_413_is_known_as_final_whatever_python_calls_it(said: str) -> None:
    """The check compared with ``HTTPStatus(413).phrase``, which is "Content Too Large" from
    Python 3.13 on: there, the Bot API's "Request Entity Too Large" went unrecognised, and a
    file over the limit was uploaded again on every retry, as before the 413 was made final."""
    assert sender._too_large(NetworkError(said))
    assert not sender._too_large(NetworkError("httpx.ConnectError: All connection attempts failed"))
