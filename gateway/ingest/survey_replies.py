"""Replies that answer a survey: a customer who writes just "3" back to a closed ticket's survey
is rating it, not asking a new question (issue 8: an emailed survey may be answered by a digit).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import DONE_STATUSES, InboundMessage, TicketStatus
from gateway.store.tables import Survey

SURVEYS: Table = Survey.__table__  # type: ignore[assignment]

REPEAT_WINDOW = timedelta(hours=1)
"""How long after a rating a one-digit reply is still about the survey."""

_SCORE = re.compile(r"\s*([1-5])\s*[.!。！]?\s*")


def survey_score(text: str) -> int | None:
    """The score in a reply that is just one digit 1-5 (full-width digits too), else None."""
    reply = text.strip()  # str.strip and the pattern's \s take off the same whitespace
    if len(reply) > 2 and not reply[1:-1].isspace():
        # Not a digit and a stop with only spaces between. Every message is asked, and
        # normalising each whole one was 1.5% of an update's CPU in a py-spy profile.
        return None
    match = _SCORE.fullmatch(unicodedata.normalize("NFKC", text))
    return int(match.group(1)) if match else None


async def awaiting_rating(
    session: AsyncSession,
    tickets: Iterable[dict[str, Any]],
    messages: Sequence[InboundMessage],
    now: datetime,
) -> set[int]:
    """Ids of the closed ``tickets`` (rows) whose survey is out and unanswered, or answered
    within :data:`REPEAT_WINDOW`: a digit typed right after the stars were pressed (or after
    another digit) repeats or corrects the rating, where it reopened the closed ticket and
    went to an agent as a question.

    Asked only when some message of the batch could be a rating, so the common batch pays nothing.
    """
    if not any(survey_score(m.text) is not None for m in messages):
        return set()
    done = [t["id"] for t in tickets if TicketStatus(t["status"]) in DONE_STATUSES]
    if not done:
        return set()
    found = await session.scalars(
        select(SURVEYS.c.ticket_id).where(
            SURVEYS.c.ticket_id.in_(done),
            or_(SURVEYS.c.answered_at.is_(None), SURVEYS.c.answered_at >= now - REPEAT_WINDOW),
            SURVEYS.c.due_at <= now,
        )
    )
    return set(found.all())
