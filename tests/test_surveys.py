"""Surveys: quiet hours, once per ticket, low scores reopening for the supervisor, signed
links, and a one-digit reply taken as the rating."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from gateway import desk
from gateway.accounts import create_agent
from gateway.app import create_app
from gateway.models import AgentRole, EventKind, TicketStatus
from gateway.store import Store
from gateway.store.tables import OutboxRow, Survey, Ticket
from gateway.surveys import outside_quiet_hours, record_rating, survey_token
from tests.conftest import SECRET, make_settings
from tests.factories import SHANGHAI, Clock, inbound, make_ingest
from tests.timed_tickets import POLICIES, T0, close_with_survey, escalated_ticket, kinds


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-11-22 12:00", "2026-11-22 12:00"),
        ("2026-11-22 22:00", "2026-11-23 08:00"),
        ("2026-11-22 23:30", "2026-11-23 08:00"),
        ("2026-11-23 07:59", "2026-11-23 08:00"),
        ("2026-11-23 08:00", "2026-11-23 08:00"),
    ],
)
def test_quiet_hours_defer_to_eight_in_the_morning(local: str, expected: str) -> None:
    moment = datetime.fromisoformat(local).replace(tzinfo=SHANGHAI)
    deferred = outside_quiet_hours(moment, SHANGHAI, time(22), time(8))
    assert deferred.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") == expected


async def test_closing_owes_one_survey_deferred_out_of_the_contacts_quiet_hours(
    store: Store,
) -> None:
    late = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
    clock = Clock(late)
    ticket_id = await escalated_ticket(store, clock)
    actor = desk.Actor(1, "A", True)
    for _ in range(2):  # closing twice owes one survey
        async with store.write() as session:
            ticket = await session.get_one(Ticket, ticket_id)
            await desk.change(
                session,
                ticket,
                actor,
                late,
                fields={"status": TicketStatus.CLOSED},
                note_text=None,
                policies=POLICIES,
            )
            ticket.status = TicketStatus.RESOLVED.value
    async with store.read() as session:
        surveys = (await session.scalars(select(Survey))).all()
        owed = (await session.scalars(select(OutboxRow).where(OutboxRow.kind == "survey"))).all()
    assert len(surveys) == len(owed) == 1
    morning = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
    assert surveys[0].due_at == owed[0].due_at == morning


async def test_a_low_score_reopens_the_ticket_for_the_supervisor(store: Store) -> None:
    clock = Clock(T0)
    ticket_id = await escalated_ticket(store, clock)
    boss = await create_agent(
        store,
        email="boss@shop.test",
        name="Boss",
        role=AgentRole.SUPERVISOR,
        password="long enough password",
    )
    async with store.write() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        ticket.status, ticket.closed_at = TicketStatus.CLOSED.value, T0
        await record_rating(session, ticket, 1, "still broken", T0 + timedelta(hours=1))
    async with store.read() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        survey = await session.scalar(select(Survey).where(Survey.ticket_id == ticket_id))
    assert (ticket.status, ticket.assignee_id) == (TicketStatus.REOPENED, boss)
    assert survey is not None
    assert (survey.score, survey.comment) == (1, "still broken")


async def test_a_good_score_changes_nothing_but_the_survey(store: Store) -> None:
    ticket_id = await escalated_ticket(store, Clock(T0))
    async with store.write() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        ticket.status = TicketStatus.CLOSED.value
        await record_rating(session, ticket, 5, None, T0)
    async with store.read() as session:
        assert (await session.get_one(Ticket, ticket_id)).status == TicketStatus.CLOSED


async def test_a_change_of_mind_to_a_low_score_is_followed_up_once(store: Store) -> None:
    """5 stars and then 1 left a low score in the reports that no supervisor was told of."""
    ticket_id = await escalated_ticket(store, Clock(T0))
    boss = await create_agent(
        store, email="boss@shop.test", name="Boss", role=AgentRole.SUPERVISOR, password="x" * 12
    )

    async def rate(score: int, minutes: int) -> None:
        async with store.write() as session:
            ticket = await session.get_one(Ticket, ticket_id)
            await record_rating(session, ticket, score, None, T0 + timedelta(minutes=minutes))

    async with store.write() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        ticket.status, ticket.closed_at = TicketStatus.CLOSED.value, T0
    await rate(5, 10)
    await rate(5, 11)  # the same stars again: nothing new
    assert (await kinds(store, ticket_id)).count(EventKind.RATED) == 1
    await rate(1, 12)
    async with store.read() as session:
        ticket = await session.get_one(Ticket, ticket_id)
    assert (ticket.status, ticket.assignee_id) == (TicketStatus.REOPENED, boss)
    await rate(2, 13)  # still low: followed up already
    events = await kinds(store, ticket_id)
    assert events.count(EventKind.REOPENED) == 1 and events.count(EventKind.RATED) == 3
    async with store.read() as session:
        survey = await session.scalar(select(Survey).where(Survey.ticket_id == ticket_id))
    assert survey is not None and survey.score == 2
    # An agent takes the follow-up over; the customer goes 5, then 1 again. The supervisor
    # was told once: the ticket stays with the agent, and is not reopened a second time.
    helper = await create_agent(
        store, email="amy@shop.test", name="Amy", role=AgentRole.AGENT, password="x" * 12
    )
    async with store.write() as session:
        (await session.get_one(Ticket, ticket_id)).assignee_id = helper
    await rate(5, 14)
    await rate(1, 15)
    async with store.read() as session:
        ticket = await session.get_one(Ticket, ticket_id)
    assert (ticket.status, ticket.assignee_id) == (TicketStatus.REOPENED, helper)
    assert (await kinds(store, ticket_id)).count(EventKind.REOPENED) == 1


async def test_a_digit_after_the_survey_page_keeps_the_words_written_there(store: Store) -> None:
    ticket_id = await escalated_ticket(store, Clock(T0))
    async with store.write() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        ticket.status, ticket.closed_at = TicketStatus.CLOSED.value, T0
        await record_rating(session, ticket, 3, "the courier was late", T0 + timedelta(hours=1))
    async with store.write() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        await record_rating(session, ticket, 4, None, T0 + timedelta(hours=1, minutes=5))
    async with store.read() as session:
        survey = await session.scalar(select(Survey).where(Survey.ticket_id == ticket_id))
    assert survey is not None
    assert (survey.score, survey.comment) == (4, "the courier was late")


Client = TestClient[web.Request, web.Application]


async def test_the_emailed_survey_link(
    aiohttp_client: object, store: Store, db_url: str, redis_url: str
) -> None:
    ticket_id = await escalated_ticket(store, Clock(T0))
    client: Client = await aiohttp_client(  # type: ignore[operator]
        create_app(make_settings(database_url=db_url, redis_url=redis_url, outbox_relay=False))
    )
    now = datetime.now(UTC)
    good = survey_token(SECRET, ticket_id, now + timedelta(days=14))
    expired = survey_token(SECRET, ticket_id, now - timedelta(seconds=1))
    forged = survey_token("another secret", ticket_id, now + timedelta(days=14))
    tampered = good[:-1] + ("1" if good.endswith("0") else "0")  # never the good token itself
    for token in (expired, forged, tampered):
        assert (await client.get(f"/survey/{token}")).status == 403
        assert (await client.post(f"/survey/{token}", data={"score": "5"})).status == 403
    page = await client.get(f"/survey/{good}")
    assert page.status == 200
    assert 'name="score"' in await page.text()
    async with store.read() as session:  # a link scanner's GET recorded nothing
        assert await session.scalar(select(Survey)) is None
    bad = await client.post(f"/survey/{good}", data={"score": "9"})
    assert bad.status == 400
    done = await client.post(f"/survey/{good}", data={"score": "4", "comment": "快\x00"})
    assert done.status == 200  # a NUL, which PostgreSQL's text cannot hold, is dropped
    async with store.read() as session:
        survey = await session.scalar(select(Survey))
    assert survey is not None
    assert (survey.score, survey.comment) == (4, "快")


@pytest.mark.parametrize(
    ("reply", "score", "status"), [("5", 5, "closed"), ("２。", 2, "reopened")]
)
async def test_a_one_digit_reply_to_the_survey_is_the_rating(
    store: Store, reply: str, score: int, status: str
) -> None:
    clock = Clock(T0)
    ticket_id = await escalated_ticket(store, clock)
    await close_with_survey(store, ticket_id)
    clock.now = T0 + timedelta(hours=1)
    result = await make_ingest(store, clock)(
        inbound(external_user_id="u1", thread_key="u1", text=reply)
    )
    assert (result.ticket.id, result.new_ticket, result.reopened) == (ticket_id, False, False)
    assert result.routed  # a rating is not a question for the bot
    async with store.read() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        survey = await session.scalar(select(Survey).where(Survey.ticket_id == ticket_id))
    assert survey is not None and survey.score == score
    assert ticket.status == status  # only a low score reopens it, as a follow-up
    assert EventKind.RATED in await kinds(store, ticket_id)


async def test_a_digit_without_a_survey_out_is_an_ordinary_message(store: Store) -> None:
    clock = Clock(T0)
    ticket_id = await escalated_ticket(store, clock)
    await close_with_survey(store, ticket_id, survey=False)
    clock.now = T0 + timedelta(hours=1)
    result = await make_ingest(store, clock)(
        inbound(external_user_id="u1", thread_key="u1", text="3")
    )
    assert (result.ticket.id, result.reopened) == (ticket_id, True)
    async with store.read() as session:
        assert await session.scalar(select(Survey).where(Survey.ticket_id == ticket_id)) is None


async def test_a_digit_typed_right_after_the_stars_repeats_the_rating(store: Store) -> None:
    """Pressed 5 stars, then typed "5" too: the digit reopened the closed ticket and went to
    an agent as a question, the survey being answered already."""
    clock = Clock(T0)
    ticket_id = await escalated_ticket(store, clock)
    await close_with_survey(store, ticket_id)
    async with store.write() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        await record_rating(session, ticket, 5, None, T0 + timedelta(hours=1))
    ingest = make_ingest(store, clock)
    clock.now = T0 + timedelta(hours=1, minutes=2)
    again = await ingest(inbound(external_user_id="u1", thread_key="u1", text="5"))
    assert (again.ticket.id, again.reopened, again.routed) == (ticket_id, False, True)
    assert again.ticket.status == TicketStatus.CLOSED
    assert (await kinds(store, ticket_id)).count(EventKind.RATED) == 1
    # Long after the rating, a digit is an ordinary reply again.
    clock.now = T0 + timedelta(hours=3)
    later = await ingest(inbound(external_user_id="u1", thread_key="u1", text="3"))
    assert later.reopened
