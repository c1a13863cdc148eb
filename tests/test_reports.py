"""Reports: a generated history with known answers gives the exact figures on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.reports import ReportFilter, satisfaction_by_category, summary
from gateway.store import Store
from gateway.store.tables import Category, Contact, Survey, Ticket, TicketEvent
from tests.factories import SHANGHAI

DAY = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai


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
            if i == 5:
                session.add(
                    TicketEvent(
                        ticket_id=ticket.id,
                        kind="reopened",
                        actor_type="system",
                        created_at=created + timedelta(days=1),
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
