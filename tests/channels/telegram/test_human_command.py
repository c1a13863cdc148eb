"""``/human`` through the webhook: escalation to people, the words typed after a command,
and "/human" sent as a Reply to an earlier or closed ticket's message."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gateway.appkeys import PIPELINE
from gateway.models import TicketStatus
from gateway.settings import Settings
from gateway.store import Store
from tests.channels.telegram.closed_tickets import close_first_ticket
from tests.channels.telegram.conftest import (
    AlwaysAnswers,
    AsksRecorded,
    Gateway,
    MakeGateway,
    deliver_all,
    messages,
    outbox,
    post_update,
    tickets,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.channels.telegram.private_chat import replying_to, say, text_from
from tests.factories import Clock


async def test_human_escalates_the_open_ticket_through_the_outbox(
    fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    app, client = await make_gateway(settings, kb=AlwaysAnswers())
    await say(client, 777, "/human")  # nothing open yet
    assert fake.sent[-1]["text"].startswith("Please describe your question first")
    await say(client, 777, "when does it ship?")
    await app[PIPELINE].drain()
    [ticket] = await tickets(db)
    assert ticket.escalated_at is None  # the bot answered
    await say(client, 777, "/human")
    [ticket] = await tickets(db)
    assert ticket.escalated_at is not None
    assert [r.template for r in await outbox(db)] == ["ticket_received", "message", "escalated"]
    sent_before = len(fake.sent)
    await say(client, 777, "/human")  # already with people: told so, nothing new owed
    assert len(fake.sent) == sent_before + 1
    assert "G20261122001" in fake.sent[-1]["text"]
    assert len(await outbox(db)) == 3


async def test_what_follows_human_or_new_is_kept_as_the_customers_message(
    fake: FakeBotAPI, settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """Telegram's command menu puts "/human " in the box and people type on: the words used
    to be dropped (the update acknowledged, the agent taking over with no idea why)."""
    kb = AsksRecorded()
    app, client = await make_gateway(settings, kb=kb)
    await say(client, 777, "/human my parcel arrived broken")
    await app[PIPELINE].drain()
    [ticket] = await tickets(db)
    assert ticket.escalated_at is not None
    [message] = await messages(db)
    assert (message.ticket_id, message.text) == (ticket.id, "my parcel arrived broken")
    assert kb.asked == []  # for people, not the knowledge base
    assert [r.template for r in await outbox(db)] == ["ticket_received", "escalated"]

    redelivered = text_from(777, "/new where is my refund?")
    assert await post_update(client, redelivered) == 200
    assert await post_update(client, redelivered) == 200  # the 200 was lost: nothing twice
    await say(client, 777, "it was 30 euros")
    await app[PIPELINE].drain()
    first, second = await tickets(db)
    assert (first.id, first.thread_key) == (ticket.id, f"777/{ticket.number}")
    written = [(m.ticket_id, m.text) for m in await messages(db) if m.kind == "incoming"]
    assert written[1:] == [
        (second.id, "where is my refund?"),
        (second.id, "it was 30 euros"),
    ]
    assert kb.asked == ["where is my refund?", "it was 30 euros"]


async def test_an_edit_of_the_words_after_a_command_corrects_them(
    gateway: Gateway, db: Store, settings: Settings
) -> None:
    """ "/human my parcel G-123 arrived broken" stores its words as the customer's message; the
    customer's edit of the order number was dropped as an edited command, and the agent kept
    the wrong number. An edited command with no words stored still changes nothing."""
    app, client = gateway
    human = text_from(777, "/human my parcel G-123 arrived broken")
    status = text_from(777, "/status")
    for update in (human, status):
        assert await post_update(client, update) == 200
    await app[PIPELINE].drain()

    def edited(update: dict[str, Any], words: str, n: int) -> dict[str, Any]:
        message = dict(update["message"], text=words, edit_date=update["message"]["date"] + 30)
        return {"update_id": update["update_id"] + 100 + n, "edited_message": message}

    assert (
        await post_update(client, edited(human, "/human my parcel G-124 arrived broken", 1)) == 200
    )
    assert await post_update(client, edited(status, "/status please", 2)) == 200
    await app[PIPELINE].drain()
    assert [m.text for m in await messages(db) if m.kind == "incoming"] == [
        "my parcel G-124 arrived broken"
    ]
    assert len(await tickets(db)) == 1


async def test_human_alone_sent_as_a_reply_escalates_the_replied_ticket(
    make_gateway: MakeGateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    app, client = await make_gateway(settings, kb=AlwaysAnswers())  # the bot answers both
    await say(client, 777, "my parcel arrived broken")
    await app[PIPELINE].drain()
    await deliver_all(db, settings)
    notice = fake.sent[0]
    await say(client, 777, "/new")
    await say(client, 777, "where is my invoice?")
    await app[PIPELINE].drain()
    assert [t.escalated_at for t in await tickets(db)] == [None, None]
    assert await post_update(client, replying_to(777, "/human", notice)) == 200
    first, second = await tickets(db)
    assert (first.escalated_at is not None, second.escalated_at) == (True, None)


@pytest.mark.parametrize(("closed_days_ago", "goes_to"), [(1, "replied"), (10, "open")])
async def test_human_alone_replied_to_a_closed_tickets_message_escalates_what_its_words_would(
    make_gateway: MakeGateway,
    db: Store,
    fake: FakeBotAPI,
    settings: Settings,
    clock: Clock,
    closed_days_ago: int,
    goes_to: str,
) -> None:
    """ "/human" sent as a Reply to a message of a ticket closed yesterday escalated the chat's
    other, open ticket (or, with none open, asked the customer to describe a problem they had
    just pointed at). It goes where "/human <words>" would put the words: the replied ticket,
    reopened for people, within the reopen window (7 days); beyond it, the chat's open one."""
    app, client = await make_gateway(settings, kb=AlwaysAnswers())  # the bot answers both
    await say(client, 777, "my parcel arrived broken")
    await app[PIPELINE].drain()
    await deliver_all(db, settings)
    notice = fake.sent[0]
    await close_first_ticket(db, clock.now - timedelta(days=closed_days_ago))
    await say(client, 777, "/new")
    await say(client, 777, "where is my invoice?")
    await app[PIPELINE].drain()
    fake.sent.clear()
    assert await post_update(client, replying_to(777, "/human", notice)) == 200
    first, second = await tickets(db)
    escalated = first if goes_to == "replied" else second
    assert [t.number for t in (first, second) if t.escalated_at is not None] == [escalated.number]
    assert first.status == (TicketStatus.REOPENED if goes_to == "replied" else TicketStatus.CLOSED)
    assert (await outbox(db))[-1].template == "escalated"
    assert (await outbox(db))[-1].ticket_id == escalated.id
    assert fake.sent == []  # the notice goes through the outbox

    await say(client, 777, "/status")
    assert escalated.number in fake.sent[-1]["text"]


async def test_human_alone_replied_to_a_just_closed_ticket_with_nothing_open_reopens_it(
    make_gateway: MakeGateway, db: Store, fake: FakeBotAPI, settings: Settings, clock: Clock
) -> None:
    """With no ticket open, "/human" replied to the closed ticket's message was told
    "Please describe your question first", about the ticket it named."""
    app, client = await make_gateway(settings, kb=AlwaysAnswers())
    await say(client, 777, "my parcel arrived broken")
    await app[PIPELINE].drain()
    await deliver_all(db, settings)
    notice = fake.sent[0]
    await close_first_ticket(db, clock.now - timedelta(hours=3))
    fake.sent.clear()
    assert await post_update(client, replying_to(777, "/human", notice)) == 200
    [ticket] = await tickets(db)
    assert (ticket.status, ticket.escalated_at is not None) == (TicketStatus.REOPENED, True)
    assert fake.sent == []
    assert [r.template for r in await outbox(db)][-1] == "escalated"
