"""Parts of what a customer sent as one: the router routes their words for them all.

A channel marks each part with ``channel_meta["part_of"]`` (Telegram's ``media_group_id``: an
album comes as a message per photo, the caption on one of them only). A part without words
is no question of its own: escalating it as "only people can read this" while the knowledge
base answers the caption told the customer both at once, where one photo with the same
caption got the answer alone. So a wordless part goes with the part whose words the router
asks (:attr:`PartGroup.asked`); while none has come, it waits for the group to fall quiet.

The wait is measured from the group's newest part as stored, not from when a part is routed:
the parts are handed over one at a time (each after its file is downloaded), so a caption on
the last of many files may come long after the first, but never long after the one before it.
Measured from the stored rows, a redelivered part, a reroute and the sweep all decide alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.ingest.acknowledgements import is_acknowledgement
from gateway.models import MessageKind
from gateway.store.tables import TicketMessage

NOT_ASKED = ("text_from", "rating", "auto_submitted")
"""Metadata saying a message's words are no question for the knowledge base: words a channel
made or meant for people (``text_from``), a survey's rating, an automatic mail's. Ingest stores
the last two already routed: nothing is asked, so they cannot speak for a photo beside them (a
photo that reopened a closed ticket, next to a "5" for its survey, must reach people)."""


@dataclass(frozen=True, slots=True)
class PartGroup:
    """The stored parts of one ``part_of`` group on a ticket."""

    asked: bool
    """A part's words go to the router as a question: the wordless parts go with them."""
    first: datetime
    newest: datetime

    def wait(self, now: datetime, *, quiet: float, cap: timedelta) -> float | None:
        """Seconds before a wordless part is decided, or None to decide now: while the group's
        newest part is younger than ``quiet`` seconds, the words may still come; past ``cap``
        from the first part, a stream of parts is not waited for any longer."""
        if self.asked or now - self.first >= cap:
            return None
        left = quiet - (now - self.newest).total_seconds()
        return left if left > 0 else None


async def part_group(session: AsyncSession, ticket_id: int, part_of: str) -> PartGroup:
    """The incoming parts of ``part_of`` stored on the ticket (at least the one asking)."""
    rows = (
        await session.execute(
            select(
                TicketMessage.text,
                TicketMessage.attachments,
                TicketMessage.channel_meta,
                TicketMessage.created_at,
            ).where(
                TicketMessage.ticket_id == ticket_id,
                TicketMessage.kind == MessageKind.INCOMING.value,
                TicketMessage.channel_meta["part_of"].as_string() == part_of,
            )
        )
    ).all()
    stored = [row.created_at for row in rows]
    return PartGroup(
        asked=any(_asks(row.text, row.attachments, row.channel_meta) for row in rows),
        first=min(stored),
        newest=max(stored),
    )


def _asks(text: str, attachments: list[Any], meta: Mapping[str, Any]) -> bool:
    """Whether the router puts this part's words to the knowledge base (or escalates them as
    a request for people). Not a bare "thanks", which ingest stores routed, as it does the
    metadata in :data:`NOT_ASKED`."""
    if not text.strip() or any(meta.get(key) for key in NOT_ASKED):
        return False
    return bool(attachments) or not is_acknowledgement(text)
