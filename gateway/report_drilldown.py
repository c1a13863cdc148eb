"""The drill-down: which tickets are behind a figure of the report.

Each list is selected with the same expressions that counted its figure (the same period, the
same local day, weekday and hour), so a list is exactly as long as the number it explains.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, exists
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import EventKind
from gateway.reports import ReportFilter, local_time
from gateway.store.tables import Survey, Ticket, TicketEvent


class Figure(StrEnum):
    """A figure of the report whose tickets can be listed (the drill-down)."""

    RECEIVED = "received"
    RESOLVED = "resolved"
    RESOLVED_BY_BOT = "resolved_by_bot"
    ESCALATED = "escalated"
    REOPENED = "reopened"
    RESPONDED = "responded"
    """Given their first response in the period."""
    LATE = "first_response_late"
    """First response given in the period, after its target."""
    RATED = "rated"
    """Survey answered in the period."""
    RESOLUTION_LATE = "resolution_late"
    """Resolved in the period, after the target."""
    UPDATE_LATE = "update_late"
    """Reminded in the period: no progress update for 24 hours."""


@dataclass(frozen=True, slots=True)
class Drill:
    """Which tickets are behind a figure: the figure, then the slice of a chart."""

    figure: Figure = Figure.RECEIVED
    day: str | None = None
    """A local day ``YYYY-MM-DD`` (a point of the trend)."""
    weekday: int | None = None
    """0 = Monday (a row of the heat map)."""
    hour: int | None = None
    """A local hour (a column of the heat map)."""
    score: int | None = None
    """Only surveys with this score (``rated``)."""
    low_score: bool = False
    """Only surveys scored 2 or less (``rated``)."""
    uncategorised: bool = False


_TIMED: dict[Figure, Any] = {
    Figure.RECEIVED: Ticket.created_at,
    Figure.RESOLVED: Ticket.resolved_at,
    Figure.RESOLVED_BY_BOT: Ticket.resolved_at,
    Figure.ESCALATED: Ticket.escalated_at,
    Figure.RESPONDED: Ticket.first_response_at,
    Figure.LATE: Ticket.first_response_at,
    Figure.RESOLUTION_LATE: Ticket.resolved_at,
}


def drill_conditions(
    session: AsyncSession, flt: ReportFilter, zone: ZoneInfo, drill: Drill
) -> list[ColumnElement[bool]]:
    """The ``WHERE`` of the tickets behind a figure: the same expressions that counted it, so
    the list is exactly as long as the figure (a reopened ticket is listed once however often
    it was reopened)."""
    found = flt.conditions()
    if drill.uncategorised:
        found.append(Ticket.category_id.is_(None))

    def timed(column: Any) -> list[ColumnElement[bool]]:
        local = local_time(session, column, zone, flt.start)
        where = [flt.within(column)]
        if drill.day is not None:
            where.append(local.day == drill.day)
        if drill.weekday is not None:
            where.append(local.weekday == drill.weekday)
        if drill.hour is not None:
            where.append(local.hour == drill.hour)
        return where

    if drill.figure in (Figure.REOPENED, Figure.UPDATE_LATE):
        kind = EventKind.REOPENED if drill.figure is Figure.REOPENED else EventKind.UPDATE_REMINDER
        found.append(
            exists().where(
                TicketEvent.ticket_id == Ticket.id,
                TicketEvent.kind == kind.value,
                *timed(TicketEvent.created_at),
            )
        )
    elif drill.figure is Figure.RATED:
        scored: list[ColumnElement[bool]] = [Survey.score.is_not(None)]
        if drill.score is not None:
            scored.append(Survey.score == drill.score)
        if drill.low_score:
            scored.append(Survey.score <= 2)
        found.append(
            exists().where(Survey.ticket_id == Ticket.id, *scored, *timed(Survey.answered_at))
        )
    else:
        found += timed(_TIMED[drill.figure])
        if drill.figure is Figure.RESOLVED_BY_BOT:
            found.append(Ticket.resolved_by_bot.is_(True))
        elif drill.figure is Figure.LATE:
            found.append(Ticket.first_response_at > Ticket.first_response_due_at)
        elif drill.figure is Figure.RESOLUTION_LATE:
            found.append(Ticket.resolved_at > Ticket.resolution_due_at)
    return found
