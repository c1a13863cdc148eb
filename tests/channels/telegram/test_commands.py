"""``/status``, ``/new`` and ``/human`` through the webhook."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from channels.telegram.commands import STATUS_SHOWN
from gateway.appkeys import PIPELINE
from gateway.models import Channel, InboundMessage, TicketStatus
from gateway.settings import Settings, SurveySettings
from gateway.store import Store
from gateway.store.tables import Contact, ContactIdentity, Survey, Ticket
from gateway.surveys import schedule_survey
from tests.channels.telegram.conftest import (
    AlwaysAnswers,
    AsksRecorded,
    Client,
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
    tickets,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.factories import NOON, Clock

_next_id = iter(range(2000, 9999))


def text_from(user_id: int, text: str, *, language: str = "en") -> dict[str, Any]:
    """A private message from ``user_id``; a leading ``/word`` is marked as a command."""
    update = load_fixture("private_text")
    n = next(_next_id)
    message = update["message"]
    update["update_id"] = n
    message["message_id"] = n
    message["chat"] = {"id": user_id, "type": "private", "first_name": f"U{user_id}"}
    message["from"] = {
        "id": user_id,
        "is_bot": False,
        "first_name": f"U{user_id}",
        "language_code": language,
    }
    message["text"] = text
    if text.startswith("/"):
        message["entities"] = [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]
    return update


async def say(client: Client, user_id: int, text: str, **kwargs: Any) -> None:
    assert await post_update(client, text_from(user_id, text, **kwargs)) == 200


def replying_to(user_id: int, text: str, to: dict[str, Any]) -> dict[str, Any]:
    """A private message sent with Telegram's "Reply" to the chat's message ``to``."""
    update = text_from(user_id, text)
    update["message"]["reply_to_message"] = {
        "message_id": to["message_id"],
        "chat": update["message"]["chat"],
        "date": update["message"]["date"],
        "text": to["text"],
    }
    return update


async def test_status_shows_only_the_senders_own_open_tickets(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    app, client = gateway
    await say(client, 777, "my parcel is late")  # G20261122001, Ann's
    await say(client, 888, "退货怎么办")  # G20261122002, Li's
    await say(client, 777, "/new")
    await say(client, 777, "and the invoice is wrong")  # G20261122003, Ann's
    await app[PIPELINE].drain()
    fake.sent.clear()

    await say(client, 777, "/status")
    [answer] = fake.sent
    assert answer["chat_id"] == 777
    assert answer["text"].splitlines() == [
        "Your open tickets:",
        "G20261122003 · received",
        "G20261122001 · received",
    ]
    await say(client, 888, "/status", language="zh-hans")
    assert fake.sent[1]["text"].splitlines() == ["您处理中的工单：", "G20261122002 · 已受理"]
    await say(client, 999, "/status")
    assert fake.sent[2]["text"] == "You have no open tickets."
    assert not any(m.text == "/status" for m in await messages(db))  # commands are not stored


async def test_a_number_typed_into_a_form_does_not_hand_its_tickets_to_who_shares_it(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    """A web chat visitor typed Ann's number in the pre-chat form. When Ann shares it as her
    own, the visitor's contact used to take her Telegram identity: her /status listed the
    visitor's tickets (and the visitor's contact hers)."""
    app, client = gateway
    async with db.write() as session:
        visitor = await session.scalar(
            insert(Contact)
            .values(name="Visitor", phone="+8613800138000", vip=False, created_at=NOON)
            .returning(Contact.id)
        )
        await session.execute(
            insert(ContactIdentity).values(
                contact_id=visitor, channel="webchat", external_user_id="sess-1", created_at=NOON
            )
        )
    inbound = InboundMessage(
        channel=Channel.WEBCHAT,
        external_id="w1",
        external_user_id="sess-1",
        text="the visitor's own question",
        thread_key="sess-1",
    )
    await app[PIPELINE].on_message(inbound)  # G20261122001, the visitor's
    await say(client, 777, "my parcel is late")  # G20261122002, Ann's
    assert await post_fixture(client, "contact") == 200  # Ann's own number (user_id 777)
    await app[PIPELINE].drain()
    fake.sent.clear()

    await say(client, 777, "/status")
    assert fake.sent[0]["text"].splitlines() == ["Your open tickets:", "G20261122002 · received"]
    [ann] = [i for i in await identities(db) if i.channel == "telegram"]
    assert ann.contact_id != visitor
    assert [(c.phone, c.phone_verified) for c in await contacts(db)] == [
        ("+8613800138000", False),  # typed: no proof
        ("+8613800138000", True),  # shared by its owner
    ]


async def test_status_of_a_customer_with_many_open_tickets_fits_one_message(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    """Listed whole, a long enough list passes Telegram's 4,096 characters: refused with 400,
    the update would never be acknowledged. The newest are named, the rest counted."""
    app, client = gateway
    for n in range(STATUS_SHOWN + 3):
        await say(client, 777, f"order {n} is late")
        await say(client, 777, "/new")
    await app[PIPELINE].drain()
    numbers = [t.number for t in await tickets(db)]
    assert len(numbers) == STATUS_SHOWN + 3
    fake.sent.clear()

    await say(client, 777, "/status")
    [answer] = fake.sent
    lines = answer["text"].splitlines()
    assert lines[0] == "Your open tickets:"
    assert [line.split(" · ")[0] for line in lines[1:-1]] == numbers[::-1][:STATUS_SHOWN]
    assert lines[-1] == "…and 3 more open tickets."
    await say(client, 777, "/status", language="zh-hans")
    assert fake.sent[-1]["text"].splitlines()[-1] == "……另有 3 个处理中的工单。"


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


async def close_first_ticket(db: Store, closed_at: datetime) -> Ticket:
    async with db.write() as session:
        (ticket,) = (await session.scalars(select(Ticket))).all()
        ticket.status = TicketStatus.CLOSED.value
        ticket.resolved_at = ticket.closed_at = closed_at
        return ticket


async def surveyed_after_closing(
    gateway: Gateway, db: Store, settings: Settings, closed_at: datetime
) -> Ticket:
    """Chat 777's ticket, closed at ``closed_at``, and its survey sent."""
    app, client = gateway
    await say(client, 777, "my parcel arrived broken")
    await app[PIPELINE].drain()
    closed = await close_first_ticket(db, closed_at)
    async with db.write() as session:
        closed = await session.get_one(Ticket, closed.id)
        await schedule_survey(
            session,
            closed,
            closed_at,
            settings=SurveySettings(),
            shop_zone=ZoneInfo("Asia/Shanghai"),
        )
    await deliver_all(db, settings)
    return closed


