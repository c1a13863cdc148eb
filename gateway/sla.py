"""Service-level targets: when a ticket's first response and resolution are due.

The defaults follow the operating procedure (first response: critical 2 h, urgent 4 h, normal
24 h); ``GATEWAY_SLA__*`` changes them. The clock pauses while a ticket waits for the customer:
leaving that state moves the due times later by the time spent waiting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.models import Priority
from gateway.settings import SlaSettings


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    first_response: Mapping[Priority, timedelta]
    resolution: Mapping[Priority, timedelta]
    update_every: timedelta
    warn_at: float

    @classmethod
    def from_settings(cls, settings: SlaSettings) -> SlaPolicy:
        def hours(table: Mapping[str, float]) -> dict[Priority, timedelta]:
            return {p: timedelta(hours=table.get(p.value, 24)) for p in Priority}

        return cls(
            first_response=hours(settings.first_response_hours),
            resolution=hours(settings.resolution_hours),
            update_every=timedelta(hours=settings.update_hours),
            warn_at=settings.warn_at,
        )

    def first_response_due(self, priority: Priority | str, since: datetime) -> datetime:
        return since + self.first_response[Priority(priority)]

    def resolution_due(self, priority: Priority | str, since: datetime) -> datetime:
        return since + self.resolution[Priority(priority)]


DEFAULT_POLICY = SlaPolicy.from_settings(SlaSettings())
