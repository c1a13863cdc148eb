"""``/new`` and Telegram's "Reply" through the webhook: which ticket a chat's message joins
once the chat has more than one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from gateway.appkeys import PIPELINE
from gateway.models import TicketStatus
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import Ticket
from tests.channels.telegram.closed_tickets import close_first_ticket
from tests.channels.telegram.conftest import Gateway, deliver_all, messages, post_update, tickets
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.channels.telegram.private_chat import replying_to, say, text_from
from tests.factories import Clock


async def test_new_starts_a_new_ticket_and_the_old_one_keeps_its_messages(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    _, client = gateway
    await say(client, 777, "first problem")
    await say(client, 777, "more about it")
    await say(client, 777, "/new")
    assert fake.sent[-1]["text"] == "OK, your next message will start a new ticket."
    await say(client, 777, "second problem")
    await say(client, 777, "more about the second")
    first, second = await tickets(db)
    by_ticket = [(m.ticket_id, m.text) for m in await messages(db)]
    assert by_ticket == [
        (first.id, "first problem"),
        (first.id, "more about it"),
        (second.id, "second problem"),
        (second.id, "more about the second"),
    ]
    assert second.thread_key == "777"
    assert first.thread_key == f"777/{first.number}"


async def test_a_reply_to_an_earlier_tickets_message_goes_to_that_ticket(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """After ``/new`` the chat's messages open and follow the new ticket; one sent with
    Telegram's "Reply" to a message of the earlier ticket (the bot's or the user's own) went
    there too, where the agent working the earlier one never saw it."""
    app, client = gateway
    question = text_from(777, "my parcel arrived broken")
    assert await post_update(client, question) == 200
    await app[PIPELINE].drain()
    assert (await deliver_all(db, settings))[0] == "sent"
    notice = fake.sent[0]
    await say(client, 777, "/new")
    await say(client, 777, "where is my invoice?")

    crushed = replying_to(777, "order 42, the box was crushed", notice)
    assert await post_update(client, crushed) == 200
    assert await post_update(client, replying_to(777, "photo below", question["message"])) == 200
    await say(client, 777, "invoice number 9")
    first, second = await tickets(db)
    assert [(m.ticket_id, m.text) for m in await messages(db)] == [
        (first.id, "my parcel arrived broken"),
        (second.id, "where is my invoice?"),
        (first.id, "order 42, the box was crushed"),
        (first.id, "photo below"),
        (second.id, "invoice number 9"),
    ]
    # Another user's reply naming this chat's message id finds nothing of theirs.
    stranger = text_from(778, "hello")
    stranger["message"]["reply_to_message"] = {"message_id": notice["message_id"]}
    assert await post_update(client, stranger) == 200
    assert (await tickets(db))[-1].contact_id != first.contact_id


async def test_words_after_a_command_sent_as_a_reply_go_where_the_command_says(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """After ``/new``, "/human ..." sent as a Reply to the first ticket's message put its
    words on the newer ticket, where the first ticket's agent never saw them. "/new ..." as
    a Reply still opens a new ticket: that is what it asks for."""
    app, client = gateway
    await say(client, 777, "my parcel arrived broken")
    await app[PIPELINE].drain()
    await deliver_all(db, settings)
    notice = fake.sent[0]  # the first ticket's "we received it"
    await say(client, 777, "/new")
    await say(client, 777, "where is my invoice?")
    assert await post_update(client, replying_to(777, "/human it broke again", notice)) == 200
    assert await post_update(client, replying_to(777, "/new a third thing", notice)) == 200
    await app[PIPELINE].drain()
    first, second, third = await tickets(db)
    assert [(m.ticket_id, m.text) for m in await messages(db) if m.kind == "incoming"] == [
        (first.id, "my parcel arrived broken"),
        (second.id, "where is my invoice?"),
        (first.id, "it broke again"),
        (third.id, "a third thing"),
    ]
    assert first.escalated_at is not None  # "/human": for people, the knowledge base skipped


@pytest.mark.parametrize(("closed_days_ago", "goes_to"), [(10, "open"), (1, "replied")])
async def test_a_reply_to_a_long_closed_tickets_message_goes_where_the_chat_goes(
    gateway: Gateway,
    db: Store,
    fake: FakeBotAPI,
    settings: Settings,
    clock: Clock,
    closed_days_ago: int,
    goes_to: str,
) -> None:
    """A reply to a message of a ticket closed beyond its reopen window (7 days) opened a
    follow-up of that ticket, which took the chat over: the open ticket's agent heard no
    more. Within the window the reply reopens the ticket it answers."""
    app, client = gateway
    assert await post_update(client, text_from(777, "my parcel arrived broken")) == 200
    await app[PIPELINE].drain()
    assert (await deliver_all(db, settings))[0] == "sent"
    notice = fake.sent[0]
    (old,) = await tickets(db)
    async with db.write() as session:
        closed = await session.get_one(Ticket, old.id)
        closed.status = TicketStatus.CLOSED.value
        closed.closed_at = clock.now - timedelta(days=closed_days_ago)
    await say(client, 777, "/new")
    await say(client, 777, "where is my invoice?")
    assert await post_update(client, replying_to(777, "broken again", notice)) == 200
    await say(client, 777, "invoice number 9")
    first, second = await tickets(db)  # no follow-up ticket
    expected = first.id if goes_to == "replied" else second.id
    assert [(m.ticket_id, m.text) for m in await messages(db)][-2:] == [
        (expected, "broken again"),
        (second.id, "invoice number 9"),
    ]
    assert (first.status == TicketStatus.REOPENED) is (goes_to == "replied")


async def test_a_reply_to_a_long_closed_ticket_with_nothing_open_opens_its_follow_up(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings, clock: Clock
) -> None:
    """With no ticket open in the chat (the latest resolved yesterday, or none after
    ``/new``), a reply to a ticket closed ten days ago opens a follow-up linked to it: not
    a reopening of the unrelated latest ticket, nor a ticket with no link."""
    app, client = gateway
    await say(client, 777, "my parcel arrived broken")
    await app[PIPELINE].drain()
    await deliver_all(db, settings)
    notice = fake.sent[0]
    await close_first_ticket(db, clock.now - timedelta(days=10))
    await say(client, 777, "how do I change my address?")  # a follow-up, resolved yesterday
    async with db.write() as session:
        latest = await session.scalar(select(Ticket).order_by(Ticket.id.desc()).limit(1))
        assert latest is not None
        latest.status = TicketStatus.RESOLVED.value
        latest.resolved_at = clock.now - timedelta(days=1)
    assert await post_update(client, replying_to(777, "broken again", notice)) == 200
    await say(client, 777, "/new")
    assert await post_update(client, replying_to(777, "and the lid too", notice)) == 200
    await app[PIPELINE].drain()
    first, address, again, lid = await tickets(db)
    assert address.status == TicketStatus.RESOLVED
    assert again.parent_id == lid.parent_id == first.id
    assert [(m.ticket_id, m.text) for m in await messages(db)][-2:] == [
        (again.id, "broken again"),
        (lid.id, "and the lid too"),
    ]