async def test_a_digit_replied_to_a_long_closed_tickets_survey_rates_it(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings, clock: Clock
) -> None:
    """The survey of a ticket closed ten days ago, answered with "Reply" and "1" while
    another ticket is open: a rating of the old one, not a question on the open one."""
    app, client = gateway
    await surveyed_after_closing(gateway, db, settings, clock.now - timedelta(days=10))
    [row] = [r for r in await outbox(db) if r.kind == "survey"]
    [survey] = [s for s in fake.sent if s["message_id"] == int(row.external_id or 0)]
    await say(client, 777, "/new")
    await say(client, 777, "where is my invoice?")
    assert await post_update(client, replying_to(777, "1", survey)) == 200
    await app[PIPELINE].drain()
    first, second = await tickets(db)
    async with db.read() as session:
        rating = await session.scalar(select(Survey.score).where(Survey.ticket_id == first.id))
    assert rating == 1
    assert [m.text for m in await messages(db) if m.ticket_id == second.id] == [
        "where is my invoice?"
    ]


async def test_a_survey_digit_corrected_by_an_edit_corrects_the_rating(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings, clock: Clock
) -> None:
    """The survey answered "5", then the digit edited to the 1 the customer meant: the stored
    text followed, the survey kept 5 stars, and the low score reached no supervisor."""
    _, client = gateway
    old = await surveyed_after_closing(gateway, db, settings, clock.now - timedelta(days=1))
    rating = text_from(777, "5")
    assert await post_update(client, rating) == 200

    def edited(digit: str, seconds: int) -> dict[str, Any]:
        message = dict(rating["message"], text=digit, edit_date=rating["message"]["date"] + seconds)
        return {"update_id": rating["update_id"] + seconds, "edited_message": message}

    async def score() -> int | None:
        async with db.read() as session:
            return await session.scalar(select(Survey.score).where(Survey.ticket_id == old.id))

    assert await score() == 5
    assert await post_update(client, edited("1", 20)) == 200
    assert await score() == 1
    [ticket] = await tickets(db)
    assert ticket.status == TicketStatus.REOPENED  # the low score's follow-up
    assert await post_update(client, edited("1 sorry, I meant one", 40)) == 200
    assert await score() == 1  # words, not a new score: the rating stands
    assert len(await tickets(db)) == 1


