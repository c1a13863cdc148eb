"""Edits of a customer's stored Telegram message: its new words, files and content put in
place of the old, what they replaced kept, a redelivered edit changing nothing.

Telegram sends an edit as an ``edited_message`` update with the message's ids (the same
``external_id`` as the message stored) and an ``edit_date``; ``inbound.py`` parses it as any
message and hands it here, in its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.telegram.conversations import CHANNEL, MESSAGES, TICKETS
from gateway.ingest.acknowledgements import is_acknowledgement
from gateway.ingest.survey_replies import survey_score
from gateway.models import DONE_STATUSES, InboundMessage
from gateway.reopening import EditTakeUp, take_up_edit
from gateway.store.tables import Ticket
from gateway.surveys import record_rating


async def stored_files(session: AsyncSession, external_id: str) -> StoredFiles | None:
    """The files of the chat's stored message ``external_id``; None if it is not stored."""
    row = (
        await session.execute(
            select(MESSAGES.c.channel_meta, MESSAGES.c.attachments).where(
                MESSAGES.c.channel == CHANNEL, MESSAGES.c.external_id == external_id
            )
        )
    ).first()
    if row is None:
        return None
    files = (row.channel_meta or {}).get("files")
    names = [str(a.get("filename")) for a in row.attachments or []]
    return StoredFiles(files if isinstance(files, list) else None, names)


@dataclass(frozen=True, slots=True)
class StoredFiles:
    ids: list[str] | None
    """Telegram's ``file_unique_id`` of each (None for a message stored before they were kept)."""
    names: list[str]

    def replaced_by(self, edited: InboundMessage) -> bool:
        """Whether the edit ``edited`` carries other files than these (the user replaced the
        photo or document while editing)."""
        if self.ids is not None:
            return self.ids != edited.channel_meta.get("files")
        return self.names != [a.filename for a in edited.attachments]


@dataclass(frozen=True, slots=True)
class AppliedEdit:
    message_id: int
    """The stored message the edit is for."""
    to_route: bool = False
    """The edit turned a "thanks" into a request: route the message again."""
    follow_up: str | None = None
    """The edit turned a "thanks" on a ticket done beyond its reopen window into a request:
    the ``external_id`` to ingest the edited message under, as a new one (its ``ticket_ref``
    :attr:`follow_up_of`, so that it opens a follow-up linked to that ticket)."""
    follow_up_of: str | None = None
    """The number of the ticket the thanks was kept on."""


