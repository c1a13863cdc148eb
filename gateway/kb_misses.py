"""Questions the knowledge base missed, counted for supervisors to grow it.

Two kinds: ``unanswered`` (the matcher declined and the ticket went to a person) and
``not_helpful`` (the customer said a bot answer did not help; ``entry_id`` names the answer).
The same question (after normalisation) of the same kind adds to one row's count.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.tables import KBMiss
from knowledge_base.text_features import normalize_text

_SPACES = re.compile(r"\s+")
_MAX_NORMALIZED = 500  # the column's length


class MissKind(StrEnum):
    UNANSWERED = "unanswered"
    NOT_HELPFUL = "not_helpful"


@dataclass(frozen=True, slots=True)
class Miss:
    """One counted question, as supervisors see it."""

    kind: MissKind
    question: str
    entry_id: str | None
    count: int
    last_ticket_id: int | None
    first_seen: datetime
    last_seen: datetime


def normalized_question(text: str) -> str:
    """The key that makes "Where is my order?" and "where is my  order" one miss."""
    folded = _SPACES.sub(" ", normalize_text(text)).strip(" ?？!！.。")
    return folded[:_MAX_NORMALIZED]


async def record_miss(
    session: AsyncSession,
    kind: MissKind,
    question: str,
    *,
    ticket_id: int | None,
    now: datetime,
    entry_id: str | None = None,
) -> None:
    """Count one miss in the caller's transaction (an atomic upsert: safe under concurrency).

    Args:
        session: The open write transaction (routing's, or the feedback's).
        kind: Why it is a miss.
        question: The customer's words, kept as last asked.
        ticket_id: The ticket it came from (the latest one is kept).
        now: When it happened.
        entry_id: For ``not_helpful``: the entry whose answer was rejected.
    """
    key = normalized_question(question)
    if not key:
        return
    values = {
        "kind": kind.value,
        "normalized": key,
        "question": question,
        "entry_id": entry_id or "",
        "count": 1,
        "last_ticket_id": ticket_id,
        "first_seen": now,
        "last_seen": now,
    }
    await session.execute(_upsert(session.get_bind().dialect.name), values)


@functools.cache
def _upsert(dialect: str) -> Insert:
    """The counting upsert, built once per dialect (building it cost ~1 ms of CPU per miss).

    ON CONFLICT DO UPDATE: a select-then-insert would race two routing batches into a
    unique violation that rolls back the whole batch.
    """
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(KBMiss)
    return statement.on_conflict_do_update(
        index_elements=["kind", "normalized", "entry_id"],
        set_={
            "count": KBMiss.count + 1,
            "question": statement.excluded.question,
            "last_ticket_id": statement.excluded.last_ticket_id,
            "last_seen": statement.excluded.last_seen,
        },
    )


async def list_misses(
    session: AsyncSession, *, kind: MissKind | None = None, limit: int = 100
) -> list[Miss]:
    """The misses, most frequent first (then the most recent)."""
    query = select(KBMiss).order_by(KBMiss.count.desc(), KBMiss.last_seen.desc(), KBMiss.id)
    if kind is not None:
        query = query.where(KBMiss.kind == kind.value)
    rows = await session.scalars(query.limit(limit))
    return [
        Miss(
            kind=MissKind(row.kind),
            question=row.question,
            entry_id=row.entry_id or None,
            count=row.count,
            last_ticket_id=row.last_ticket_id,
            first_seen=row.first_seen,
            last_seen=row.last_seen,
        )
        for row in rows
    ]
