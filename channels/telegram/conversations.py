"""Store reads and writes the Telegram channel makes beside ingest, each in the caller's session.

A Telegram user is one ``contact_identities`` row ``(telegram, <user id>)``; their private chat
with the bot has the same id and is the ``thread_key`` of its tickets.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import ColumnElement, String, Table, func, literal, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.telegram.state import part_key
from gateway.contact_merge import merge_contact
from gateway.ingest.transaction import sender_lock_key
from gateway.models import OPEN_STATUSES, Channel, InboundMessage, TicketStatus
from gateway.store import on_postgres
from gateway.store.tables import (
    ChannelState,
    Contact,
    ContactIdentity,
    OutboxRow,
    Ticket,
    TicketMessage,
)

CONTACTS: Table = Contact.__table__  # type: ignore[assignment]
IDENTITIES: Table = ContactIdentity.__table__  # type: ignore[assignment]
TICKETS: Table = Ticket.__table__  # type: ignore[assignment]
MESSAGES: Table = TicketMessage.__table__  # type: ignore[assignment]
OUTBOX: Table = OutboxRow.__table__  # type: ignore[assignment]
STATE: Table = ChannelState.__table__  # type: ignore[assignment]
CHANNEL = Channel.TELEGRAM.value

log = logging.getLogger(__name__)


async def lock_sender(session: AsyncSession, inbound: InboundMessage) -> None:
    """Take ingest's per-sender lock (PostgreSQL) before creating a contact outside ingest, so
    a command racing the same new user's first message cannot make a second contact."""
    if on_postgres(session):
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": sender_lock_key(inbound)}
        )


async def contact_of(session: AsyncSession, user_id: str) -> int | None:
    """The contact a Telegram user is (followed through merges), or None if never seen."""
    contact_id = await session.scalar(
        select(IDENTITIES.c.contact_id).where(
            IDENTITIES.c.channel == CHANNEL, IDENTITIES.c.external_user_id == user_id
        )
    )
    return None if contact_id is None else await survivor(session, int(contact_id))


async def contact_locale(session: AsyncSession, user_id: str) -> str | None:
    """The language of the contact a Telegram user is (the one their notices are in), if
    known."""
    contact_id = await contact_of(session, user_id)
    if contact_id is None:
        return None
    locale: str | None = await session.scalar(
        select(CONTACTS.c.locale).where(CONTACTS.c.id == contact_id)
    )
    return locale


async def survivor(session: AsyncSession, contact_id: int) -> int:
    """The contact that ``contact_id`` was merged into, if it was (else itself)."""
    seen = {contact_id}
    while True:
        merged_into = await session.scalar(
            select(CONTACTS.c.merged_into_id).where(CONTACTS.c.id == contact_id)
        )
        if merged_into is None or merged_into in seen:
            return contact_id
        contact_id = int(merged_into)
        seen.add(contact_id)


async def open_tickets(
    session: AsyncSession, contact_id: int, *, limit: int
) -> tuple[list[tuple[str, str]], int]:
    """``(number, status)`` of the contact's newest ``limit`` open tickets, newest first (only
    theirs), and how many they have open in all."""
    owners = select(CONTACTS.c.id).where(
        or_(CONTACTS.c.id == contact_id, CONTACTS.c.merged_into_id == contact_id)
    )
    rows = (
        await session.execute(
            select(TICKETS.c.number, TICKETS.c.status, func.count().over())
            .where(
                TICKETS.c.contact_id.in_(owners),
                TICKETS.c.status.in_([s.value for s in OPEN_STATUSES]),
            )
            .order_by(TICKETS.c.id.desc())
            .limit(limit)
        )
    ).all()
    return [(number, status) for number, status, _ in rows], int(rows[0][2]) if rows else 0


async def conversation_ticket(
    session: AsyncSession, contact_id: int, chat_id: int
) -> Ticket | None:
    """The open ticket the next message in this chat would go to (locked for update)."""
    return await _open_ticket(
        session, contact_id, Ticket.channel == CHANNEL, Ticket.thread_key == str(chat_id)
    )


