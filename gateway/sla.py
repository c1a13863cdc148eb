"""Service-level targets: when a ticket's first response and resolution are due.

The defaults follow the operating procedure (first response: critical 2 h, urgent 4 h, normal
24 h); ``GATEWAY_SLA__*`` changes them. The clock pauses while a ticket waits for the customer:
leaving that state moves the due times later by the time spent waiting.

A team may have business hours and holidays (``GATEWAY_SLA__CALENDARS`` or the JSON file named by
``GATEWAY_SLA__CALENDARS_FILE``; off by default). Its tickets' clocks then run only inside working
time: the SLA sweep measures elapsed business time and writes the due times it implies back to
the ticket (the team is known only once the ticket is dispatched, after it was stored).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter

from gateway.models import Priority
from gateway.settings import BusinessCalendar, SlaSettings

_SHOP_ZONE = ZoneInfo("Asia/Shanghai")
_CALENDARS = TypeAdapter(dict[str, BusinessCalendar])
_LONGEST_SEARCH = 3 * 366
"""Days :meth:`BusinessHours.add` walks before giving up (a calendar that is all holidays)."""


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Working time: ``start``-``end`` local time on ``days`` (ISO numbers) except ``holidays``."""

    zone: ZoneInfo
    days: frozenset[int]
    start: time
    end: time
    holidays: frozenset[date] = frozenset()

    @classmethod
    def from_settings(cls, calendar: BusinessCalendar, shop_zone: ZoneInfo) -> BusinessHours:
        zone = ZoneInfo(calendar.timezone) if calendar.timezone else shop_zone
        days, holidays = frozenset(calendar.days), frozenset(calendar.holidays)
        return cls(zone, days, calendar.start, calendar.end, holidays)

    def _open(self, day: date) -> tuple[datetime, datetime] | None:
        if day.isoweekday() not in self.days or day in self.holidays:
            return None
        opens = datetime.combine(day, self.start, tzinfo=self.zone).astimezone(UTC)
        closes = datetime.combine(day, self.end, tzinfo=self.zone).astimezone(UTC)
        return opens, closes

    def _periods(self, since: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working periods (UTC) that end after ``since``, in order, clipped to start at it."""
        day = since.astimezone(self.zone).date()
        for _ in range(_LONGEST_SEARCH):
            period = self._open(day)
            if period is not None and period[1] > since:
                yield max(period[0], since), period[1]
            day += timedelta(days=1)
        raise ValueError("no working time in three years: check the SLA calendar")

    def between(self, since: datetime, until: datetime) -> timedelta:
        """Working time from ``since`` to ``until`` (zero if ``until`` is not later)."""
        total = timedelta()
        if until <= since:
            return total
        for opens, closes in self._periods(since):
            if opens >= until:
                break
            total += min(closes, until) - opens
        return total

    def add(self, since: datetime, duration: timedelta) -> datetime:
        """The moment ``duration`` of working time after ``since`` has passed."""
        left = duration
        for opens, closes in self._periods(since):
            if left <= closes - opens:
                return opens + left
            left -= closes - opens
        raise AssertionError("unreachable: _periods raises first")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    first_response: Mapping[Priority, timedelta]
    resolution: Mapping[Priority, timedelta]
    update_every: timedelta
    warn_at: float
    calendars: Mapping[str, BusinessHours] = field(default_factory=dict)
    """Business hours by team name; ``"*"`` covers teams not named."""

    @classmethod
    def from_settings(cls, settings: SlaSettings, *, zone: ZoneInfo = _SHOP_ZONE) -> SlaPolicy:
        def hours(table: Mapping[str, float]) -> dict[Priority, timedelta]:
            return {p: timedelta(hours=table.get(p.value, 24)) for p in Priority}

        configured: dict[str, BusinessCalendar] = {}
        if settings.calendars_file:
            text = Path(settings.calendars_file).read_text(encoding="utf-8")
            configured.update(_CALENDARS.validate_python(json.loads(text)))
        configured.update(settings.calendars)
        return cls(
            first_response=hours(settings.first_response_hours),
            resolution=hours(settings.resolution_hours),
            update_every=timedelta(hours=settings.update_hours),
            warn_at=settings.warn_at,
            calendars={
                name: BusinessHours.from_settings(c, zone) for name, c in configured.items()
            },
        )

    def first_response_due(self, priority: Priority | str, since: datetime) -> datetime:
        return since + self.first_response[Priority(priority)]

    def resolution_due(self, priority: Priority | str, since: datetime) -> datetime:
        return since + self.resolution[Priority(priority)]

    def calendar(self, team: str | None) -> BusinessHours | None:
        """The business hours a team's tickets run on; ``None``: around the clock."""
        if team is not None and team in self.calendars:
            return self.calendars[team]
        return self.calendars.get("*")


DEFAULT_POLICY = SlaPolicy.from_settings(SlaSettings())
