"""Photos, documents, voice, video, stickers, locations and albums through the real app's
webhook: the files kept in the attachment store, and what escalates to people."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.appkeys import PIPELINE
from gateway.settings import Settings
from gateway.store import Store
from tests.channels.telegram.conftest import (
    AlwaysAnswers,
    AsksRecorded,
    Gateway,
    MakeGateway,
    load_fixture,
    messages,
    outbox,
    post_fixture,
    post_update,
    sent_again,
    telegram_settings,
    tickets,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI


async def stored_bytes(attachment: dict[str, Any]) -> bytes:
    """The bytes a stored message's attachment refers to, from the attachment store."""
    return await asyncio.to_thread(Path(attachment["ref"]).read_bytes)


async def test_photo_with_caption_is_downloaded_into_the_attachment_store(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    _, client = gateway
    fake.add_file("photo-big", b"\xff\xd8jpeg bytes", "photos/file_7.jpg")
    assert await post_fixture(client, "photo_with_caption") == 200
    [message] = await messages(db)
    assert message.text == "收到的商品外壳破了"
    [attachment] = message.attachments
    assert attachment["filename"] == "photo_pb.jpg"
    assert attachment["size"] == len(b"\xff\xd8jpeg bytes")
    path = Path(attachment["ref"])
    assert path.parent == Path(settings.telegram.attachment_dir)
    assert await asyncio.to_thread(path.read_bytes) == b"\xff\xd8jpeg bytes"
    assert [c.params["file_id"] for c in fake.calls_of("getFile")] == ["photo-big"]


async def test_a_photo_replaced_while_editing_replaces_the_stored_file(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    """The wrong receipt's photo replaced by the right one through Edit: only the caption
    changed, and the agent kept seeing the wrong receipt."""
    _, client = gateway
    fake.add_file("photo-big", b"\xff\xd8wrong receipt", "photos/file_7.jpg")
    fake.add_file("photo-right", b"\xff\xd8right receipt", "photos/file_8.jpg")
    assert await post_fixture(client, "photo_with_caption") == 200

    def edit(update_id: int, edit_date: int, photo: str, caption: str) -> dict[str, Any]:
        update = load_fixture("photo_with_caption")
        message = update.pop("message")
        message.update(caption=caption, edit_date=edit_date)
        message["photo"] = [{"file_id": photo, "file_unique_id": photo, "width": 1, "height": 1}]
        if photo == "photo-big":
            message["photo"][0]["file_unique_id"] = "pb"
        return {"update_id": update_id, "edited_message": message}

    assert await post_update(client, edit(1100, 1795320060, "photo-big", "wrong one")) == 200
    assert len(fake.calls_of("getFile")) == 1  # the caption alone changed: nothing fetched
    assert await post_update(client, edit(1101, 1795320120, "photo-right", "this one")) == 200
    assert await post_update(client, edit(1101, 1795320120, "photo-right", "this one")) == 200
    [message] = await messages(db)
    assert message.text == "this one"
    [attachment] = message.attachments
    assert await stored_bytes(attachment) == b"\xff\xd8right receipt"
    earlier = message.channel_meta["edits"]
    assert [e["text"] for e in earlier] == ["收到的商品外壳破了", "wrong one"]
    assert await stored_bytes(earlier[1]["attachments"][0]) == b"\xff\xd8wrong receipt"


async def test_document_over_the_size_cap_is_kept_as_a_name_without_bytes(
    fake: FakeBotAPI,
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    make_gateway: MakeGateway,
    db: Store,
) -> None:
    settings = telegram_settings(fake, db_url, redis_url, tmp_path, attachment_max_bytes=1000)
    _, client = await make_gateway(settings)
    fake.add_file("doc-1", b"%PDF" * 1250, "documents/file_1.pdf")
    assert await post_fixture(client, "document") == 200
    [message] = await messages(db)
    assert message.text == "Here is my invoice"
    assert message.attachments == [
        {
            "filename": "invoice-A1024.pdf",
            "content_type": "application/pdf",
            "size": 5000,
            "ref": None,
        }
    ]
    assert message.channel_meta["skipped_files"] == [
        {"filename": "invoice-A1024.pdf", "size": 5000}
    ]
    assert fake.calls_of("getFile") == []  # Telegram said how big it was: not even asked


async def test_a_photo_over_the_size_cap_keeps_a_smaller_size_telegram_made(
    fake: FakeBotAPI,
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    make_gateway: MakeGateway,
    db: Store,
) -> None:
    settings = telegram_settings(fake, db_url, redis_url, tmp_path, attachment_max_bytes=10_000)
    _, client = await make_gateway(settings)
    fake.add_file("photo-small", b"\xff\xd8small", "photos/s.jpg")
    fake.add_file("photo-big", b"\xff\xd8" + b"x" * 20_000, "photos/b.jpg")
    assert await post_fixture(client, "photo_with_caption") == 200
    [message] = await messages(db)
    [attachment] = message.attachments
    assert attachment["filename"] == "photo_ps.jpg"
    assert await stored_bytes(attachment) == b"\xff\xd8small"
    assert "skipped_files" not in message.channel_meta
    assert [c.params["file_id"] for c in fake.calls_of("getFile")] == ["photo-small"]


async def test_voice_message_is_an_attachment(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    _, client = gateway
    fake.add_file("voice-1", b"OggS voice", "voice/file_2.oga")
    assert await post_fixture(client, "voice") == 200
    [message] = await messages(db)
    assert message.attachments[0]["content_type"] == "audio/ogg"
    assert await stored_bytes(message.attachments[0]) == b"OggS voice"


async def test_video_with_caption_is_an_attachment_and_the_caption_the_text(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    _, client = gateway
    fake.add_file("video-1", b"\x00\x00\x00\x18ftypmp42", "videos/file_3.mp4")
    assert await post_fixture(client, "video_with_caption") == 200
    [message] = await messages(db)
    assert message.text == "The hinge broke on day two"
    [video] = message.attachments
    assert (video["filename"], video["content_type"], video["size"]) == (
        "broken-hinge.mp4",
        "video/mp4",
        12,
    )
    assert await stored_bytes(video) == b"\x00\x00\x00\x18ftypmp42"
    assert [c.params["file_id"] for c in fake.calls_of("getFile")] == ["video-1"]  # no thumbnail


async def test_a_sticker_and_a_location_reach_the_ticket(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    """Both used to be dropped as unsupported: an agent never saw the customer's address."""
    _, client = gateway
    fake.add_file("sticker-1", b"RIFFwebp!", "stickers/file_4.webp")
    assert await post_fixture(client, "sticker") == 200
    assert await post_fixture(client, "location") == 200
    assert await post_fixture(client, "live_location_moved") == 200  # its move: not stored
    sticker, location = await messages(db)
    assert sticker.text == "👍"
    assert await stored_bytes(sticker.attachments[0]) == b"RIFFwebp!"
    assert location.text.startswith("📍 31.230416, 121.473701\nhttps://www.openstreetmap.org/")
    assert location.channel_meta["location"]["latitude"] == 31.230416
    assert "edits" not in location.channel_meta
    assert len(await tickets(db)) == 1


def photo_without_caption() -> dict[str, Any]:
    update = load_fixture("photo_with_caption")
    del update["message"]["caption"]
    return update


@pytest.mark.parametrize(
    "update", ["voice", "sticker", "location", "venue", "photo_without_caption"]
)
async def test_what_only_people_can_read_escalates_without_asking_the_knowledge_base(
    update: str, fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """No question to ask: a voice note or a photo used to leave its new ticket out of every
    agent's queue, and a map link was put to the knowledge base (answered, or recorded as a
    question it missed)."""
    kb = AsksRecorded()
    app, client = await make_gateway(settings, kb=kb)
    fake.add_file("voice-1", b"OggS voice", "voice/file_2.oga")
    fake.add_file("sticker-1", b"RIFFwebp!", "stickers/file_4.webp")
    fake.add_file("photo-big", b"\xff\xd8jpeg bytes", "photos/file_7.jpg")
    payload = photo_without_caption() if update == "photo_without_caption" else load_fixture(update)
    assert await post_update(client, payload) == 200
    await app[PIPELINE].drain()
    assert kb.asked == []
    [ticket] = await tickets(db)
    assert ticket.escalated_at is not None
    assert [r.template for r in await outbox(db)] == ["ticket_received", "escalated"]
    assert [m.kind for m in await messages(db)] == ["incoming"]


def album() -> list[dict[str, Any]]:
    """Two photos sent as one: Telegram sends a message for each, the caption on one only."""
    first = load_fixture("photo_with_caption")
    first["message"].update(media_group_id="13579", caption="When does my order ship?")
    second = sent_again("photo_with_caption")
    second["message"]["media_group_id"] = "13579"
    del second["message"]["caption"]
    second["message"]["photo"] = [
        {"file_id": "photo-2", "file_unique_id": "p2", "file_size": 10, "width": 9, "height": 9}
    ]
    return [first, second]


async def test_an_albums_question_answered_by_the_kb_does_not_also_escalate(
    fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """The album's photo without the caption escalated as "only people can read this": the
    customer got the bot's answer and "passed to an agent" at once, where one photo with the
    same caption got the answer alone."""
    app, client = await make_gateway(settings, kb=AlwaysAnswers())
    fake.add_file("photo-big", b"\xff\xd8one", "photos/1.jpg")
    fake.add_file("photo-2", b"\xff\xd8two", "photos/2.jpg")
    for part in album():
        assert await post_update(client, part) == 200
    await app[PIPELINE].drain()
    [ticket] = await tickets(db)
    assert ticket.escalated_at is None
    assert [r.template for r in await outbox(db)] == ["ticket_received", "message"]
    parts = [m for m in await messages(db) if m.kind == "incoming"]
    assert [m.channel_meta["part_of"] for m in parts] == ["13579", "13579"]
    assert all(m.routed_at is not None for m in parts)
