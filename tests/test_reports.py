"""Reports: a generated history with known answers gives the exact figures on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from gateway.report_drilldown import Drill, Figure, drill_conditions
from gateway.reports import (
    ReportFilter,
    charts,
    frequent_misses,
    satisfaction_by_category,
    summary,
    time_in_status,
)
from gateway.store import Store
from gateway.store.tables import Category, Contact, KBMiss, Survey, Ticket, TicketEvent
from tests.factories import SHANGHAI

DAY = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
TEN = timedelta(minutes=10)
DAY_SPAN = timedelta(days=1)


def event(ticket_id: int, kind: str, old: str | None, new: str | None, at: datetime) -> TicketEvent:
    return TicketEvent(
        ticket_id=ticket_id,
        kind=kind,
        old_value=old,
        new_value=new,
        actor_type="system",
        created_at=at,
    )


async def history(store: Store) -> None:
    """Ten tickets with set timestamps, statuses and scores."""
    async with store.write() as session:
        contact = Contact(created_at=DAY, vip=False)
        session.add(contact)
        repair = Category(name="repair")
        session.add(repair)
        await session.flush()
        for i in range(10):
            created = DAY + timedelta(hours=i)
            ticket = Ticket(
                number=f"G20261102{i + 1:03d}",
                contact_id=contact.id,
                channel="webchat",
                thread_key=str(i),
                status="resolved" if i < 6 else "in_progress",
                priority="normal",
                need_type="inquiry",
                resolved_by_bot=i < 2,
                category_id=repair.id if i % 2 else None,
                created_at=created,
                updated_at=created,
                # first responses after 10, 20, ... 100 minutes; due after 60 minutes
                first_response_at=created + timedelta(minutes=10 * (i + 1)),
                first_response_due_at=created + timedelta(minutes=60),
                resolution_due_at=created + timedelta(hours=8),
                escalated_at=None if i < 2 else created,
                resolved_at=created + timedelta(hours=2 * (i + 1)) if i < 6 else None,
            )
            session.add(ticket)
            await session.flush()
            if i < 4:  # four surveys answered: 5, 4, 2, 1; one more sent, unanswered
                session.add(
                    Survey(
                        ticket_id=ticket.id,
                        contact_id=contact.id,
                        channel="webchat",
                        due_at=created,
                        sent_at=created,
                        score=[5, 4, 2, 1][i],
                        answered_at=created + timedelta(hours=1),
                        created_at=created,
                    )
                )
            elif i == 4:
                session.add(
                    Survey(
                        ticket_id=ticket.id,
                        contact_id=contact.id,
                        channel="webchat",
                        due_at=created,
                        created_at=created,
                    )
                )
            if i < 2:  # status changes: new -> in progress after 10 (20) min; 0 resolved at 2 h
                session.add_all(
                    [
                        event(ticket.id, "created", None, "new", created),
                        event(ticket.id, "status", "new", "in_progress", created + (i + 1) * TEN),
                    ]
                )
            if i == 0:
                session.add(
                    event(ticket.id, "status", "in_progress", "resolved", created + 12 * TEN)
                )
            if i in (6, 7):  # no progress update for 24 h: reminded (6 twice)
                for n in range(1 if i == 7 else 2):
                    session.add(
                        event(
                            ticket.id, "update_reminder", None, None, created + (n + 1) * DAY_SPAN
                        )
                    )
            if i == 5:
                session.add(
                    TicketEvent(
                        ticket_id=ticket.id,
                        kind="reopened",
                        actor_type="system",
                        created_at=created + timedelta(days=1),
                    )
                )
        # Questions the bot missed: two seen in November, one only in December.
        for kind, question, entry, count, seen in (
            ("unanswered", "怎么退货", "", 5, DAY),
            ("not_helpful", "=cmd|' /C calc'!A0", "returns", 2, DAY + timedelta(days=3)),
            ("unanswered", "old question", "", 9, DAY + timedelta(days=40)),
        ):
            session.add(
                KBMiss(
                    kind=kind,
                    normalized=question,
                    question=question,
                    entry_id=entry,
                    count=count,
                    first_seen=seen,
                    last_seen=seen,
                )
            )
        # A ticket outside the period counts nowhere.
        session.add(
            Ticket(
                number="G20261201001",
                contact_id=contact.id,
                channel="email",
                status="new",
                priority="normal",
                need_type="inquiry",
                resolved_by_bot=False,
                created_at=DAY + timedelta(days=40),
                updated_at=DAY + timedelta(days=40),
            )
        )


async def test_the_monthly_summary_has_the_exact_figures(store: Store) -> None:
    await history(store)
    flt = ReportFilter(
        start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2026, 12, 1, tzinfo=UTC)
    )
    async with store.read() as session:
        report = await summary(session, flt, SHANGHAI)
    assert (report.received, report.resolved, report.reopened) == (10, 6, 1)
    assert (report.escalated, report.resolved_by_bot) == (8, 2)
    assert report.deflection_rate == round(2 / 6, 4)
    # first responses: 600, 1200, ... 6000 s; nearest-rank median = 5th = 3000, p90 = 9th = 5400
    assert report.first_response.count == 10
    assert report.first_response.median_seconds == 3000
    assert report.first_response.p90_seconds == 5400
    # resolutions: 2 h, 4 h, ... 12 h: median = 3rd = 6 h, p90 = 6th = 12 h
    assert report.resolution.median_seconds == 6 * 3600
    assert report.resolution.p90_seconds == 12 * 3600
    assert report.first_response_sla == 0.6  # 10..60 minutes met the 60-minute target
    assert report.satisfaction_counts == {5: 1, 4: 1, 2: 1, 1: 1}
    assert report.satisfaction_mean == 3.0
    assert report.survey_response_rate == 0.8
    assert report.low_score_share == 0.5
    assert report.busiest_hours == {8 + i: 1 for i in range(10)}  # Shanghai local hours
    assert report.resolution_sla == round(4 / 6, 4)  # 2, 4, 6, 8 h met the 8-hour target
    assert report.updates_late == 2  # tickets 7 and 8, however often reminded


async def test_time_in_each_status_and_the_questions_the_bot_missed(store: Store) -> None:
    await history(store)
    async with store.read() as session:
        statuses = await time_in_status(session, MONTH)
        misses = await frequent_misses(session, MONTH)
    # "new" was left after 10 and 20 minutes; "in progress" once, after 2 h - 10 min.
    assert statuses == [("in_progress", 1, 6600.0), ("new", 2, 900.0)]
    # From five minutes after ticket 1 was created: its creation lies before the period, so
    # its first change looks back past the period's own changes, and finds the same answer.
    later = ReportFilter(start=DAY + timedelta(minutes=5), end=MONTH.end)
    async with store.read() as session:
        assert await time_in_status(session, later) == statuses
        webchat = ReportFilter(start=later.start, end=later.end, channel="webchat")
        assert await time_in_status(session, webchat) == statuses  # a filter keeps them all
    assert misses == [
        ("unanswered", "怎么退货", "", 5),
        ("not_helpful", "=cmd|' /C calc'!A0", "returns", 2),
    ]


async def test_filters_and_satisfaction_by_category(store: Store) -> None:
    await history(store)
    flt = ReportFilter(
        start=datetime(2026, 11, 1, tzinfo=UTC),
        end=datetime(2026, 12, 1, tzinfo=UTC),
        channel="email",
    )
    async with store.read() as session:
        assert (await summary(session, flt, SHANGHAI)).received == 0
        month = ReportFilter(start=flt.start, end=flt.end)
        by_category = await satisfaction_by_category(session, month)
    # Uncategorised: scores 5 and 2 (50% satisfied); repair: 4 and 1 (50%).
    assert sorted(by_category, key=lambda row: row[0] or 0) == [(None, 2, 0.5), (1, 2, 0.5)]


# November in the shop's time zone, as the API asks for it.
MONTH = ReportFilter(
    start=datetime(2026, 11, 1, tzinfo=SHANGHAI), end=datetime(2026, 12, 1, tzinfo=SHANGHAI)
)


async def test_the_charts_count_per_local_day_weekday_and_hour(store: Store) -> None:
    await history(store)
    async with store.read() as session:
        found = await charts(session, MONTH, SHANGHAI)
    # Every day of November (Shanghai), zeros included.
    assert [d for d, _, _ in found.days] == [f"2026-11-{n:02d}" for n in range(1, 31)]
    by_day = {d: (received, resolved) for d, received, resolved in found.days}
    # Resolved 2..12 h after 08:00..13:00 local: the last (13:00 + 12 h) falls on 3 November.
    assert by_day["2026-11-02"] == (10, 5)
    assert by_day["2026-11-03"] == (0, 1)
    assert sum(r for _, r, _ in found.days) == 10
    assert found.by_category == [(1, 5), (None, 5)]  # ties: categories first, NULL last
    assert found.by_need_type == [("inquiry", 10)]
    assert found.by_channel == [("webchat", 10)]
    assert found.by_priority == [("normal", 10)]
    # 2 November 2026 is a Monday; the tickets came at 08:00..17:00 local time.
    assert found.heatmap[0] == [1 if 8 <= h <= 17 else 0 for h in range(24)]
    assert all(sum(row) == 0 for row in found.heatmap[1:])


async def _numbers(store: Store, flt: ReportFilter, drill: Drill) -> list[str]:
    async with store.read() as session:
        rows = await session.scalars(
            select(Ticket.number)
            .where(*drill_conditions(session, flt, SHANGHAI, drill))
            .order_by(Ticket.number)
        )
        return list(rows.all())


def _g(*ns: int) -> list[str]:
    return [f"G20261102{n:03d}" for n in ns]


async def test_the_drill_down_lists_the_tickets_behind_each_figure(store: Store) -> None:
    await history(store)
    cases: list[tuple[Drill, list[str]]] = [
        (Drill(), _g(*range(1, 11))),
        (Drill(figure=Figure.RESOLVED), _g(1, 2, 3, 4, 5, 6)),
        (Drill(figure=Figure.RESOLVED, day="2026-11-03"), _g(6)),
        (Drill(figure=Figure.RESOLVED_BY_BOT), _g(1, 2)),
        (Drill(figure=Figure.ESCALATED), _g(*range(3, 11))),
        (Drill(figure=Figure.REOPENED), _g(6)),
        (Drill(figure=Figure.RESPONDED), _g(*range(1, 11))),
        (Drill(figure=Figure.LATE), _g(7, 8, 9, 10)),  # 70..100 minutes against 60
        (Drill(figure=Figure.RATED), _g(1, 2, 3, 4)),
        (Drill(figure=Figure.RATED, low_score=True), _g(3, 4)),
        (Drill(figure=Figure.RATED, score=5), _g(1)),
        (Drill(weekday=0, hour=8), _g(1)),
        (Drill(weekday=1), []),
        (Drill(hour=17), _g(10)),
        (Drill(uncategorised=True), _g(1, 3, 5, 7, 9)),
        (Drill(figure=Figure.RESOLUTION_LATE), _g(5, 6)),  # 10 and 12 h against 8
        (Drill(figure=Figure.UPDATE_LATE), _g(7, 8)),
    ]
    for drill, expected in cases:
        assert await _numbers(store, MONTH, drill) == expected, drill
    repair = ReportFilter(start=MONTH.start, end=MONTH.end, category_id=1)
    assert await _numbers(store, repair, Drill(figure=Figure.RATED)) == _g(2, 4)


async def test_every_chart_figure_is_as_long_as_its_drill_down(store: Store) -> None:
    """The list behind a figure is counted by the same expressions as the figure."""
    await history(store)
    async with store.read() as session:
        found = await charts(session, MONTH, SHANGHAI)
        figures = await summary(session, MONTH, SHANGHAI)
    for day, received, resolved in found.days[:5]:
        assert len(await _numbers(store, MONTH, Drill(day=day))) == received
        resolved_list = await _numbers(store, MONTH, Drill(figure=Figure.RESOLVED, day=day))
        assert len(resolved_list) == resolved
    for hour, count in figures.busiest_hours.items():
        assert len(await _numbers(store, MONTH, Drill(weekday=0, hour=hour))) == count
    for score, count in figures.satisfaction_counts.items():
        assert len(await _numbers(store, MONTH, Drill(figure=Figure.RATED, score=score))) == count


async def test_a_ticket_filter_reaches_reopens_surveys_and_categories(store: Store) -> None:
    """With a filter on tickets, reopens and surveys are counted through their tickets."""
    await history(store)
    webchat = ReportFilter(start=MONTH.start, end=MONTH.end, channel="webchat")
    repair = ReportFilter(start=MONTH.start, end=MONTH.end, category_id=1)
    async with store.read() as session:
        everything = await summary(session, webchat, SHANGHAI)  # every ticket is web chat
        only_repair = await summary(session, repair, SHANGHAI)
        categories = await satisfaction_by_category(session, repair)
    assert (everything.reopened, everything.satisfaction_counts) == (1, {5: 1, 4: 1, 2: 1, 1: 1})
    assert everything.survey_response_rate == 0.8
    # Repair holds the odd tickets: 2 (score 4), 4 (score 1), 6 (reopened); no unanswered survey.
    assert (only_repair.received, only_repair.reopened) == (5, 1)
    assert only_repair.satisfaction_counts == {4: 1, 1: 1}
    assert only_repair.satisfaction_mean == 2.5
    assert only_repair.survey_response_rate == 1.0
    assert categories == [(1, 2, 0.5)]
