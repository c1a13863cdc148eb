"""What a delivery job's rows say: the rows and everything their messages need, read in one
round trip (:func:`load_rows`), and the :class:`OutboundMessage` each one becomes
(:func:`build_message`: a reply's stored text and files, or a notice's or survey's template in
the contact's language)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from gateway.models import (
    REPLY_TO_MESSAGE,
    Attachment,
    Channel,
    MessageKind,
    OutboundMessage,
    OutboxKind,
)
from gateway.settings import Settings
from gateway.store.tables import Contact, ContactIdentity, OutboxRow, Ticket, TicketMessage
from gateway.store.types import utcnow
from gateway.surveys import survey_token
from workers.templates import promise, render, survey_link


def _survey_url(settings: Settings, ticket_id: int) -> str | None:
    if settings.public_url is None or settings.secret_key is None:
        return None
    expires = utcnow() + timedelta(days=settings.survey.token_days)
    token = survey_token(settings.secret_key.get_secret_value(), ticket_id, expires)
    return f"{settings.public_url.rstrip('/')}/survey/{token}"


async def load_rows(session: AsyncSession, outbox_ids: list[int]) -> list[LoadedRow]:
    """The rows and everything their messages need, in one round trip, in the order given."""
    # The contact's identity on the row's channel: the one the ticket's conversation is with
    # (a web chat session, a Telegram chat: its thread key), else the newest. A merged contact
    # may have two Telegram accounts; a ticket's notices go to the chat it came from.
    reachable = select(ContactIdentity.external_user_id).where(
        ContactIdentity.contact_id == OutboxRow.contact_id,
        ContactIdentity.channel == OutboxRow.channel,
        ContactIdentity.reachable.is_(True),
    )
    user = ContactIdentity.external_user_id
    on_thread = or_(
        user == Ticket.thread_key,
        # A conversation its user left for a new one keeps them in its key, ``<user>/<ticket>``
        # (Telegram's ``/new``); compared by prefix, not LIKE, whose wildcards ids may hold.
        func.substr(Ticket.thread_key, 1, func.length(user) + 1) == user + "/",
    )
    recipient = func.coalesce(
        reachable.where(on_thread).limit(1).scalar_subquery(),
        reachable.order_by(ContactIdentity.id.desc()).limit(1).scalar_subquery(),
    )
    # What the customer last wrote on this channel: replies thread onto it.
    latest_meta = (
        select(TicketMessage.channel_meta)
        .where(
            TicketMessage.ticket_id == OutboxRow.ticket_id,
            TicketMessage.channel == OutboxRow.channel,
            TicketMessage.kind == MessageKind.INCOMING.value,
        )
        .order_by(TicketMessage.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    stored = aliased(TicketMessage)  # the row's own message: a reply's text and files
    # The customer's message an agent's reply names (``reply_to``): it threads on that one
    # when it came on the row's channel (another channel's ids mean nothing here); from any
    # channel, its words go with the delivery, for a channel to quote as text.
    quoted = aliased(TicketMessage)
    on_quoted = and_(
        quoted.id == stored.channel_meta[REPLY_TO_MESSAGE].as_integer(),
        quoted.ticket_id == OutboxRow.ticket_id,
    )
    found = await session.execute(
        select(
            OutboxRow,
            Contact,
            Ticket,
            recipient,
            latest_meta,
            stored.text,
            stored.attachments,
            quoted.id,
            quoted.channel,
            quoted.channel_meta,
            quoted.text,
        )
        .join(Contact, Contact.id == OutboxRow.contact_id)
        .outerjoin(Ticket, Ticket.id == OutboxRow.ticket_id)
        .outerjoin(stored, stored.id == OutboxRow.message_id)
        .outerjoin(quoted, on_quoted)
        .where(OutboxRow.id.in_(outbox_ids))
    )
    by_id = {row[0].id: LoadedRow(*row) for row in found.all()}
    return [by_id[i] for i in outbox_ids if i in by_id]


@dataclass(frozen=True, slots=True)
class LoadedRow:
    row: OutboxRow
    contact: Contact
    ticket: Ticket | None
    recipient: str | None
    latest_meta: dict[str, object] | None
    stored_text: str | None
    stored_files: list[dict[str, object]] | None
    quoted_id: int | None
    """The customer's message the reply answers, when the agent named one (on any channel)."""
    quoted_channel: str | None
    quoted_meta: dict[str, object] | None
    quoted_text: str | None


def build_message(loaded: LoadedRow, settings: Settings) -> OutboundMessage | None:
    row, contact, ticket = loaded.row, loaded.contact, loaded.ticket
    if loaded.recipient is None:
        return None
    attachments: tuple[Attachment, ...] = ()
    reply_meta = dict(loaded.latest_meta or {}) if ticket is not None else {}
    quote = False
    quoted_text = None
    if row.kind == OutboxKind.REPLY.value and row.message_id is not None:
        # A reply carries its stored message; a notice's message_id only names its cause.
        text = loaded.stored_text or ""
        attachments = tuple(Attachment.model_validate(a) for a in loaded.stored_files or ())
        if loaded.quoted_id is not None:
            quoted_text = (loaded.quoted_text or "").strip() or None
            if loaded.quoted_channel == row.channel:
                reply_meta, quote = dict(loaded.quoted_meta or {}), True
    else:
        values = {
            "number": ticket.number if ticket else "",
            "agent": str(row.payload.get("agent", "")),
            "text": str(row.payload.get("text", "")),
            "link": "",
        }
        if ticket is not None:
            values["promise"] = promise(ticket.priority, contact.locale)
            if row.kind == OutboxKind.SURVEY.value:
                values["link"] = survey_link(_survey_url(settings, ticket.id), contact.locale)
        text = render(row.template, contact.locale, **values)
    return OutboundMessage(
        outbox_id=row.id,
        channel=Channel(row.channel),
        recipient=loaded.recipient,
        text=text,
        ticket_number=ticket.number if ticket else None,
        kind=OutboxKind(row.kind),
        template=row.template,
        message_id=row.message_id if row.kind == OutboxKind.REPLY.value else None,
        subject=ticket.subject if ticket else None,
        reply_meta=reply_meta,
        quote=quote,
        quoted_text=quoted_text,
        locale=contact.locale,
        attachments=attachments,
        channel_meta=dict(row.payload),
    )
