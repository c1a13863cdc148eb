"""The database schema. Alembic migrations in ``gateway/migrations`` are generated from it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gateway.store.types import UTCDateTime, utcnow

# Stable constraint names, so migrations can drop and alter them on both databases.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)


class Category(Base):
    """Admin-defined, two levels: ``parent_id`` is null on the first level."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))

    __table_args__ = (UniqueConstraint("parent_id", "name"),)


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    """Available for dispatch (set at login and by the console's presence switch)."""
    capacity: Mapped[int] = mapped_column(Integer, default=10)
    """How many open tickets dispatch gives this agent at most."""
    last_assigned_at: Mapped[datetime | None]
    """Breaks dispatch ties: the agent idle longest gets the ticket."""


class AgentSession(Base):
    """A console login: the cookie holds the token, the table only its SHA-256."""

    __tablename__ = "agent_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class ApiToken(Base):
    """A bearer token for an integration, acting as one agent."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class CannedResponse(Base):
    """A saved answer agents insert with ``/shortcut``."""

    __tablename__ = "canned_responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    shortcut: Mapped[str] = mapped_column(String(60), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    phone: Mapped[str | None] = mapped_column(String(40), index=True)
    # Whether the person proved the address or number is theirs (Telegram's shared contact of
    # themself), not merely typed it (a pre-chat form): only a proven one joins another
    # channel's identity to this contact, which would then see that channel's tickets.
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    phone_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    locale: Mapped[str | None] = mapped_column(String(20))
    timezone: Mapped[str | None] = mapped_column(String(64))
    vip: Mapped[bool] = mapped_column(Boolean, default=False)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ContactIdentity(Base):
    __tablename__ = "contact_identities"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    external_user_id: Mapped[str] = mapped_column(String(255))
    reachable: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("channel", "external_user_id"),)


class TicketCounter(Base):
    """The last ticket sequence handed out on one local day (``YYYYMMDD``)."""

    __tablename__ = "ticket_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer)


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    channel: Mapped[str] = mapped_column(String(20))
    thread_key: Mapped[str | None] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(String(500))
    # Looked up by ix_tickets_queue, which starts with it.
    status: Mapped[str] = mapped_column(String(20))
    priority: Mapped[str] = mapped_column(String(20))
    need_type: Mapped[str] = mapped_column(String(20))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    # Indexed for reports, which count tickets by when each step happened.
    escalated_at: Mapped[datetime | None] = mapped_column(index=True)
    resolved_by_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    first_response_due_at: Mapped[datetime | None] = mapped_column(index=True)
    """When the first response is due by the ticket's priority (the SLA clock)."""
    resolution_due_at: Mapped[datetime | None] = mapped_column(index=True)
    """When resolution is due (moved later by the time spent waiting for the customer)."""
    waiting_since: Mapped[datetime | None]
    """Set while the ticket waits for the customer: the SLA clock is paused."""
    last_update_at: Mapped[datetime | None]
    """The last progress update or reply to the customer (one is due every 24 h while open)."""
    sla_warned_at: Mapped[datetime | None]
    """The assignee was warned at 80% of a target (once per target)."""
    overdue_at: Mapped[datetime | None] = mapped_column(index=True)
    """A target was breached: the ticket is overdue and the supervisor was alerted."""

    __table_args__ = (
        Index("ix_tickets_conversation", "contact_id", "channel", "thread_key", "id"),
        # The agent queue: filtered by status (and channel), newest first, one page.
        Index("ix_tickets_queue", "status", "channel", "updated_at", "id"),
        # The unfiltered first page and the console's "changed since" poll.
        Index("ix_tickets_updated", "updated_at", "id"),
        # Reports: each step of the period read from the index alone (count, duration, SLA).
        Index("ix_tickets_responded", "first_response_at", "created_at", "first_response_due_at"),
        Index(
            "ix_tickets_resolved",
            "resolved_at",
            "created_at",
            "resolved_by_bot",
            "resolution_due_at",
        ),
    )


