"""Each fixture payload through the real app's webhook: the ticket, message, contact and
replies it produces (replies delivered by the real job to the fake Bot API)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, update

from channels.telegram.inbound import TELEGRAM
from gateway.appkeys import PIPELINE
from gateway.models import InboundMessage
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import Contact, ContactIdentity
from knowledge_base.base import Answer, Candidate, Clarify, Verdict
from tests.channels.telegram.conftest import (
    AlwaysAnswers,
    AsksRecorded,
    Gateway,
    MakeGateway,
    contacts,
    deliver_all,
    identities,
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
from tests.channels.telegram.private_chat import replying_to, say
from tests.factories import NOON, Clock


async def stored_bytes(attachment: dict[str, Any]) -> bytes:
    """The bytes a stored message's attachment refers to, from the attachment store."""
    return await asyncio.to_thread(Path(attachment["ref"]).read_bytes)


async def test_private_text_opens_a_ticket_and_the_replies_reach_the_chat(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    app, client = gateway
    assert await post_fixture(client, "private_text") == 200
    await app[PIPELINE].drain()

    [ticket] = await tickets(db)
    assert (ticket.number, ticket.channel, ticket.thread_key) == ("G20261122001", "telegram", "888")
    assert ticket.escalated_at is not None  # the knowledge base declined: people take it
    [message] = await messages(db)
    assert message.external_id == "888:11"
    assert message.text == "我的订单 #A1024 还没有发货，请帮我查一下"
    assert message.channel_meta["update_id"] == 1001
    [contact] = await contacts(db)
    assert (contact.name, contact.locale) == ("小李", "zh-hans")
    [identity] = await identities(db)
    assert (identity.channel, identity.external_user_id, identity.reachable) == (
        "telegram",
        "888",
        True,
    )
    assert [r.template for r in await outbox(db)] == ["ticket_received", "escalated"]

    assert await deliver_all(db, settings) == ["sent", "sent"]
    sent = fake.sent
    assert [(s["chat_id"], s["method"]) for s in sent] == [(888, "sendMessage")] * 2
    assert "G20261122001" in sent[0]["text"] and "24 小时" in sent[0]["text"]
    assert "人工" in sent[1]["text"]
    assert [r.external_id for r in await outbox(db)] == [str(s["message_id"]) for s in sent]


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


async def test_edited_message_updates_the_stored_message(gateway: Gateway, db: Store) -> None:
    _, client = gateway
    assert await post_fixture(client, "private_text") == 200
    assert await post_fixture(client, "edited_message") == 200
    assert await post_fixture(client, "edited_message") == 200  # redelivered: applied once
    [message] = await messages(db)
    assert message.text == "我的订单 #A1025 还没有发货，请帮我查一下"
    assert message.channel_meta["edits"] == [
        {"text": "我的订单 #A1024 还没有发货，请帮我查一下", "replaced_at": 1795320060}
    ]
    assert len(await tickets(db)) == 1


async def test_a_second_edit_within_the_same_second_is_kept(gateway: Gateway, db: Store) -> None:
    """``edit_date`` counts seconds: a quick second correction was taken for a redelivery."""
    _, client = gateway
    assert await post_fixture(client, "private_text") == 200
    first = load_fixture("edited_message")
    second = load_fixture("edited_message")
    second["update_id"] += 1
    second["edited_message"]["text"] = "我的订单 #A1026 还没有发货，请帮我查一下"
    for edit in (first, second, second, first):  # each redelivered, the first after the second
        assert await post_update(client, edit) == 200
    [message] = await messages(db)
    assert message.text == "我的订单 #A1026 还没有发货，请帮我查一下"
    assert [e["text"] for e in message.channel_meta["edits"]] == [
        "我的订单 #A1024 还没有发货，请帮我查一下",
        "我的订单 #A1025 还没有发货，请帮我查一下",
    ]


async def test_edit_of_a_message_never_stored_is_stored(gateway: Gateway, db: Store) -> None:
    _, client = gateway
    assert await post_fixture(client, "edited_message") == 200
    [message] = await messages(db)
    assert (message.external_id, message.text) == (
        "888:11",
        "我的订单 #A1025 还没有发货，请帮我查一下",
    )


async def test_start_command_welcomes_in_the_users_language_and_opens_no_ticket(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    _, client = gateway
    assert await post_fixture(client, "command_with_entities") == 200
    [sent] = fake.sent
    assert sent["chat_id"] == 777
    assert sent["text"].startswith("Hello, welcome")
    assert await tickets(db) == []
    [contact] = await contacts(db)
    assert (contact.name, contact.locale) == ("Ann Lee", "en")

    chinese = load_fixture("command_with_entities")
    chinese["update_id"] += 100
    chinese["message"]["from"] = {
        "id": 888,
        "is_bot": False,
        "first_name": "李",
        "language_code": "zh-hans",
    }
    chinese["message"]["chat"]["id"] = 888
    assert await post_update(client, chinese) == 200
    assert fake.sent[1]["text"].startswith("您好，欢迎")


async def test_text_starting_with_a_slash_but_no_entity_is_a_question(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    _, client = gateway
    assert await post_fixture(client, "slash_text_without_entity") == 200
    [message] = await messages(db)
    assert message.text == "/start is not working on my device"
    assert fake.sent == []


async def test_helpful_no_escalates_and_the_press_is_answered_once(
    fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    app, client = await make_gateway(settings, kb=AlwaysAnswers())
    assert await post_fixture(client, "private_text") == 200
    await app[PIPELINE].drain()
    [ticket] = await tickets(db)
    assert ticket.escalated_at is None  # the bot answered
    for _ in range(2):  # the second is Telegram redelivering it
        assert await post_fixture(client, "callback_query") == 200
    [ticket] = await tickets(db)
    assert ticket.escalated_at is not None
    feedback = [m for m in await messages(db) if m.kind == "system"]
    assert [(m.external_id, m.channel_meta["helpful"]) for m in feedback] == [
        ("cb:4382bfdwdsb323b2d9", False)
    ]
    assert [r.template for r in await outbox(db)] == ["ticket_received", "message", "escalated"]
    answers = fake.calls_of("answerCallbackQuery")
    assert answers[0].params == {
        "callback_query_id": "4382bfdwdsb323b2d9",
        "text": "谢谢您的反馈！",
    }


class TwoAnswers:
    """A knowledge base with an answer about passwords and one about opening hours."""

    async def match(self, text: str, *, locale: str | None = None) -> Verdict:
        if "password" in text:
            return Answer("password", "Reset it?", "Use 'Forgot password' on the login page.", 0.9)
        return Answer("hours", "Opening hours?", "We are open 9:00-18:00.", 0.9)


async def test_no_under_an_earlier_answer_rejects_that_answer(
    fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """The buttons named the ticket, so a press under the first answer counted for the
    latest: the agent read the wrong question and rejected answer."""
    app, client = await make_gateway(settings, kb=TwoAnswers())
    for n, question in ((11, "how do I reset my password"), (12, "opening hours?")):
        update = load_fixture("private_text")
        update["update_id"] += n
        update["message"].update(message_id=n, text=question)
        assert await post_update(client, update) == 200
        await app[PIPELINE].drain()
    assert await deliver_all(db, settings) == ["sent"] * 3
    [first] = [s for s in fake.sent if s["text"].startswith("Use 'Forgot")]
    no = first["reply_markup"]["inline_keyboard"][0][1]["callback_data"]
    press = load_fixture("callback_query")
    press["callback_query"]["data"] = no
    assert await post_update(client, press) == 200
    [note] = [m for m in await messages(db) if m.kind == "note"]
    assert note.text.splitlines()[1:] == [
        "Question: how do I reset my password",
        "Rejected answer: Use 'Forgot password' on the login page.",
    ]
    answers = {m.text: m.channel_meta for m in await messages(db) if m.author_type == "bot"}
    assert answers["Use 'Forgot password' on the login page."]["feedback"]["helpful"] is False
    assert "feedback" not in answers["We are open 9:00-18:00."]
    [ticket] = await tickets(db)
    assert ticket.escalated_at is not None


class AsksWhichOne:
    """Unsure about "return": asks which of two questions; sure about each of them."""

    async def match(self, text: str, *, locale: str | None = None) -> Verdict:
        if text == "How do I return an item?":
            return Answer("ret", text, "Send it back within 30 days.", 0.95)
        if text == "When is my refund paid?":
            return Answer("ref", text, "Refunds are paid within 5 days.", 0.95)
        return Clarify(
            candidates=(
                Candidate(entry_id="ret", title="How do I return an item?", score=0.6),
                Candidate(entry_id="ref", title="When is my refund paid?", score=0.58),
            )
        )


async def test_the_bots_which_one_offers_buttons_and_a_press_is_the_question(
    fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """The bot's "which one?" reached the chat as a bare list of questions, and typing one
    of them was the only way on ("2" went to the knowledge base, which escalated it)."""
    app, client = await make_gateway(settings, kb=AsksWhichOne())
    assert await post_fixture(client, "private_text") == 200
    await app[PIPELINE].drain()
    assert await deliver_all(db, settings) == ["sent", "sent"]
    asked = fake.sent[1]
    assert asked["text"].splitlines() == [
        "您想问的是下面哪一个？",
        "How do I return an item?",
        "When is my refund paid?",
    ]
    buttons = [row[0] for row in asked["reply_markup"]["inline_keyboard"]]
    assert [b["text"] for b in buttons] == ["How do I return an item?", "When is my refund paid?"]
    press = load_fixture("callback_query")
    press["callback_query"]["data"] = buttons[1]["callback_data"]
    for _ in range(2):  # the second is Telegram redelivering it
        assert await post_update(client, press) == 200
        await app[PIPELINE].drain()
    texts = [(m.author_type, m.text) for m in await messages(db)]
    assert texts[2:] == [
        ("customer", "When is my refund paid?"),
        ("bot", "Refunds are paid within 5 days."),
    ]
    [ticket] = await tickets(db)
    assert ticket.escalated_at is None
    assert fake.calls_of("answerCallbackQuery")[0].params == {
        "callback_query_id": press["callback_query"]["id"]
    }


async def answered_and_pressed_yes(gateway: Gateway) -> None:
    """The fixture's question, answered by the bot, and "yes, it helped" pressed."""
    app, client = gateway
    assert await post_fixture(client, "private_text") == 200
    await app[PIPELINE].drain()
    yes = load_fixture("callback_query")
    yes["callback_query"].update(id="yes-press", data="h:G20261122001:y")
    assert await post_update(client, yes) == 200


async def test_no_after_yes_reopens_the_resolved_ticket_for_people(
    fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """Telegram keeps the keyboard: "yes" resolved the ticket, a later "no" escalated it while
    it stayed resolved, where no agent's queue shows it, and told the customer a person
    would take over."""
    gateway = await make_gateway(settings, kb=AlwaysAnswers())
    _, client = gateway
    await answered_and_pressed_yes(gateway)
    [ticket] = await tickets(db)
    assert (ticket.status, ticket.resolved_by_bot) == ("resolved", True)
    assert await post_fixture(client, "callback_query") == 200  # "no", a minute later
    [ticket] = await tickets(db)
    assert (ticket.status, ticket.resolved_at, ticket.resolved_by_bot) == ("reopened", None, False)
    assert ticket.escalated_at is not None
    assert (await outbox(db))[-1].template == "escalated"


async def test_thanks_typed_after_yes_keeps_the_ticket_resolved_by_the_bot(
    fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """A customer presses "yes" and then types their thanks: it reopened the ticket and
    handed it to an agent, for nothing to do."""
    app, client = gateway = await make_gateway(settings, kb=AlwaysAnswers())
    await answered_and_pressed_yes(gateway)
    thanks = load_fixture("private_text")
    thanks["update_id"] += 1
    thanks["message"].update(message_id=12, text="好的，谢谢！👍")
    assert await post_update(client, thanks) == 200
    await app[PIPELINE].drain()
    [ticket] = await tickets(db)
    assert (ticket.status, ticket.resolved_by_bot, ticket.escalated_at) == ("resolved", True, None)
    assert [m.text for m in await messages(db) if m.external_id == "888:12"] == ["好的，谢谢！👍"]
    assert [r.template for r in await outbox(db)] == ["ticket_received", "message"]


def thumbs_up_sticker_from_888(update_id: int, message_id: int) -> dict[str, Any]:
    """The sticker fixture (a 👍 sticker) sent by the private text's sender."""
    update = load_fixture("sticker")
    sender = load_fixture("private_text")["message"]
    update["update_id"] = update_id
    update["message"].update(message_id=message_id, chat=sender["chat"], **{"from": sender["from"]})
    return update


@pytest.mark.parametrize("pressed_yes", [True, False], ids=["after-yes", "after-the-answer"])
async def test_a_thumbs_up_sticker_is_a_thanks_like_the_typed_one(
    pressed_yes: bool, fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """A 👍 sticker, the usual thanks on Telegram, reopened the ticket "yes" had resolved, or
    escalated the one the bot had just answered, and told the customer a person would come."""
    app, client = gateway = await make_gateway(settings, kb=AlwaysAnswers())
    fake.add_file("sticker-1", b"RIFFwebp!", "stickers/file_4.webp")
    if pressed_yes:
        await answered_and_pressed_yes(gateway)
    else:
        assert await post_fixture(client, "private_text") == 200
    await app[PIPELINE].drain()
    assert await post_update(client, thumbs_up_sticker_from_888(1100, 40)) == 200
    await app[PIPELINE].drain()
    [ticket] = await tickets(db)
    assert ticket.status == ("resolved" if pressed_yes else "new")
    assert ticket.escalated_at is None
    assert [r.template for r in await outbox(db)] == ["ticket_received", "message"]
    assert [m.text for m in await messages(db) if m.external_id == "888:40"] == ["👍"]


async def test_thanks_edited_into_a_request_is_taken_up(
    fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """A thanks kept on the resolved ticket, then edited into a new question: the edit only
    rewrote the stored text, so the ticket stayed resolved and no one answered."""
    app, client = gateway = await make_gateway(settings, kb=AlwaysAnswers())
    await answered_and_pressed_yes(gateway)
    thanks = load_fixture("private_text")
    thanks["update_id"] += 1
    thanks["message"].update(message_id=12, text="谢谢")
    assert await post_update(client, thanks) == 200
    await app[PIPELINE].drain()

    def edit(update_id: int, seconds: int, text: str) -> dict[str, Any]:
        message = dict(thanks["message"], text=text, edit_date=thanks["message"]["date"] + seconds)
        return {"update_id": update_id, "edited_message": message}

    assert await post_update(client, edit(1200, 30, "谢谢！👍")) == 200  # still a thanks
    await app[PIPELINE].drain()
    [ticket] = await tickets(db)
    assert ticket.status == "resolved"
    assert [r.template for r in await outbox(db)] == ["ticket_received", "message"]
    assert await post_update(client, edit(1201, 60, "谢谢，那发票怎么开？")) == 200
    assert await post_update(client, edit(1201, 60, "谢谢，那发票怎么开？")) == 200  # redelivered
    await app[PIPELINE].drain()
    [ticket] = await tickets(db)
    assert (ticket.status, ticket.resolved_at) == ("reopened", None)
    answers = [r for r in await outbox(db) if r.template == "message"]
    assert len(answers) == 2  # the knowledge base answered the edited question, once
    [edited] = [m for m in await messages(db) if m.external_id == "888:12"]
    assert edited.text == "谢谢，那发票怎么开？" and edited.routed_at is not None


async def thanks_on_day_six(gateway: Gateway, clock: Clock) -> dict[str, Any]:
    """The bot's answer, "yes" pressed (the ticket resolved), and on day 6 of the 7-day
    reopen window the customer's thanks (kept on the ticket); that message."""
    app, client = gateway
    await answered_and_pressed_yes(gateway)
    clock.now += timedelta(days=6)
    thanks = load_fixture("private_text")
    thanks["update_id"] += 1
    thanks["message"].update(message_id=12, text="谢谢", date=int(clock.now.timestamp()))
    assert await post_update(client, thanks) == 200
    await app[PIPELINE].drain()
    message: dict[str, Any] = thanks["message"]
    return message


async def edit_thanks_past_the_window(
    gateway: Gateway, clock: Clock, texts: list[str]
) -> dict[str, Any]:
    """Thanks on day 6 of the window, then edited into each of ``texts`` (the first 36 hours
    later, past the window; the others an hour apart); the last edited message."""
    app, client = gateway
    thanks = await thanks_on_day_six(gateway, clock)
    edited: dict[str, Any] = {}
    for n, words in enumerate(texts):
        clock.now += timedelta(hours=36 if n == 0 else 1)
        edited = dict(thanks, text=words, edit_date=int(clock.now.timestamp()))
        assert await post_update(client, {"update_id": 1300 + n, "edited_message": edited}) == 200
        await app[PIPELINE].drain()
    return edited


async def test_thanks_edited_into_a_request_after_the_reopen_window_opens_a_follow_up(
    fake: FakeBotAPI,
    settings: Settings,
    make_gateway: MakeGateway,
    db: Store,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Thanks typed on day 6 of the 7-day window, edited into a question 36 hours later
    (Telegram allows edits for 48): the request is taken up as a message sent then would
    be, a follow-up linked to the long-resolved ticket, which stays resolved."""
    app, client = gateway = await make_gateway(settings, kb=AlwaysAnswers())
    thanks = await thanks_on_day_six(gateway, clock)
    clock.now += timedelta(hours=36)
    edited = dict(thanks, text="谢谢，那发票怎么开？", edit_date=int(clock.now.timestamp()))
    inbound = app[TELEGRAM]
    message = inbound._message

    async def dies_before_the_follow_up(update: InboundMessage) -> None:
        raise ConnectionResetError("the process died between the edit and the follow-up")

    monkeypatch.setattr(inbound, "_message", dies_before_the_follow_up)
    assert await post_update(client, {"update_id": 1300, "edited_message": edited}) == 500
    assert len(await tickets(db)) == 1  # the edit is committed, the follow-up not yet
    monkeypatch.setattr(inbound, "_message", message)
    for _ in range(2):  # Telegram's redelivery, and another: one follow-up
        assert await post_update(client, {"update_id": 1300, "edited_message": edited}) == 200
    await app[PIPELINE].drain()
    resolved, follow_up = await tickets(db)
    assert resolved.status == "resolved"
    assert follow_up.parent_id == resolved.id
    assert [m.text for m in await messages(db) if m.ticket_id == follow_up.id] == [
        "谢谢，那发票怎么开？",
        "Orders ship within 48 hours.",
    ]


async def customers_words(db: Store, ticket_id: int) -> list[str]:
    return [m.text for m in await messages(db) if m.ticket_id == ticket_id and m.kind == "incoming"]


@pytest.mark.parametrize(
    "texts",
    [
        pytest.param(["谢谢，订单123没到", "谢谢，订单456没到"], id="corrected"),
        pytest.param(["谢谢，订单123没到", "谢谢", "谢谢，订单456没到"], id="thanks-again"),
    ],
)
async def test_later_edits_of_a_request_taken_up_as_a_follow_up_reach_the_follow_up(
    fake: FakeBotAPI,
    settings: Settings,
    make_gateway: MakeGateway,
    db: Store,
    clock: Clock,
    texts: list[str],
) -> None:
    """Once the edited thanks has opened its follow-up, a correction went to the message on
    the long-resolved ticket, which no one reads; and thanks, then a request again, opened
    the request a second time."""
    gateway = await make_gateway(settings, kb=AlwaysAnswers())
    await edit_thanks_past_the_window(gateway, clock, texts)
    resolved, follow_up = await tickets(db)
    assert follow_up.parent_id == resolved.id
    assert await customers_words(db, follow_up.id) == ["谢谢，订单456没到"]


async def test_a_reply_to_a_request_taken_up_as_a_follow_up_goes_to_the_follow_up(
    fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store, clock: Clock
) -> None:
    app, client = gateway = await make_gateway(settings, kb=AlwaysAnswers())
    request = await edit_thanks_past_the_window(gateway, clock, ["谢谢，订单123没到"])
    await say(client, 888, "/new")
    await say(client, 888, "where is my invoice?")
    assert await post_update(client, replying_to(888, "still missing", request)) == 200
    await app[PIPELINE].drain()
    _, follow_up, _ = await tickets(db)
    assert await customers_words(db, follow_up.id) == ["谢谢，订单123没到", "still missing"]


async def test_feedback_on_someone_elses_ticket_changes_nothing(
    fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    app, client = await make_gateway(settings, kb=AlwaysAnswers())
    assert await post_fixture(client, "private_text") == 200  # 888's ticket G20261122001
    await app[PIPELINE].drain()
    press = load_fixture("callback_query")
    press["callback_query"]["from"] = {"id": 777, "is_bot": False, "first_name": "Ann"}
    press["callback_query"]["message"]["chat"]["id"] = 777
    assert await post_update(client, press) == 200
    [ticket] = await tickets(db)
    assert ticket.escalated_at is None
    assert [m.kind for m in await messages(db)] == ["incoming", "outgoing"]
    assert len(fake.calls_of("answerCallbackQuery")) == 1  # the spinner still stops


async def test_shared_contact_puts_the_phone_on_the_contact_and_merges(
    gateway: Gateway, db: Store
) -> None:
    _, client = gateway
    async with db.write() as session:
        await session.execute(
            insert(Contact).values(
                name="Ann (phone)",
                phone="+8613800138000",
                phone_verified=True,  # proven before (a Telegram account of Ann's shared it)
                email="ann@example.com",
                created_at=NOON,
            )
        )
    text = load_fixture("private_text")
    text["message"]["from"] = {"id": 777, "is_bot": False, "first_name": "Ann"}
    text["message"]["chat"]["id"] = 777
    assert await post_update(client, text) == 200
    async with db.write() as session:  # an agent marked the Telegram contact VIP
        await session.execute(update(Contact).where(Contact.phone.is_(None)).values(vip=True))
    assert await post_fixture(client, "contact") == 200
    assert await post_fixture(client, "contact") == 200  # redelivered: nothing new
    older, newer = await contacts(db)
    assert (older.phone, older.vip) == ("+8613800138000", True)
    assert newer.merged_into_id == older.id
    [identity] = await identities(db)
    assert identity.contact_id == older.id
    assert {t.contact_id for t in await tickets(db)} == {older.id}
    shared = (await messages(db))[-1]
    assert shared.channel_meta["contact"]["phone"] == "+8613800138000"
    assert len(await messages(db)) == 2


async def test_a_number_that_moved_to_another_telegram_account_merges_nothing(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    """A carrier gives Ann's dropped number to Bob, who shares it from his own account: the
    merge showed Bob Ann's tickets and sent him her notices."""
    _, client = gateway
    ann = load_fixture("private_text")
    ann["message"]["from"] = {"id": 777, "is_bot": False, "first_name": "Ann"}
    ann["message"]["chat"]["id"] = 777
    assert await post_update(client, ann) == 200
    assert await post_fixture(client, "contact") == 200  # Ann proves +8613800138000
    bob = load_fixture("contact")
    bob["update_id"] += 100
    bob["message"]["from"] = {"id": 999, "is_bot": False, "first_name": "Bob"}
    bob["message"]["chat"] = {"id": 999, "type": "private", "first_name": "Bob"}
    bob["message"]["contact"]["user_id"] = 999
    assert await post_update(client, bob) == 200
    by_user = {i.external_user_id: i.contact_id for i in await identities(db)}
    found = {c.id: c for c in await contacts(db)}
    ann_contact, bob_contact = found[by_user["777"]], found[by_user["999"]]
    assert ann_contact.id != bob_contact.id and bob_contact.merged_into_id is None
    assert (bob_contact.phone, bob_contact.phone_verified) == ("+8613800138000", True)
    assert ann_contact.phone_verified is False  # her proof lapsed with the number
    assert {t.contact_id for t in await tickets(db)} == {ann_contact.id}


async def test_someone_elses_contact_is_not_put_on_the_sender(gateway: Gateway, db: Store) -> None:
    """Nor dropped: shared with no ticket open, it was neither stored nor answered."""
    app, client = gateway
    assert await post_fixture(client, "contact_of_someone_else") == 200
    await app[PIPELINE].drain()
    [contact] = await contacts(db)
    assert contact.phone is None
    [card] = await messages(db)
    assert card.text == "📇 Bob: +8613900000000"
    [ticket] = await tickets(db)
    assert ticket.escalated_at is not None  # a card is for people, not the knowledge base
    assert [r.template for r in await outbox(db)] == ["ticket_received", "escalated"]


async def test_a_contact_shared_outside_a_conversation_opens_no_ticket(
    gateway: Gateway, db: Store
) -> None:
    _, client = gateway
    assert await post_fixture(client, "contact") == 200
    [contact] = await contacts(db)
    assert (contact.name, contact.phone) == ("Ann Lee", "+8613800138000")
    assert await tickets(db) == []
    assert await outbox(db) == []


async def test_survey_stars_are_recorded_on_the_ticket(
    fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    app, client = await make_gateway(settings, kb=AlwaysAnswers())
    assert await post_fixture(client, "private_text") == 200
    await app[PIPELINE].drain()
    press = load_fixture("callback_query")
    press["callback_query"]["data"] = "r:G20261122001:4"
    assert await post_update(client, press) == 200
    rating = (await messages(db))[-1]
    assert (rating.kind, rating.text) == ("system", "Customer rated the service 4/5")
    assert rating.channel_meta["survey_rating"] == 4
    [ticket] = await tickets(db)
    assert ticket.escalated_at is None


def status_command() -> dict[str, Any]:
    """The private text's sender asks ``/status``."""
    update = load_fixture("command_with_entities")
    update["message"]["chat"] = load_fixture("private_text")["message"]["chat"]
    update["message"]["from"] = load_fixture("private_text")["message"]["from"]
    update["message"]["text"] = "/status"
    update["message"]["entities"][0]["length"] = 7
    return update


@pytest.mark.parametrize(
    "what",
    [
        pytest.param(status_command, id="command"),
        pytest.param(lambda: load_fixture("edited_message"), id="edit"),
        pytest.param(lambda: load_fixture("callback_query"), id="button_press"),
    ],
)
async def test_whatever_a_blocked_user_sends_makes_them_reachable_again(
    gateway: Gateway, db: Store, what: Callable[[], dict[str, Any]]
) -> None:
    """Nobody can send a bot they block anything. Only messages (ingest) used to say so: a
    user whose first act after unblocking was /status, an edit or a button press stayed
    unreachable, and the notices and replies of their open ticket kept failing."""
    _, client = gateway
    assert await post_fixture(client, "private_text") == 200
    async with db.write() as session:
        await session.execute(update(ContactIdentity).values(reachable=False))
    assert await post_update(client, what()) == 200
    [identity] = await identities(db)
    assert identity.reachable is True


async def test_a_user_who_blocked_the_bot_is_reachable_again_after_restart(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    _, client = gateway
    assert await post_fixture(client, "command_with_entities") == 200
    async with db.write() as session:
        await session.execute(update(ContactIdentity).values(reachable=False))
    again = sent_again("command_with_entities")  # the app's "Restart" button sends /start
    assert await post_update(client, again) == 200
    [identity] = await identities(db)
    assert identity.reachable is True
    assert await tickets(db) == []