async def ticket_numbered(session: AsyncSession, contact_id: int, number: str) -> Ticket | None:
    """The contact's ticket ``number`` (one a message sent as a Reply names), open or done,
    locked; None if it is not theirs."""
    ticket: Ticket | None = await session.scalar(
        select(Ticket)
        .where(Ticket.contact_id == contact_id, Ticket.number == number)
        .with_for_update()
    )
    return ticket


async def _open_ticket(
    session: AsyncSession, contact_id: int, *where: ColumnElement[bool]
) -> Ticket | None:
    """The contact's newest open ticket matching ``where``, locked for update."""
    ticket: Ticket | None = await session.scalar(
        select(Ticket)
        .where(
            Ticket.contact_id == contact_id,
            Ticket.status.in_([s.value for s in OPEN_STATUSES]),
            *where,
        )
        .order_by(Ticket.id.desc())
        .limit(1)
        .with_for_update()
    )
    return ticket


async def stored(session: AsyncSession, external_id: str) -> bool:
    """Whether the chat's message ``external_id`` (``<chat>:<message>``) is stored."""
    found = await session.scalar(
        select(MESSAGES.c.id).where(
            MESSAGES.c.channel == CHANNEL, MESSAGES.c.external_id == external_id
        )
    )
    return found is not None


async def replied_ticket(session: AsyncSession, chat_id: int, message_id: int) -> str | None:
    """The number of the ticket the chat's message ``message_id`` belongs to: one the user
    sent (stored as ``<chat>:<message>``) or one the bot sent them (an outbox row holding
    Telegram's id of it, or of the delivery's first part: :func:`state.record_parts`); None
    if neither.

    Telegram numbers messages per chat: the bot's is looked for among this chat's tickets
    (thread key ``<chat>``, or ``<chat>/<number>`` once ``/new`` detached them).
    """
    own = await _ticket_of(session, f"{chat_id}:{message_id}")
    if own is not None:
        return own
    sent = await session.scalar(
        select(TICKETS.c.number)
        .join(OUTBOX, OUTBOX.c.ticket_id == TICKETS.c.id)
        .where(
            OUTBOX.c.channel == CHANNEL,
            OUTBOX.c.external_id == str(message_id),
            TICKETS.c.channel == CHANNEL,
            or_(TICKETS.c.thread_key == str(chat_id), TICKETS.c.thread_key.like(f"{chat_id}/%")),
        )
        .order_by(OUTBOX.c.id.desc())
        .limit(1)
    )
    if sent is not None:
        return str(sent)
    # A later part of one of the bot's deliveries (its row keeps the first part's id only).
    part = await session.scalar(
        select(STATE.c.value).where(
            STATE.c.channel == CHANNEL, STATE.c.key == part_key(chat_id, message_id)
        )
    )
    if part is None:
        return None
    number = await session.scalar(
        select(TICKETS.c.number)
        .join(OUTBOX, OUTBOX.c.ticket_id == TICKETS.c.id)
        .where(OUTBOX.c.id == int(part["outbox_id"]))
    )
    return None if number is None else str(number)


async def _ticket_of(session: AsyncSession, external_id: str) -> str | None:
    """The ticket number of the customer's stored message ``external_id``; of its follow-up
    message when an edit made it one (``edits.apply_edit``), once that is stored."""
    found = (
        await session.execute(
            select(TICKETS.c.number, MESSAGES.c.channel_meta)
            .join(MESSAGES, MESSAGES.c.ticket_id == TICKETS.c.id)
            .where(MESSAGES.c.channel == CHANNEL, MESSAGES.c.external_id == external_id)
        )
    ).first()
    if found is None:
        return None
    follow_up = (found.channel_meta or {}).get("follow_up")
    if follow_up is not None and (moved := await _ticket_of(session, follow_up)) is not None:
        return moved
    return str(found.number)