async def apply_edit(
    session: AsyncSession,
    external_id: str,
    text: str,
    edit_date: int,
    now: datetime,
    *,
    reopen_window: timedelta,
    with_files: InboundMessage | None = None,
    update_id: int | None = None,
    content: tuple[str, Any] | None = None,
) -> AppliedEdit | None:
    """Put an edited message's new text (and, given ``with_files``, that message's files in
    place of the stored ones; given ``content``, the object its text was made from: see
    :func:`edited_content`) on the stored message, keeping what it replaced in
    ``channel_meta["edits"]``. A redelivered or out-of-order edit (this one, or a later one,
    is applied already) changes nothing. An edit that makes a "thanks" a request has it taken
    up as one (:func:`gateway.reopening.take_up_edit`).

    Returns None when the message was never stored.
    """
    row = (
        await session.execute(
            select(
                MESSAGES.c.id,
                MESSAGES.c.ticket_id,
                MESSAGES.c.text,
                MESSAGES.c.channel_meta,
                MESSAGES.c.attachments,
                TICKETS.c.number,
            )
            .join(TICKETS, TICKETS.c.id == MESSAGES.c.ticket_id)
            .where(MESSAGES.c.channel == CHANNEL, MESSAGES.c.external_id == external_id)
            .with_for_update(of=MESSAGES)
        )
    ).first()
    if row is None:
        return None
    meta: dict[str, Any] = dict(row.channel_meta or {})
    follow_up = f"{external_id}/e{edit_date}"
    owed = meta.get("follow_up")
    applied_date = int(meta.get("edit_date", 0))
    # Telegram's edit_date counts seconds: within one, an edit is a redelivery if it says what
    # is stored, or if its update is not newer than the applied edit's (a first edit sent
    # again after the second must not undo it).
    applied_update = int(meta.get("edit_update_id", 0))
    kind, made_from = content if content is not None else (None, None)
    if kind is None or kind != meta.get("text_from") or meta.get(kind) == made_from:
        kind = None  # nothing of the stored content's object changes
    same_words = text == row.text and with_files is None and kind is None
    older = update_id is not None and update_id <= applied_update
    if applied_date > edit_date or (applied_date == edit_date and (same_words or older)):
        # Redelivered: a follow-up this edit owed is ingested again (a no-op once stored), in
        # case the process died between this edit's commit and the follow-up's.
        if owed == follow_up:
            return _owing(row.id, row.number, owed)
        return AppliedEdit(row.id)
    if owed is not None:
        # The request lives in its follow-up message now: a correction goes there, where
        # the agent reads it, and a thanks edited into a request again opens no second one.
        on_follow_up = await apply_edit(
            session,
            owed,
            text,
            edit_date,
            now,
            reopen_window=reopen_window,
            with_files=with_files,
            update_id=update_id,
            content=content,
        )
        return on_follow_up or _owing(row.id, row.number, owed)
    edits = list(meta.get("edits", []))
    replaced: dict[str, Any] = {"text": row.text, "replaced_at": edit_date}
    values: dict[str, Any] = {"text": text}
    attachments = row.attachments
    if with_files is not None:
        replaced["attachments"] = row.attachments
        attachments = values["attachments"] = [a.model_dump() for a in with_files.attachments]
        meta["files"] = with_files.channel_meta.get("files")
    if kind is not None:
        # The checklist, poll ... as edited: an agent or report reading the object, not the
        # words made of it, must not find the one the customer replaced.
        replaced[kind] = meta.get(kind)
        meta[kind] = made_from
    edits.append(replaced)
    meta.update(edits=edits, edit_date=edit_date)
    if update_id is not None:
        meta["edit_update_id"] = update_id
    rerated = survey_score(text) if meta.get("rating") is not None else None
    if rerated is not None and rerated != meta["rating"]:
        # The survey's digit corrected ("5", meant 1): the score follows, and a low one is
        # followed up as if typed so, while the ticket is done (as ingest takes a digit for
        # a rating only then): one taken up again stays with its agent.
        ticket = await session.get_one(Ticket, row.ticket_id)
        if ticket.status in DONE_STATUSES:
            await record_rating(session, ticket, rerated, None, now)
            meta["rating"] = rerated
    was_thanks = not row.attachments and is_acknowledgement(row.text)
    # An album's photo without words went with its caption's words, asking nothing of its
    # own: words edited onto it were seen by no one.
    was_silent_part = bool(meta.get("part_of")) and not row.text.strip() and bool(text.strip())
    take_up = EditTakeUp.NOTHING
    if (
        was_thanks and not meta.get("text_from") and (attachments or not is_acknowledgement(text))
    ) or was_silent_part:
        take_up = await take_up_edit(session, row.ticket_id, now, reopen_window)
    if take_up is EditTakeUp.ROUTE:
        values["routed_at"] = None
    elif take_up is EditTakeUp.FOLLOW_UP:
        meta["follow_up"] = follow_up
    await session.execute(
        update(MESSAGES).where(MESSAGES.c.id == row.id).values(**values, channel_meta=meta)
    )
    # The console reloads an open ticket, and the live queue sends it, when its updated_at
    # moves: without this an agent read the words the customer had already corrected.
    await session.execute(
        update(TICKETS)
        .where(TICKETS.c.id == row.ticket_id, TICKETS.c.updated_at < now)
        .values(updated_at=now)
    )
    if take_up is EditTakeUp.FOLLOW_UP:
        return _owing(row.id, row.number, follow_up)
    return AppliedEdit(row.id, to_route=take_up is EditTakeUp.ROUTE)


def edited_content(edited: InboundMessage) -> tuple[str, Any] | None:
    """The kind of content an edited message's text was made from (its ``text_from``: a
    checklist, a poll, paid media ...) and the object kept under that kind's name, as the edit
    has it; None for words a person typed."""
    kind = edited.channel_meta.get("text_from")
    if not isinstance(kind, str) or kind not in edited.channel_meta:
        return None
    return kind, edited.channel_meta[kind]


def _owing(message_id: int, ticket_number: str, follow_up: str) -> AppliedEdit:
    return AppliedEdit(message_id, follow_up=follow_up, follow_up_of=str(ticket_number))
