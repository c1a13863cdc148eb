"""SLA clocks in business time: per-team calendars (off by default) that skip nights,
weekends and holidays, for first response, progress reminders and resolution."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from gateway import desk
from gateway.accounts import create_agent
from gateway.dispatch import LeastLoaded
from gateway.models import AgentRole, EventKind, TicketStatus
from gateway.settings import SlaSettings, SurveySettings
from gateway.sla import SlaPolicy
from gateway.store import Store
from gateway.store.tables import Team, Ticket, TicketEvent
from tests.factories import SHANGHAI, Clock, inbound, make_ingest
from tests.timed_tickets import escalated_ticket
from workers.sla_sweep import sweep

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