async def start_new_conversation(session: AsyncSession, chat_id: int) -> int:
    """Detach the chat's tickets from it, so its next message opens a new ticket (``/new``).

    Ingest threads a message onto the latest ticket of ``(contact, channel, thread_key)``; giving
    the chat's earlier tickets a thread key of their own (``<chat>/<number>``) leaves the chat with
    none, at no cost to the messages that follow. Agents' answers on those tickets still reach
    the same chat: delivery addresses the user, not the thread.
    """
    result = await session.execute(
        update(TICKETS)
        .where(TICKETS.c.channel == CHANNEL, TICKETS.c.thread_key == str(chat_id))
        .values(thread_key=literal(f"{chat_id}/", String) + TICKETS.c.number)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def merge_by_phone(session: AsyncSession, contact_id: int, phone: str) -> int:
    """Put a verified phone on the contact and merge another contact that proved it too.

    A contact that was only told the number (a pre-chat form) is not merged: anyone can type
    anyone's number, and the merge would show each side the other's tickets. Nor is one whose
    proof came from another Telegram account: the number has changed hands. The older contact
    survives; the other's identities, tickets and outbox rows move to it, and it is
    marked merged (:func:`gateway.contact_merge.merge_contact`). Returns the survivor's id.

    Telegram is the only channel that proves a phone today, so no contact meets the rule
    yet: it is here for a channel that will (an SMS code), and until then a supervisor
    joins one person's contacts (``POST /api/v1/contacts/{id}/merge``).
    """
    await session.execute(
        update(CONTACTS).where(CONTACTS.c.id == contact_id).values(phone=phone, phone_verified=True)
    )
    other = await session.scalar(
        select(CONTACTS.c.id)
        .where(
            CONTACTS.c.phone == phone,
            CONTACTS.c.phone_verified,
            CONTACTS.c.id != contact_id,
            CONTACTS.c.merged_into_id.is_(None),
        )
        .order_by(CONTACTS.c.id)
        .limit(1)
    )
    if other is None:
        return contact_id
    if await session.scalar(
        select(IDENTITIES.c.id)
        .where(IDENTITIES.c.contact_id == other, IDENTITIES.c.channel == CHANNEL)
        .limit(1)
    ):
        # Another Telegram account proved this number before, and a number belongs to one
        # account at a time: it has moved (a carrier gives a dropped number to someone new).
        # Merged, the new holder would see the old one's tickets and get their notices. The
        # old contact's proof lapses instead; a supervisor can still merge the two by hand.
        await session.execute(
            update(CONTACTS).where(CONTACTS.c.id == other).values(phone_verified=False)
        )
        log.info("phone moved between Telegram accounts: not merged", extra={"contact": other})
        return contact_id
    keep, gone = sorted((contact_id, int(other)))
    await merge_contact(session, keep, gone)
    return keep


async def set_reachable(
    session: AsyncSession, user_id: str, reachable: bool, *, now: datetime
) -> None:
    """Mark the user's identity unreachable (they blocked the bot, or deleted their account) or
    reachable again (they wrote: only a user who blocked the bot can)."""
    changed = await session.execute(
        update(IDENTITIES)
        .where(
            IDENTITIES.c.channel == CHANNEL,
            IDENTITIES.c.external_user_id == user_id,
            IDENTITIES.c.reachable != reachable,
        )
        .values(reachable=reachable)
        .returning(IDENTITIES.c.contact_id)
    )
    contact_ids = set(changed.scalars())
    if contact_ids:
        # The console reloads an open ticket when its updated_at moves: an agent sees at once
        # that the customer cannot be written to (and where their notices go now), not once
        # something else changed the ticket. Locked in id order first, as routing and ingest
        # lock tickets: an UPDATE takes its rows in whatever order it finds them, and could
        # deadlock with a batch holding two of this contact's tickets (PostgreSQL).
        locked = await session.scalars(
            select(TICKETS.c.id)
            .where(
                TICKETS.c.contact_id.in_(contact_ids),
                TICKETS.c.status != TicketStatus.CLOSED.value,
                TICKETS.c.updated_at < now,
            )
            .order_by(TICKETS.c.id)
            .with_for_update()
        )
        ids = list(locked)
        if ids:
            await session.execute(
                update(TICKETS).where(TICKETS.c.id.in_(ids)).values(updated_at=now)
            )


async def blocked(session: AsyncSession, user_id: str) -> bool:
    """Whether the user's identity is marked unreachable (they blocked the bot: a deleted
    account, the other reason, sends nothing to be heard from)."""
    reachable = await session.scalar(
        select(IDENTITIES.c.reachable).where(
            IDENTITIES.c.channel == CHANNEL, IDENTITIES.c.external_user_id == user_id
        )
    )
    return reachable is False