async def test_a_rating_edited_once_the_ticket_is_taken_up_again_leaves_it_be(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings, clock: Clock
) -> None:
    """ "5" rated the closed ticket; the customer wrote again and an agent took it up; the
    old "5" edited to "1" then reopened it for the supervisor, as if it were done."""
    app, client = gateway
    old = await surveyed_after_closing(gateway, db, settings, clock.now - timedelta(hours=2))
    rating = text_from(777, "5")
    assert await post_update(client, rating) == 200
    clock.now += timedelta(hours=2)  # past the hour in which a digit re-rates
    await say(client, 777, "the replacement is broken too")
    await app[PIPELINE].drain()
    async with db.write() as session:  # an agent takes it up
        ticket = await session.get_one(Ticket, old.id)
        assert ticket.status == TicketStatus.REOPENED
        ticket.status = TicketStatus.IN_PROGRESS.value
    message = dict(rating["message"], text="1", edit_date=rating["message"]["date"] + 3600)
    assert await post_update(client, {"update_id": 9990, "edited_message": message}) == 200
    [ticket] = await tickets(db)
    assert ticket.status == TicketStatus.IN_PROGRESS
    async with db.read() as session:
        score = await session.scalar(select(Survey.score).where(Survey.ticket_id == old.id))
    assert score == 5


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


async def test_a_command_delivered_again_is_answered_once(
    gateway: Gateway, fake: FakeBotAPI
) -> None:
    """Telegram delivers an update again when its 200 was lost (the gateway stopped after the
    answer went): the command is not carried out and answered twice. One whose answer failed
    is answered when it comes again, and the chat's next command as usual."""
    _, client = gateway
    status = text_from(777, "/status")
    assert await post_update(client, status) == 200
    assert await post_update(client, status) == 200
    assert len(fake.sent) == 1

    failing = text_from(777, "/status")
    fake.fail_next("sendMessage", 502, "Bad Gateway")
    assert await post_update(client, failing) != 200  # Telegram will deliver it again
    assert len(fake.sent) == 1
    assert await post_update(client, failing) == 200
    assert len(fake.sent) == 2

    await say(client, 777, "/status")
    assert len(fake.sent) == 3


async def test_commands_are_answered_after_telegram_numbers_updates_afresh(
    gateway: Gateway, fake: FakeBotAPI
) -> None:
    """After a week without updates Telegram numbers the next from a random id, maybe lower:
    a chat's commands were taken for answered while their ids stayed below the recorded one."""
    _, client = gateway
    before = text_from(777, "/start")
    before["update_id"] = 900_000
    assert await post_update(client, before) == 200
    after = text_from(777, "/status")
    after["update_id"] = 12_345
    assert await post_update(client, after) == 200
    assert await post_update(client, after) == 200  # delivered again: answered once
    assert [s["text"] for s in fake.sent][1:] == ["You have no open tickets."]


