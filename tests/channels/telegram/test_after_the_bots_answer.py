"""What a customer sends once the bot's answer resolved the ticket: "no" pressed after
"yes", thanks typed or sent as a sticker, and thanks edited into a new request."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from channels.telegram.inbound import TELEGRAM
from gateway.appkeys import PIPELINE
from gateway.models import InboundMessage
from gateway.settings import Settings
from gateway.store import Store
from tests.channels.telegram.conftest import (
    AlwaysAnswers,
    Gateway,
    MakeGateway,
    load_fixture,
    messages,
    outbox,
    post_fixture,
    post_update,
    tickets,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.channels.telegram.private_chat import replying_to, say
from tests.factories import Clock


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
