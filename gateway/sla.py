"""Service-level targets: when a ticket's first response is due, by priority.

The defaults follow the operating procedure (critical 2 h, urgent 4 h, normal 24 h); business
hours, pauses and resolution targets belong to the SLA sweep (workers).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.models import Priority

FIRST_RESPONSE: dict[Priority, timedelta] = {
    Priority.CRITICAL: timedelta(hours=2),
    Priority.URGENT: timedelta(hours=4),
    Priority.NORMAL: timedelta(hours=24),
}


def first_response_due(priority: Priority | str, since: datetime) -> datetime:
    """When the first response to a ticket of ``priority`` opened at ``since`` is due."""
    return since + FIRST_RESPONSE[Priority(priority)]
