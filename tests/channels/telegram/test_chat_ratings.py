"""Survey ratings given in the Telegram chat: a digit typed or sent as a Reply, a digit
edited, and the survey's stars pressed late or twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from gateway.appkeys import PIPELINE
from gateway.models import TicketStatus
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import Survey, Ticket
from tests.channels.telegram.closed_tickets import surveyed_after_closing
from tests.channels.telegram.conftest import (
    Gateway,
    load_fixture,
    messages,
    outbox,
    post_update,
    tickets,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.channels.telegram.private_chat import replying_to, say, text_from
from tests.factories import Clock


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
