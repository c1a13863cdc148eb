"""Service-quality figures for supervisors, each computed by the database (SQL aggregates that
run on SQLite and PostgreSQL), never by loading tickets into Python.

Medians and p90s are read by ``ORDER BY ... LIMIT 1 OFFSET k`` after a count, which both
databases answer from their sort; durations are seconds between two timestamps, spelled per
dialect (``julianday`` on SQLite, ``EXTRACT(EPOCH ...)`` on PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Float, and_, case, cast, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import EventKind
from gateway.store.tables import Survey, Ticket, TicketEvent


@dataclass(frozen=True, slots=True)
class ReportFilter:
    """A period ``[start, end)`` and optional filters."""

    start: datetime
    end: datetime
    channel: str | None = None
    team_id: int | None = None
    agent_id: int | None = None
    category_id: int | None = None
    need_type: str | None = None
    priority: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        for column, value in (
            (Ticket.channel, self.channel),
            (Ticket.team_id, self.team_id),
            (Ticket.assignee_id, self.agent_id),
            (Ticket.category_id, self.category_id),
            (Ticket.need_type, self.need_type),
            (Ticket.priority, self.priority),
        ):
            if value is not None:
                found.append(column == value)
        return found

    def within(self, column: Any) -> ColumnElement[bool]:
        return and_(column >= self.start, column < self.end)


@dataclass(frozen=True, slots=True)
class Durations:
    count: int
    median_seconds: float | None
    p90_seconds: float | None


@dataclass(frozen=True, slots=True)
class Summary:
    received: int
    resolved: int
    reopened: int
    escalated: int
    resolved_by_bot: int
    deflection_rate: float | None
    first_response: Durations
    resolution: Durations
    first_response_sla: float | None
    """Share of first responses given in the period that met their target."""
    satisfaction_mean: float | None
    satisfaction_counts: dict[int, int] = field(default_factory=dict)
    survey_response_rate: float | None = None
    low_score_share: float | None = None
    busiest_hours: dict[int, int] = field(default_factory=dict)
    """Tickets received per local hour of the day."""


def _seconds(session: AsyncSession, later: Any, earlier: Any) -> ColumnElement[float]:
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.extract("epoch", later - earlier), Float)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _hour(session: AsyncSession, column: Any, zone: ZoneInfo, at: datetime) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("hour", func.timezone(zone.key, column))
    offset = at.astimezone(zone).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    return cast(func.strftime("%H", column, f"{minutes:+d} minutes"), Float)


async def _durations(
    session: AsyncSession, seconds: ColumnElement[float], where: list[ColumnElement[bool]]
) -> Durations:
    count = int(await session.scalar(select(func.count()).select_from(Ticket).where(*where)) or 0)
    if count == 0:
        return Durations(0, None, None)

    async def at(rank: int) -> float:
        value = await session.scalar(
            select(seconds)
            .select_from(Ticket)
            .where(*where)
            .order_by(seconds)
            .limit(1)
            .offset(rank)
        )
        return float(value or 0.0)

    # Nearest-rank percentiles: the same definition on both databases.
    median = await at((count - 1) // 2)
    p90 = await at(max(0, -(-count * 9 // 10) - 1))
    return Durations(count, round(median, 3), round(p90, 3))


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def summary(session: AsyncSession, flt: ReportFilter, zone: ZoneInfo) -> Summary:
    """Every headline figure of the period."""
    base = flt.conditions()

    async def count(*where: ColumnElement[bool]) -> int:
        total = await session.scalar(select(func.count()).select_from(Ticket).where(*base, *where))
        return int(total or 0)

    received = await count(flt.within(Ticket.created_at))
    resolved = await count(flt.within(Ticket.resolved_at))
    escalated = await count(flt.within(Ticket.escalated_at))
    by_bot = await count(flt.within(Ticket.resolved_at), Ticket.resolved_by_bot.is_(True))
    reopened = int(
        await session.scalar(
            select(func.count())
            .select_from(TicketEvent)
            .join(Ticket, Ticket.id == TicketEvent.ticket_id)
            .where(
                *base,
                TicketEvent.kind == EventKind.REOPENED.value,
                flt.within(TicketEvent.created_at),
            )
        )
        or 0
    )
    first = await _durations(
        session,
        _seconds(session, Ticket.first_response_at, Ticket.created_at),
        [*base, flt.within(Ticket.first_response_at)],
    )
    resolution = await _durations(
        session,
        _seconds(session, Ticket.resolved_at, Ticket.created_at),
        [*base, flt.within(Ticket.resolved_at)],
    )
    on_time = await count(
        flt.within(Ticket.first_response_at),
        Ticket.first_response_at <= Ticket.first_response_due_at,
    )
    scores = await session.execute(
        select(Survey.score, func.count())
        .join(Ticket, Ticket.id == Survey.ticket_id)
        .where(*base, Survey.score.is_not(None), flt.within(Survey.answered_at))
        .group_by(Survey.score)
    )
    counts = {int(score): int(n) for score, n in scores.all() if score is not None}
    answered = sum(counts.values())
    mean = await session.scalar(
        select(func.avg(cast(Survey.score, Float)))
        .join(Ticket, Ticket.id == Survey.ticket_id)
        .where(*base, Survey.score.is_not(None), flt.within(Survey.answered_at))
    )
    sent = int(
        await session.scalar(
            select(func.count())
            .select_from(Survey)
            .join(Ticket, Ticket.id == Survey.ticket_id)
            .where(*base, flt.within(Survey.due_at))
        )
        or 0
    )
    low = sum(n for score, n in counts.items() if score <= 2)
    hour = _hour(session, Ticket.created_at, zone, flt.start)
    hours = await session.execute(
        select(hour, func.count())
        .select_from(Ticket)
        .where(*base, flt.within(Ticket.created_at))
        .group_by(hour)
    )
    return Summary(
        received=received,
        resolved=resolved,
        reopened=reopened,
        escalated=escalated,
        resolved_by_bot=by_bot,
        deflection_rate=_rate(by_bot, resolved),
        first_response=first,
        resolution=resolution,
        first_response_sla=_rate(on_time, first.count),
        satisfaction_mean=round(float(mean), 3) if mean is not None else None,
        satisfaction_counts=counts,
        survey_response_rate=_rate(answered, sent),
        low_score_share=_rate(low, answered),
        busiest_hours={int(h): int(n) for h, n in hours.all()},
    )


async def satisfaction_by_category(
    session: AsyncSession, flt: ReportFilter
) -> list[tuple[int | None, int, float]]:
    """``(category_id, answers, share of 4-5 stars)`` per category, lowest share first; the
    procedure reviews any type whose satisfaction is under 80%."""
    satisfied = func.sum(case((Survey.score >= 4, 1), else_=0))
    rows = await session.execute(
        select(Ticket.category_id, func.count(), cast(satisfied, Float) / func.count())
        .join(Survey, Survey.ticket_id == Ticket.id)
        .where(*flt.conditions(), Survey.score.is_not(None), flt.within(Survey.answered_at))
        .group_by(Ticket.category_id)
        .order_by(literal_column("3"))
    )
    return [(c, int(n), round(float(share), 4)) for c, n, share in rows.all()]
