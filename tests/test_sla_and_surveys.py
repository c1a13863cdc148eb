"""SLA warnings and breaches at the right moments (with a paused clock), and surveys: quiet
hours, once per ticket, low scores reopening for the supervisor, signed links."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from gateway import desk
from gateway.accounts import create_agent
from gateway.app import create_app
from gateway.dispatch import LeastLoaded
from gateway.models import AgentRole, EventKind, TicketStatus
from gateway.routing import Router
from gateway.settings import SlaSettings, SurveySettings
from gateway.sla import DEFAULT_POLICY, SlaPolicy
from gateway.store import Store
from gateway.store.tables import OutboxRow, Survey, Team, Ticket, TicketEvent
from gateway.surveys import outside_quiet_hours, record_rating, schedule_survey, survey_token
from knowledge_base.base import NeverMatches
from tests.conftest import SECRET, make_settings
from tests.factories import SHANGHAI, Clock, inbound, make_ingest
from workers.sla_sweep import sweep

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
POLICIES = desk.Policies(LeastLoaded(), DEFAULT_POLICY, SurveySettings(), SHANGHAI)


async def escalated_ticket(store: Store, clock: Clock, user: str = "u1") -> int:
    result = await make_ingest(store, clock)(inbound(external_user_id=user, thread_key=user))
    await Router(store, NeverMatches(), clock=clock).route(result.message.id)
    return result.ticket.id


async def kinds(store: Store, ticket_id: int) -> list[str]:
    async with store.read() as session:
        rows = await session.scalars(
            select(TicketEvent.kind)
            .where(TicketEvent.ticket_id == ticket_id)
            .order_by(TicketEvent.id)
        )
        return list(rows.all())


async def test_a_warning_at_80_percent_and_a_breach_at_the_deadline_once_each(
    store: Store,
) -> None:
    clock = Clock(T0)
    ticket_id = await escalated_ticket(store, clock)
    at = T0 + timedelta(hours=19)  # 79% of the 24 h first-response target
    assert (await sweep(store, at, DEFAULT_POLICY)).warned == 0
    at = T0 + timedelta(hours=19, minutes=13)
    assert (await sweep(store, at, DEFAULT_POLICY)).warned == 1
    assert (await sweep(store, at + timedelta(minutes=5), DEFAULT_POLICY)).warned == 0
    due = T0 + timedelta(hours=24)
    assert (await sweep(store, due - timedelta(seconds=1), DEFAULT_POLICY)).breached == 0
    assert (await sweep(store, due, DEFAULT_POLICY)).breached == 1
    assert (await sweep(store, due + timedelta(minutes=1), DEFAULT_POLICY)).breached == 0
    async with store.read() as session:
        ticket = await session.get_one(Ticket, ticket_id)
    assert ticket.overdue_at == due
    assert ticket.priority == "urgent"
    assert (await kinds(store, ticket_id)).count(EventKind.SLA_BREACH) == 1


async def test_the_clock_pauses_while_waiting_for_the_customer(store: Store) -> None:
    clock = Clock(T0)
    ticket_id = await escalated_ticket(store, clock)
    agent_id = await create_agent(
        store, email="a@shop.test", name="A", role=AgentRole.AGENT, password="long enough password"
    )
    actor = desk.Actor(agent_id, "A", may_take_over=True)
    async with store.write() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        await desk.reply(session, ticket, actor, "Could you send a photo?", T0 + timedelta(hours=1))
        await desk.change(
            session,
            ticket,
            actor,
            T0 + timedelta(hours=1),
            fields={"status": TicketStatus.WAITING_CUSTOMER},
            note_text=None,
            policies=POLICIES,
        )
        resolution_due = ticket.resolution_due_at
    assert resolution_due == T0 + timedelta(hours=120)
    # Weeks of waiting for the customer: no warning, no breach.
    report = await sweep(store, T0 + timedelta(hours=200), DEFAULT_POLICY)
    assert (report.warned, report.breached) == (0, 0)
    # Their out-of-office answer is no answer: the clock stays stopped, the customer's turn.
    clock.now = T0 + timedelta(hours=150)
    await make_ingest(store, clock)(
        inbound(external_user_id="u1", thread_key="u1", text="Away", auto_submitted=True)
    )
    async with store.read() as session:
        assert (await session.get_one(Ticket, ticket_id)).status == TicketStatus.WAITING_CUSTOMER
    # The customer answers after 201 hours: the clock runs again, 200 hours later.
    clock.now = T0 + timedelta(hours=201)
    await make_ingest(store, clock)(inbound(external_user_id="u1", thread_key="u1"))
    async with store.read() as session:
        ticket = await session.get_one(Ticket, ticket_id)
    assert ticket.status == TicketStatus.IN_PROGRESS
    assert ticket.waiting_since is None
    assert ticket.resolution_due_at == resolution_due + timedelta(hours=200)


async def test_an_open_ticket_without_an_update_for_24_hours_reminds_once(store: Store) -> None:
    clock = Clock(T0)
    ticket_id = await escalated_ticket(store, clock)
    agent_id = await create_agent(
        store, email="a@shop.test", name="A", role=AgentRole.AGENT, password="long enough password"
    )
    async with store.write() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        await desk.reply(session, ticket, desk.Actor(agent_id, "A", True), "On it", T0)
    assert (await sweep(store, T0 + timedelta(hours=23), DEFAULT_POLICY)).reminded == 0
    assert (await sweep(store, T0 + timedelta(hours=24), DEFAULT_POLICY)).reminded == 1
    assert (await sweep(store, T0 + timedelta(hours=30), DEFAULT_POLICY)).reminded == 0


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
    ("template", "locale", "fragment"),
    [
        ("ticket_received", "en", "We will reply within 24 hours"),
        ("ticket_received", "zh-CN", "24 小时"),
        ("agent_joined", "en", "Ann has joined"),
        ("progress", "zh-CN", "进展：快递已发出"),
        ("resolved", "en", "is resolved"),
        ("survey", "en", "Or rate us here: https://help.shop.test/survey/"),
    ],
)
def test_every_notice_renders_in_both_locales(template: str, locale: str, fragment: str) -> None:
    from workers.templates import TEMPLATES, render, survey_link

    values = {
        "number": "G20261122001",
        "promise": "24 小时" if locale == "zh-CN" else "24 hours",
        "agent": "Ann",
        "text": "快递已发出",
        "link": survey_link("https://help.shop.test/survey/abc", locale),
    }
    assert fragment in render(template, locale, **values)
    assert set(TEMPLATES[template]) == {"zh-CN", "en"}


# --- business hours and holidays (per team, off by default) ------------------------------------

WEEKDAYS_9_TO_6 = {"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "18:00"}


def shanghai(moment: str) -> datetime:
    return datetime.fromisoformat(moment).replace(tzinfo=SHANGHAI).astimezone(UTC)


def business_policy(**sla: object) -> SlaPolicy:
    calendar = {**WEEKDAYS_9_TO_6, "holidays": ["2026-11-30"]}  # Monday off
    return SlaPolicy.from_settings(
        SlaSettings.model_validate({"calendars": {"After-sales": calendar}, **sla}), zone=SHANGHAI
    )


def test_business_time_skips_nights_weekends_and_holidays() -> None:
    hours = business_policy().calendar("After-sales")
    assert hours is not None
    friday_4pm = shanghai("2026-11-27 16:00")
    # Friday 16-18, then Tuesday (Monday is a holiday) 9-11.
    assert hours.add(friday_4pm, timedelta(hours=4)) == shanghai("2026-12-01 11:00")
    assert hours.between(friday_4pm, shanghai("2026-12-01 11:00")) == timedelta(hours=4)
    assert hours.between(shanghai("2026-11-27 19:00"), shanghai("2026-12-01 08:59")) == timedelta()
    # Starting outside working time starts the clock at the next opening.
    assert hours.add(shanghai("2026-11-28 12:00"), timedelta(0)) == shanghai("2026-12-01 09:00")
    assert business_policy().calendar("Logistics") is None  # other teams: around the clock


def test_a_calendar_file_and_bad_calendars(tmp_path: Path) -> None:
    path = tmp_path / "calendars.json"
    path.write_text(json.dumps({"*": {**WEEKDAYS_9_TO_6, "timezone": "Europe/Berlin"}}))
    policy = SlaPolicy.from_settings(SlaSettings(calendars_file=str(path)), zone=SHANGHAI)
    anyone = policy.calendar("Logistics")
    assert anyone is not None and anyone.zone == ZoneInfo("Europe/Berlin")
    bad_calendars: list[dict[str, object]] = [
        {"days": []},
        {"days": [8]},
        {"start": "18:00", "end": "09:00"},
        {"timezone": "Mars/Olympus"},
    ]
    for bad in bad_calendars:
        with pytest.raises(ValidationError):
            SlaSettings.model_validate({"calendars": {"x": bad}})
    assert SlaPolicy.from_settings(SlaSettings()).calendars == {}  # off by default


async def team_ticket(store: Store, clock: Clock, policy: SlaPolicy, priority: str) -> int:
    """An escalated ticket, filed by its agent under After-sales with ``priority``."""
    async with store.write() as session:
        team = Team(name="After-sales")
        session.add(team)
        await session.flush()
        team_id = team.id
    ticket_id = await escalated_ticket(store, clock)
    agent_id = await create_agent(
        store, email="a@shop.test", name="A", role=AgentRole.AGENT, password="long enough password"
    )
    policies = desk.Policies(LeastLoaded(), policy, SurveySettings(), SHANGHAI)
    async with store.write() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        await desk.change(
            session,
            ticket,
            desk.Actor(agent_id, "A", True),
            clock(),
            fields={"team_id": team_id, "priority": priority, "assignee_id": agent_id},
            note_text=None,
            policies=policies,
        )
    return ticket_id


async def test_first_response_warns_and_breaches_in_business_time_over_a_holiday(
    store: Store,
) -> None:
    policy = business_policy()
    clock = Clock(shanghai("2026-11-27 16:00"))  # Friday afternoon, urgent: 4 working hours
    ticket_id = await team_ticket(store, clock, policy, "urgent")

    async def at(moment: str) -> tuple[int, int]:
        report = await sweep(store, shanghai(moment), policy)
        return report.warned, report.breached

    # Around the clock it would be overdue on Friday night; in business time nothing happens
    # before Tuesday (the weekend and Monday's holiday do not count).
    for moment in ("2026-11-27 20:00", "2026-11-29 12:00", "2026-11-30 17:00", "2026-12-01 10:11"):
        assert await at(moment) == (0, 0), moment
    assert await at("2026-12-01 10:12") == (1, 0)  # 80% of 4 h: 3 h 12 min of working time
    assert await at("2026-12-01 10:59") == (0, 0)
    assert await at("2026-12-01 11:00") == (0, 1)
    async with store.read() as session:
        ticket = await session.get_one(Ticket, ticket_id)
    assert ticket.first_response_due_at == shanghai("2026-12-01 11:00")
    assert ticket.overdue_at == shanghai("2026-12-01 11:00")


async def test_the_progress_reminder_counts_working_hours(store: Store) -> None:
    policy = business_policy()
    clock = Clock(shanghai("2026-11-27 17:00"))  # Friday, an hour before closing
    ticket_id = await team_ticket(store, clock, policy, "normal")
    async with store.write() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        assert ticket.assignee_id is not None
        agent = desk.Actor(ticket.assignee_id, "A", True)
        await desk.reply(session, ticket, agent, "On it", clock())

    async def reminded(moment: str) -> int:
        return (await sweep(store, shanghai(moment), policy)).reminded

    # Around the clock the reminder would come on Saturday at 17:00. In working time: Friday's
    # last hour, Monday is a holiday, Tuesday's and Wednesday's 9 hours, then Thursday until
    # 14:00 makes 24.
    for moment in ("2026-11-28 17:00", "2026-12-01 18:00", "2026-12-03 13:59"):
        assert await reminded(moment) == 0, moment
    assert await reminded("2026-12-03 14:00") == 1
    assert await reminded("2026-12-03 17:00") == 0  # once
    async with store.read() as session:
        notes = await session.scalars(
            select(TicketEvent.note).where(TicketEvent.kind == EventKind.UPDATE_REMINDER.value)
        )
        assert list(notes) == ["no progress update to the customer in 24 working hours"]


async def test_resolution_in_business_time_with_the_clock_paused_for_the_customer(
    store: Store,
) -> None:
    policy = business_policy(resolution_hours={"urgent": 8})
    policies = desk.Policies(LeastLoaded(), policy, SurveySettings(), SHANGHAI)
    clock = Clock(shanghai("2026-12-01 09:00"))  # Tuesday
    ticket_id = await team_ticket(store, clock, policy, "urgent")
    actor = desk.Actor(1, "A", True)
    async with store.write() as session:  # answered at 9:30, waiting for the customer at 10:00
        ticket = await session.get_one(Ticket, ticket_id)
        await desk.reply(session, ticket, actor, "Which model is it?", shanghai("2026-12-01 09:30"))
        await desk.change(
            session,
            ticket,
            actor,
            shanghai("2026-12-01 10:00"),
            fields={"status": TicketStatus.WAITING_CUSTOMER},
            note_text=None,
            policies=policies,
        )

    async def at(moment: str) -> tuple[int, int]:
        report = await sweep(store, shanghai(moment), policy)
        return report.warned, report.breached

    assert await at("2026-12-02 14:00") == (0, 0)  # waiting: paused
    clock.now = shanghai("2026-12-02 15:00")  # the customer answers on Wednesday afternoon
    await make_ingest(store, clock)(inbound(external_user_id="u1", thread_key="u1"))
    # 1 h ran before the wait; 80% of 8 h is 6.4 h: Wednesday 15-18, then Thursday 9:00-11:24.
    assert await at("2026-12-03 11:23") == (0, 0)
    assert await at("2026-12-03 11:24") == (1, 0)
    assert await at("2026-12-03 12:59") == (0, 0)
    assert await at("2026-12-03 13:00") == (0, 1)
    async with store.read() as session:
        ticket = await session.get_one(Ticket, ticket_id)
    assert ticket.resolution_due_at == shanghai("2026-12-03 13:00")


async def close_with_survey(store: Store, ticket_id: int, *, survey: bool = True) -> None:
    async with store.write() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        ticket.status, ticket.closed_at = TicketStatus.CLOSED.value, T0
        if survey:
            await schedule_survey(
                session, ticket, T0, settings=SurveySettings(), shop_zone=SHANGHAI
            )


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


@pytest.mark.parametrize(
    ("locale", "picked"),
    [
        ("zh-hans", "zh-CN"),
        ("zh-TW", "zh-CN"),
        (None, "zh-CN"),  # unknown: the shop's language
        ("", "zh-CN"),
        ("en-US", "en"),
        ("ru", "en"),  # a Russian speaker more likely reads English than Chinese
        ("de-DE", "en"),
    ],
)
def test_chinese_or_unknown_is_chinese_any_other_language_english(
    locale: str | None, picked: str
) -> None:
    from workers.templates import pick_locale

    assert pick_locale(locale) == picked
