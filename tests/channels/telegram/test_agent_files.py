"""An agent's files reach the Telegram chat: uploaded through the agent API, named in a reply,
delivered by the real delivery job as media Telegram shows or plays, or as documents."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from channels.telegram import delivery_parts
from gateway.api.reply_files import TELEGRAM_UPLOAD_BYTES
from gateway.appkeys import PIPELINE
from gateway.settings import Settings
from gateway.store import Store
from tests.channels.telegram.agents import PNG, log_in, upload
from tests.channels.telegram.conftest import (
    Gateway,
    messages,
    outbox,
    post_fixture,
    post_update,
    tickets,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.channels.telegram.private_chat import replying_to, say
from workers.jobs import deliver_async

PDF = b"%PDF-1.7 the invoice"


async def a_ticket(gateway: Gateway, db: Store) -> str:
    """Li writes in (``private_text``); the ticket's number."""
    app, client = gateway
    assert await post_fixture(client, "private_text") == 200
    await app[PIPELINE].drain()
    [ticket] = await tickets(db)
    return ticket.number


async def test_an_agents_photo_and_document_reach_the_chat(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    _, client = gateway
    number = await a_ticket(gateway, db)
    headers = await log_in(client, db)

    photo = await upload(client, headers, number, "parcel.png", PNG, "image/png")
    assert photo.status == 201, await photo.text()
    photo = await photo.json()
    assert photo["filename"] == "parcel.png"
    assert photo["content_type"] == "image/png"
    assert photo["size"] == len(PNG)
    kept = Path(settings.telegram.attachment_dir) / photo["ref"]
    assert await asyncio.to_thread(kept.read_bytes) == PNG
    document = await upload(client, headers, number, "发票.pdf", PDF, "application/pdf")
    assert document.status == 201, await document.text()
    document = await document.json()

    reply = await client.post(
        f"/api/v1/tickets/{number}/replies",
        json={
            "text": "Here is the label and the invoice.",
            "attachments": [photo, document],
        },
        headers=headers,
    )
    assert reply.status == 201, await reply.text()
    stored = [m for m in await messages(db) if m.author_type == "agent"]
    assert [(a["filename"], a["content_type"], a["size"]) for a in stored[0].attachments] == [
        ("parcel.png", "image/png", len(PNG)),
        ("发票.pdf", "application/pdf", len(PDF)),
    ]

    [row] = [r for r in await outbox(db) if r.kind == "reply"]
    assert await deliver_async(row.id, settings) == "sent"
    assert [s["method"] for s in fake.sent if s["chat_id"] == 888][-3:] == [
        "sendMessage",
        "sendPhoto",
        "sendDocument",
    ]
    assert fake.sent[-2]["photo"] == {"filename": "parcel.png", "size": len(PNG)}
    assert fake.sent[-1]["document"] == {"filename": "发票.pdf", "size": len(PDF)}


async def test_a_reply_of_files_only_and_photos_telegram_refuses_go_as_documents(
    gateway: Gateway,
    db: Store,
    fake: FakeBotAPI,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No text: only the files are sent. A photo over sendPhoto's 10 MB (made small here), or
    one Telegram refuses as a photo (its sides), goes as a document."""
    _, client = gateway
    number = await a_ticket(gateway, db)
    headers = await log_in(client, db)
    big = await (await upload(client, headers, number, "big.png", PNG * 2, "image/png")).json()
    odd = await (await upload(client, headers, number, "odd.jpg", PNG, "image/jpeg")).json()
    monkeypatch.setattr(delivery_parts, "PHOTO_BYTES", len(PNG))
    reply = await client.post(
        f"/api/v1/tickets/{number}/replies", json={"attachments": [big, odd]}, headers=headers
    )
    assert reply.status == 201, await reply.text()
    fake.fail_next("sendPhoto", 400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
    sent_before = len(fake.sent)

    [row] = [r for r in await outbox(db) if r.kind == "reply"]
    assert await deliver_async(row.id, settings) == "sent"
    assert [(s["method"], s["document"]["filename"]) for s in fake.sent[sent_before:]] == [
        ("sendDocument", "big.png"),
        ("sendDocument", "odd.jpg"),
    ]


async def test_a_file_over_telegrams_upload_limit_fails_at_once_with_the_reason(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """The Bot API refuses an upload over its limit with a 413, which python-telegram-bot
    raises as a NetworkError: the file was uploaded again on every try for some 40 minutes,
    and the agent read at last "Telegram unreachable" for a file that can never go."""
    _, client = gateway
    number = await a_ticket(gateway, db)
    headers = await log_in(client, db)
    pdf = await (await upload(client, headers, number, "scan.pdf", PDF, "application/pdf")).json()
    reply = await client.post(
        f"/api/v1/tickets/{number}/replies", json={"attachments": [pdf]}, headers=headers
    )
    assert reply.status == 201, await reply.text()
    fake.fail_next("sendDocument", 413, "Request Entity Too Large")

    [row] = [r for r in await outbox(db) if r.kind == "reply"]
    result = await deliver_async(row.id, settings)
    assert result == "failed: Telegram refused the file as too large: Request Entity Too Large"
    assert len(fake.calls_of("sendDocument")) == 1


async def test_an_agents_video_song_and_voice_note_play_in_the_chat(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """Sent as media Telegram plays inline, not as files to download; a voice note the user
    does not take (a privacy setting: VOICE_MESSAGES_FORBIDDEN) goes as a file."""
    _, client = gateway
    number = await a_ticket(gateway, db)
    headers = await log_in(client, db)
    files = [
        ("unboxing.mp4", b"\x00\x00\x00\x18ftypmp42 the clip", "video/mp4"),
        ("jingle.mp3", b"ID3 the song", "audio/mpeg"),
        ("howto.ogg", b"OggS the note", "audio/ogg"),
    ]
    uploaded = [await (await upload(client, headers, number, *f)).json() for f in files]

    async def send(attachments: list[Any]) -> list[dict[str, Any]]:
        reply = await client.post(
            f"/api/v1/tickets/{number}/replies", json={"attachments": attachments}, headers=headers
        )
        assert reply.status == 201, await reply.text()
        sent_before = len(fake.sent)
        row = max((r for r in await outbox(db) if r.kind == "reply"), key=lambda r: r.id)
        assert await deliver_async(row.id, settings) == "sent"
        return fake.sent[sent_before:]

    sent = await send(uploaded)
    assert [s["method"] for s in sent] == ["sendVideo", "sendAudio", "sendVoice"]
    assert sent[0]["video"] == {"filename": "unboxing.mp4", "size": len(files[0][1])}
    assert sent[1]["audio"] == {"filename": "jingle.mp3", "size": len(files[1][1])}
    assert sent[2]["voice"] == {"filename": "howto.ogg", "size": len(files[2][1])}

    fake.fail_next("sendVoice", 400, "Bad Request: VOICE_MESSAGES_FORBIDDEN")
    [again] = await send(uploaded[2:])
    assert (again["method"], again["document"]["filename"]) == ("sendDocument", "howto.ogg")


async def test_a_reply_to_a_later_part_of_an_agents_answer_goes_to_its_ticket(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """An answer longer than Telegram's 4,096 characters, with a photo, goes as three
    messages; the outbox row keeps the first's id only, so after ``/new`` a "Reply" to the
    second half or to the photo went to the new ticket, where that agent never saw it."""
    app, client = gateway
    number = await a_ticket(gateway, db)
    headers = await log_in(client, db)
    photo = await (await upload(client, headers, number, "label.png", PNG, "image/png")).json()
    long_text = "\n\n".join(f"Step {n}: " + "pack it well. " * 30 for n in range(1, 21))
    assert len(long_text) > 4096
    reply = await client.post(
        f"/api/v1/tickets/{number}/replies",
        json={"text": long_text, "attachments": [photo]},
        headers=headers,
    )
    assert reply.status == 201, await reply.text()
    [row] = [r for r in await outbox(db) if r.kind == "reply"]
    assert await deliver_async(row.id, settings) == "sent"
    first_part, second_part, label = fake.sent[-3:]
    assert [s["method"] for s in (first_part, second_part, label)] == [
        "sendMessage",
        "sendMessage",
        "sendPhoto",
    ]
    await say(client, 888, "/new")
    await say(client, 888, "where is my invoice?")
    second_half = replying_to(888, "step 12 is unclear", {**second_part, "text": "..."})
    assert await post_update(client, second_half) == 200
    on_photo = replying_to(888, "this label is torn", {**label, "text": ""})
    assert await post_update(client, on_photo) == 200
    await app[PIPELINE].drain()
    first, second = await tickets(db)
    customers = [(m.ticket_id, m.text) for m in await messages(db) if m.author_type == "customer"]
    assert customers[-3:] == [
        (second.id, "where is my invoice?"),
        (first.id, "step 12 is unclear"),
        (first.id, "this label is torn"),
    ]


def test_the_largest_file_an_agent_may_attach_gets_time_to_upload_within_a_job() -> None:
    """PTB gives any upload 20 s: a 50 MB file timed out on every try below 2.5 MB/s, and RQ
    parked the reply. Its send now gets time for 512 KiB/s, and still ends within RQ's 180 s."""
    small, largest = (
        delivery_parts.upload_timeouts(1024),
        delivery_parts.upload_timeouts(TELEGRAM_UPLOAD_BYTES),
    )
    assert small == pytest.approx((20, 20), abs=0.01)
    write, read = largest
    assert write >= TELEGRAM_UPLOAD_BYTES / (512 * 1024)
    assert write + read < 180
