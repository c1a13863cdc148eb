"""The one ticket model every channel shares: frozen pydantic models and their enums.

Channel specifics never become fields here: they travel in the read-only ``channel_meta``
mapping (DESIGN.md invariant 4).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Channel(StrEnum):
    WEBCHAT = "webchat"
    EMAIL = "email"
    TELEGRAM = "telegram"


class NeedType(StrEnum):
    INQUIRY = "inquiry"
    COMPLAINT = "complaint"
    REPAIR = "repair"
    SUGGESTION = "suggestion"


class Priority(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"
    CRITICAL = "critical"


class TicketStatus(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    WAITING_CUSTOMER = "waiting_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"
    """A follow-up (待跟进): a customer came back after resolution, or rated it low."""


OPEN_STATUSES = frozenset(
    {
        TicketStatus.NEW,
        TicketStatus.ASSIGNED,
        TicketStatus.IN_PROGRESS,
        TicketStatus.WAITING_CUSTOMER,
        TicketStatus.REOPENED,
    }
)
DONE_STATUSES = frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED})


class MessageKind(StrEnum):
    INCOMING = "incoming"
    OUTGOING = "outgoing"
    NOTE = "note"
    """An internal note between agents; never sent to the customer."""
    SYSTEM = "system"


class AuthorType(StrEnum):
    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


class EventKind(StrEnum):
    CREATED = "created"
    STATUS = "status"
    PRIORITY = "priority"
    CATEGORY = "category"
    NEED_TYPE = "need_type"
    ASSIGNMENT = "assignment"
    ESCALATED = "escalated"
    REOPENED = "reopened"
    LINKED = "linked"
    RATED = "rated"
    SLA_WARNING = "sla_warning"
    SLA_BREACH = "sla_breach"
    UPDATE_REMINDER = "update_reminder"


class OutboxKind(StrEnum):
    """What an outbox row carries; each kind has its own RQ queue, in this priority order."""

    REPLY = "reply"
    NOTICE = "notice"
    SURVEY = "survey"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


class AgentRole(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


_FROZEN = ConfigDict(frozen=True, from_attributes=True, extra="forbid")


class Attachment(BaseModel):
    """A file that came with a message; ``ref`` locates the bytes in the attachment store."""

    model_config = _FROZEN

    filename: str
    content_type: str
    size: int = Field(ge=0)
    ref: str | None = None


class InboundMessage(BaseModel):
    """A customer's message as a channel adapter hands it to ingest.

    ``external_id`` is the channel's own id of this message (Telegram ``chat:message_id``, an email
    Message-ID, a web chat client id): ingest stores each ``(channel, external_id)`` once.
    ``thread_key`` names the conversation inside the channel (a Telegram chat, a web chat session);
    ``ticket_ref`` is an explicit ticket number the channel found (an email subject tag or reply
    address), honoured only when that ticket belongs to the sender.
    """

    model_config = _FROZEN

    channel: Channel
    external_id: str = Field(min_length=1, max_length=255)
    external_user_id: str = Field(min_length=1, max_length=255)
    text: str = ""
    thread_key: str | None = Field(default=None, max_length=255)
    ticket_ref: str | None = None
    subject: str | None = None
    sender_name: str | None = None
    email: str | None = None
    email_verified: bool = False
    phone: str | None = None
    phone_verified: bool = False
    locale: str | None = None
    attachments: tuple[Attachment, ...] = ()
    channel_meta: Mapping[str, Any] = Field(default_factory=dict)
    auto_submitted: bool = False
    """An automatic mail (out-of-office, list): stored, but it gets no automatic answer."""

    @field_validator(
        "external_id",
        "external_user_id",
        "text",
        "thread_key",
        "ticket_ref",
        "subject",
        "sender_name",
        "email",
        "phone",
        "locale",
    )
    @classmethod
    def _without_nul(cls, value: str | None) -> str | None:
        # PostgreSQL's text holds no NUL: one in a message failed its insert on every
        # redelivery (Telegram retries a failed webhook update, and holds the chat's next).
        return value.replace("\x00", "") if value and "\x00" in value else value


REPLY_TO_MESSAGE = "reply_to_message"
"""The ``channel_meta`` key of an agent's reply that names the customer's message it answers
(our message id; the agent API's ``reply_to``). Not ``reply_to``: a customer's Telegram message
keeps there the Telegram id of the message they answered, an email the addresses of its
Reply-To."""


class OutboundMessage(BaseModel):
    """Something to deliver on a customer's channel; built by a worker from an outbox row."""

    model_config = _FROZEN

    outbox_id: int
    channel: Channel
    recipient: str
    """The channel's address of the customer: a chat id, an email address, a contact id."""
    text: str
    ticket_number: str | None = None
    kind: OutboxKind = OutboxKind.REPLY
    template: str | None = None
    """For notices and surveys: which one (``ticket_received``, ``escalated`` ...)."""
    message_id: int | None = None
    """The stored ticket message this delivers (replies), so a channel can show its id."""
    subject: str | None = None
    """The ticket's subject, for channels that have one (email)."""
    reply_meta: Mapping[str, Any] = Field(default_factory=dict)
    """``channel_meta`` of the customer's message on this channel the answer threads on (an
    email's Message-ID and References, a Telegram message id): the one the agent chose to
    answer (``quote``), else their latest."""
    quote: bool = False
    """The agent chose the message ``reply_meta`` belongs to (a reply naming ``reply_to``): a
    channel that can show which message is answered does (a Telegram reply quotes it). False,
    ``reply_meta`` only threads (email), as for every notice and survey."""
    quoted_text: str | None = None
    """The words of the customer's message the agent's reply answers (``reply_to``), on
    whichever channel it came. A channel that cannot point at that message (it came on
    another channel, ``quote`` False; or from another Telegram chat) quotes these words as
    text, so the customer still sees what the answer is about. None for other messages, and
    for a quoted message without words (a file alone)."""
    locale: str | None = None
    attachments: tuple[Attachment, ...] = ()
    channel_meta: Mapping[str, Any] = Field(default_factory=dict)


class DeliveryReceipt(BaseModel):
    """What a channel says after a send."""

    model_config = _FROZEN

    external_id: str | None = None
    channel_meta: Mapping[str, Any] = Field(default_factory=dict)


class Contact(BaseModel):
    model_config = _FROZEN

    id: int
    name: str | None
    email: str | None
    phone: str | None
    email_verified: bool = False
    """The person proved the email is theirs; only then does it join other identities."""
    phone_verified: bool = False
    locale: str | None
    timezone: str | None
    vip: bool
    created_at: datetime


class ContactIdentity(BaseModel):
    """One way a contact reaches us: ``(channel, external_user_id)`` is unique."""

    model_config = _FROZEN

    id: int
    contact_id: int
    channel: Channel
    external_user_id: str
    reachable: bool


class Ticket(BaseModel):
    model_config = _FROZEN

    id: int
    number: str
    contact_id: int
    channel: Channel
    thread_key: str | None
    subject: str | None
    status: TicketStatus
    priority: Priority
    need_type: NeedType
    category_id: int | None
    team_id: int | None
    assignee_id: int | None
    parent_id: int | None
    """The earlier ticket this one follows up, when a customer came back too late to reopen it."""
    escalated_at: datetime | None
    resolved_by_bot: bool
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    first_response_due_at: datetime | None


class TicketMessage(BaseModel):
    model_config = _FROZEN

    id: int
    ticket_id: int
    kind: MessageKind
    author_type: AuthorType
    author_id: int | None
    channel: Channel
    external_id: str | None
    text: str
    attachments: tuple[Attachment, ...]
    channel_meta: Mapping[str, Any]
    created_at: datetime


class TicketEvent(BaseModel):
    """One line of a ticket's audit trail: who changed what, when."""

    model_config = _FROZEN

    id: int
    ticket_id: int
    kind: EventKind
    old_value: str | None
    new_value: str | None
    actor_type: AuthorType
    actor_id: int | None
    note: str | None
    created_at: datetime