class TicketMessage(Base):
    __tablename__ = "ticket_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    author_type: Mapped[str] = mapped_column(String(20))
    author_id: Mapped[int | None]
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str | None] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    channel_meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    routed_at: Mapped[datetime | None]
    """When the router handled an incoming message; null ones are routed again after a crash."""

    # Invariant 2: a channel's message is stored once; NULL ids (our own notes) never collide.
    __table_args__ = (UniqueConstraint("channel", "external_id"),)


class TicketEvent(Base):
    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Looked up by ix_ticket_events_ticket_time, which starts with it.
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(String(20))
    old_value: Mapped[str | None] = mapped_column(String(200))
    new_value: Mapped[str | None] = mapped_column(String(200))
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None]
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]

    __table_args__ = (
        # Reports count reopens (one kind) by when they happened.
        Index("ix_ticket_events_kind_created", "kind", "created_at"),
        # Time in each status: a ticket's previous change, read backwards from the index alone.
        Index("ix_ticket_events_ticket_time", "ticket_id", "created_at", "kind"),
    )


class OutboxRow(Base):
    """Something owed to a customer, written in the transaction that caused it (invariant 3)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    template: Mapped[str] = mapped_column(String(60))
    channel: Mapped[str] = mapped_column(String(20))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("ticket_messages.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]
    queued_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(255), index=True)
    """The channel's id of what was sent (an email Message-ID, a Telegram message id)."""
    job_id: Mapped[str | None] = mapped_column(String(80))
    """The RQ job a queued row went out in (``workers/lost_jobs.py`` looks for it in Redis)."""

    __table_args__ = (
        Index("ix_outbox_status_due", "status", "due_at"),
        # The email cap's count per contact (migration 0007).
        Index("ix_outbox_contact_sent", "contact_id", "status", "sent_at"),
    )


class ChannelState(Base):
    """A channel's durable cursor (an IMAP mailbox's UIDVALIDITY and last UID, a polling offset)."""

    __tablename__ = "channel_state"

    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]


class ParkedInbound(Base):
    """Input a channel could not process after its last try: kept whole, with the reason."""

    __tablename__ = "parked_inbound"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(60))
    detail: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    auto_replays: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Times the gateway replayed it by itself (:mod:`gateway.replay_sweep`), which gives up on
    it at ``MAX_AUTO_REPLAYS``, leaving it to a person."""

    __table_args__ = (UniqueConstraint("channel", "external_id"),)


class KBEntry(Base):
    """A knowledge-base entry: the standard question, its phrasings, an answer per locale."""

    __tablename__ = "kb_entries"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    examples: Mapped[list[Any]] = mapped_column(default=list)
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    category: Mapped[str | None] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime]


class KBMiss(Base):
    """A question the bot could not answer, or whose answer did not help: grows the KB."""

    __tablename__ = "kb_misses"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    """``unanswered`` or ``not_helpful``."""
    normalized: Mapped[str] = mapped_column(String(500))
    question: Mapped[str] = mapped_column(Text)
    entry_id: Mapped[str] = mapped_column(String(100), default="")
    """For ``not_helpful``: the entry whose answer was rejected ("" for unanswered: a NULL
    would make the unique constraint let duplicates through)."""
    count: Mapped[int] = mapped_column(Integer, default=1)
    last_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]

    __table_args__ = (UniqueConstraint("kind", "normalized", "entry_id"),)


class Survey(Base):
    """One satisfaction survey per ticket (满意度回访): when it went out and how it was answered."""

    __tablename__ = "surveys"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    channel: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime] = mapped_column(index=True)
    """When it may go out (after the delay, outside the contact's quiet hours)."""
    sent_at: Mapped[datetime | None]
    score: Mapped[int | None]
    comment: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None] = mapped_column(index=True)
    """Indexed for reports: satisfaction is counted by when the answer came."""
    created_at: Mapped[datetime]