async def test_a_command_whose_answer_telegram_refuses_is_not_retried(
    gateway: Gateway, fake: FakeBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """A 400 is final: the same answer would be refused on every redelivery while the chat's
    next updates wait behind it. The update is acknowledged, the refusal logged, the command
    not run again; the chat's next command is answered."""
    _, client = gateway
    status = text_from(779, "/status")
    fake.fail_next("sendMessage", 400, "Bad Request: chat not found")
    with caplog.at_level(logging.WARNING, logger="channels.telegram.commands"):
        assert await post_update(client, status) == 200
    [record] = [r for r in caplog.records if "refused the answer" in r.getMessage()]
    assert record.error == "Chat not found"  # type: ignore[attr-defined]
    assert await post_update(client, status) == 200  # delivered again: already handled
    assert len(fake.calls_of("sendMessage")) == 1
    await say(client, 779, "/status")
    assert len(fake.sent) == 1


async def test_a_command_from_a_user_who_then_blocked_the_bot_is_not_retried(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    """The answer is refused with 403: the update is acknowledged (a redelivery would be
    refused the same way), the identity marked unreachable, and the command not run again."""
    _, client = gateway
    await say(client, 778, "/start")
    fake.blocked.add(778)
    status = text_from(778, "/status")
    assert await post_update(client, status) == 200
    [identity] = await identities(db)
    assert identity.reachable is False
    assert await post_update(client, status) == 200  # delivered again: already handled
    assert [s["chat_id"] for s in fake.sent] == [778]  # the welcome only
    fake.blocked.discard(778)
    await say(client, 778, "/start")  # the app's "Restart": reachable again
    [identity] = await identities(db)
    assert identity.reachable is True


async def test_help_and_commands_not_ours_are_answered_and_open_no_ticket(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    """Telegram's apps suggest ``/help`` and ``/settings``: stored, each opened a ticket of
    "/help" for an agent, and its customer was told to wait for one."""
    _, client = gateway
    await say(client, 611, "/help")
    await say(client, 611, "/settings@gateway_test_bot", language="zh-hans")
    assert [s["text"].splitlines()[-1] for s in fake.sent] == [
        "/status your tickets · /new start a new question · /human talk to a person",
        "/status 查看您的工单 · /new 开始新的问题 · /human 转人工客服",
    ]
    assert await tickets(db) == [] and await messages(db) == []
    # A command not ours with words after it is what the customer wrote.
    await say(client, 611, "/order42 never arrived")
    await gateway[0][PIPELINE].drain()
    assert [m.text for m in await messages(db)] == ["/order42 never arrived"]


async def test_a_command_addressed_to_another_bot_is_the_customers_text(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    """Telegram names the bot a command is for after an ``@`` (``/status@other_bot``, pasted
    from a group or another bot's chat): it was answered as ours. It is what the customer
    wrote, stored for the agent like any text; one addressed to us (in any case, as
    Telegram's usernames go) is still carried out, and our username asked for once."""
    app, client = gateway
    await say(client, 777, "/status@other_bot")
    await app[PIPELINE].drain()
    assert [m.text for m in await messages(db)] == ["/status@other_bot"]
    assert len(await tickets(db)) == 1
    assert not any(s["text"].startswith("Your open tickets") for s in fake.sent)

    fake.sent.clear()
    await say(client, 777, "/status@Gateway_Test_Bot")
    await say(client, 777, "/settings@gateway_test_bot")
    assert [s["text"].splitlines()[0] for s in fake.sent] == [
        "Your open tickets:",
        "Just send us your question (text, a photo or a file) and we will answer shortly.",
    ]
    assert len(await messages(db)) == 1
    assert len(fake.calls_of("getMe")) == 1


async def test_words_after_help_are_the_customers_question(
    make_gateway: MakeGateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """People ask for help by typing "/help" and their problem: the bot answered with what
    it does, and the problem was dropped (acknowledged, stored nowhere, seen by no one).
    The words are the customer's message, as after /human or /new; "/help" alone is still
    answered with what the bot does."""
    kb = AsksRecorded()
    app, client = await make_gateway(settings, kb=kb)
    asked = text_from(777, "/help my parcel arrived broken")
    for _ in range(2):  # the second is Telegram redelivering it
        assert await post_update(client, asked) == 200
    await app[PIPELINE].drain()
    [ticket] = await tickets(db)
    assert [(m.ticket_id, m.text) for m in await messages(db) if m.kind == "incoming"] == [
        (ticket.id, "my parcel arrived broken")
    ]
    assert kb.asked == ["my parcel arrived broken"]
    assert not any(s["text"].startswith("Just send us your question") for s in fake.sent)
    await say(client, 777, "/help")
    assert fake.sent[-1]["text"].startswith("Just send us your question")


async def test_stars_pressed_once_the_ticket_is_taken_up_again_leave_it_with_its_agent(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings, clock: Clock
) -> None:
    """Telegram keeps the survey's stars: pressed after the customer wrote again and an agent
    took the ticket up, one star reopened it "for the supervisor" from under that agent, as
    a survey digit edited then did. The press is shown on the ticket; the rating counts only
    while the ticket is done, as a typed one does."""
    app, client = gateway
    old = await surveyed_after_closing(gateway, db, settings, clock.now - timedelta(hours=2))
    [survey] = [s for s in fake.sent if "reply_markup" in s]
    stars = survey["reply_markup"]["inline_keyboard"][0]
    await say(client, 777, "the replacement is broken too")
    await app[PIPELINE].drain()
    async with db.write() as session:  # an agent takes it up
        ticket = await session.get_one(Ticket, old.id)
        assert ticket.status == TicketStatus.REOPENED
        ticket.status = TicketStatus.IN_PROGRESS.value
    press = load_fixture("callback_query")
    press["callback_query"]["from"] = {"id": 777, "is_bot": False, "first_name": "U777"}
    press["callback_query"]["message"]["chat"]["id"] = 777
    press["callback_query"]["data"] = stars[0]["callback_data"]
    assert await post_update(client, press) == 200
    [ticket] = await tickets(db)
    assert ticket.status == TicketStatus.IN_PROGRESS
    async with db.read() as session:
        score = await session.scalar(select(Survey.score).where(Survey.ticket_id == old.id))
    assert score is None
    assert (await messages(db))[-1].text == "Customer rated the service 1/5"


async def test_stars_pressed_again_right_after_a_low_score_correct_it(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings, clock: Clock
) -> None:
    """One star pressed for five (the buttons sit side by side) reopens the ticket for the
    supervisor; five pressed right after still corrects the score, as a digit typed within
    the hour does, and the follow-up stays."""
    _, client = gateway
    old = await surveyed_after_closing(gateway, db, settings, clock.now - timedelta(hours=2))
    [survey] = [s for s in fake.sent if "reply_markup" in s]
    stars = survey["reply_markup"]["inline_keyboard"][0]
    for n, star in enumerate((0, 4)):
        press = load_fixture("callback_query")
        press["callback_query"]["id"] = f"press-{n}"
        press["callback_query"]["from"] = {"id": 777, "is_bot": False, "first_name": "U777"}
        press["callback_query"]["message"]["chat"]["id"] = 777
        press["callback_query"]["data"] = stars[star]["callback_data"]
        assert await post_update(client, press) == 200
        clock.now += timedelta(minutes=1)
    [ticket] = await tickets(db)
    assert ticket.status == TicketStatus.REOPENED  # the low score's follow-up
    async with db.read() as session:
        score = await session.scalar(select(Survey.score).where(Survey.ticket_id == old.id))
    assert score == 5


async def test_a_command_without_a_language_code_is_answered_in_the_contacts_language(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    """Telegram's ``language_code`` is optional: without it an English customer's commands
    and button presses were answered in Chinese, while their notices, which follow the
    contact's language, came in English. Nothing known of them at all: Chinese."""
    app, client = gateway
    await say(client, 777, "my parcel is late")  # language_code "en": the contact's
    await app[PIPELINE].drain()
    fake.sent.clear()
    for user in (777, 779):
        update = text_from(user, "/status")
        del update["message"]["from"]["language_code"]
        assert await post_update(client, update) == 200
    assert [s["text"].splitlines()[0] for s in fake.sent] == [
        "Your open tickets:",
        "您目前没有处理中的工单。",
    ]
    press = load_fixture("callback_query")
    press["callback_query"]["from"] = {"id": 777, "is_bot": False, "first_name": "U777"}
    press["callback_query"]["message"]["chat"]["id"] = 777
    assert await post_update(client, press) == 200
    [answer] = fake.calls_of("answerCallbackQuery")
    assert answer.params["text"] == "Thank you for your feedback!"
