"""Request and response bodies of the agent API (the OpenAPI document is generated from them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from channels.attachment_store import STORED_NAME
from gateway.models import (
    AgentRole,
    AuthorType,
    Channel,
    MessageKind,
    NeedType,
    Priority,
    TicketStatus,
)

_IN = ConfigDict(extra="forbid", frozen=True)


def _not_bool(value: Any) -> Any:
    """JSON's ``true`` is no number: pydantic reads it as 1 for an ``int``, so an
    ``"assignee_id": true`` assigned agent 1 and a ``"reply_to": true`` quoted message 1."""
    if isinstance(value, bool):
        raise ValueError("a number is needed, not true or false")
    return value


Whole = Annotated[int, BeforeValidator(_not_bool)]
"""An integer a client sends: a number (or, in a query string, its digits), never a boolean."""
RowId = Annotated[Whole, Field(ge=1, le=2**31 - 1)]
"""A row's id as a client names it: within the columns' 32-bit range, so one beyond it is a
400 naming the field (PostgreSQL refused to bind it: a 500), not a search for nothing."""
MAX_PAGE = 1_000_000
"""Pages past this are refused: the offset they make would overflow the database's integer."""
_OUT = ConfigDict(frozen=True, from_attributes=True)


class LoginIn(BaseModel):
    model_config = _IN
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class AgentOut(BaseModel):
    model_config = _OUT
    id: int
    email: str
    name: str
    role: AgentRole
    team_id: int | None
    online: bool
    capacity: int
    must_change_password: bool
    active: bool


class LoginOut(BaseModel):
    model_config = _OUT
    agent: AgentOut
    csrf_token: str


class PasswordIn(BaseModel):
    model_config = _IN
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=10, max_length=1024)


class PresenceIn(BaseModel):
    model_config = _IN
    online: bool


class TokenIn(BaseModel):
    model_config = _IN
    name: str = Field(min_length=1, max_length=200)
    agent_id: RowId | None = None
    """The agent the token acts as (admins only); yourself by default."""


class TokenOut(BaseModel):
    model_config = _OUT
    id: int
    name: str
    agent_id: int
    token: str
    """Shown once; only its hash is kept."""


class Ok(BaseModel):
    model_config = _OUT
    ok: bool = True


class TicketQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: TicketStatus | None = None
    priority: Priority | None = None
    category: RowId | None = None
    need_type: NeedType | None = None
    channel: Channel | None = None
    assignee: str | None = Field(default=None, pattern=r"^(me|none|\d{1,9})$")
    """``me``, ``none`` (the queue) or an agent id."""
    team: RowId | None = None
    overdue: bool | None = None
    q: str | None = Field(default=None, max_length=200)
    """A ticket number, a contact's name or email, or words of the conversation."""
    page: int = Field(default=1, ge=1, le=MAX_PAGE)
    per_page: int = Field(default=25, ge=1, le=100)


class TicketOut(BaseModel):
    model_config = _OUT
    number: str
    status: TicketStatus
    priority: Priority
    need_type: NeedType
    channel: Channel
    subject: str | None
    contact_id: int
    contact_name: str | None
    assignee_id: int | None
    team_id: int | None
    category_id: int | None
    parent_number: str | None = None
    escalated_at: datetime | None
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    first_response_due_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    resolved_by_bot: bool


class TicketPage(BaseModel):
    model_config = _OUT
    items: list[TicketOut]
    page: int
    per_page: int
    total: int


class AttachmentOut(BaseModel):
    """A file listed on a message. Where the server keeps its bytes is not the agent's business:
    ``stored`` says whether ``GET .../messages/{id}/attachments/{index}`` can download it."""

    model_config = _OUT
    index: int
    """Its position on the message: the download route's ``{index}``."""
    filename: str
    content_type: str
    size: int | None
    stored: bool
    """The channel kept the bytes (files over the size cap are listed by name only)."""


def attachments_out(raw: object) -> list[AttachmentOut]:
    """A message's stored attachment list (channel dicts) as the agent sees it, without ``ref``."""
    if not isinstance(raw, list | tuple):
        return []
    listed: list[AttachmentOut] = []
    for index, item in enumerate(raw):
        if isinstance(item, BaseModel):
            item = item.model_dump()
        if not isinstance(item, dict):
            continue  # not a file; its index stays taken so later ones still download
        size = item.get("size")
        listed.append(
            AttachmentOut(
                index=index,
                filename=str(item.get("filename") or ""),
                content_type=str(item.get("content_type") or ""),
                size=size if isinstance(size, int) and size >= 0 else None,
                stored=bool(item.get("ref")),
            )
        )
    return listed


class DeliveryOut(BaseModel):
    """What became of an agent's reply on the customer's channel."""

    model_config = _OUT
    status: Literal["pending", "sent", "failed"]
    """``pending`` until the channel took it (or a retry is due), ``failed`` for good."""
    error: str | None = None
    """Why it failed, or why the last try did (the user blocked the bot, or deleted their
    Telegram account, say)."""


class MessageOut(BaseModel):
    model_config = _OUT
    id: int
    kind: MessageKind
    author_type: AuthorType
    author_id: int | None
    channel: Channel
    text: str
    attachments: list[AttachmentOut]
    channel_meta: dict[str, Any]
    created_at: datetime
    delivery: DeliveryOut | None = None
    """An agent's reply: its delivery (in a ticket's detail; None elsewhere)."""

    @field_validator("attachments", mode="before")
    @classmethod
    def _hide_refs(cls, raw: object) -> list[AttachmentOut]:
        return attachments_out(raw)


class EventOut(BaseModel):
    model_config = _OUT
    id: int
    kind: str
    old_value: str | None
    new_value: str | None
    actor_type: AuthorType
    actor_id: int | None
    note: str | None
    created_at: datetime


class ContactOut(BaseModel):
    # _OUT, and its field docstrings as the OpenAPI document's descriptions of them.
    model_config = ConfigDict(frozen=True, from_attributes=True, use_attribute_docstrings=True)
    id: int
    name: str | None
    email: str | None
    phone: str | None
    locale: str | None
    timezone: str | None
    vip: bool
    channels: list[str] = []
    unreachable: list[str] = []
    """Channels the contact cannot be written to on (a Telegram user who blocked the bot or
    deleted their account)."""
    usernames: dict[str, str] = {}
    """The contact's latest known username on each channel that has them, by channel
    (Telegram's @username without the @: ``{"telegram": "li_xiao"}``), from their latest incoming
    message on that channel that says one, on any of their tickets; no entry when it says they
    have none (they removed it). The customer chose it: show it as text."""


class TicketDetail(BaseModel):
    model_config = _OUT
    ticket: TicketOut
    messages: list[MessageOut]
    events: list[EventOut]
    contact: ContactOut
    other_tickets: list[TicketOut]
    """The contact's other tickets, on every channel."""


class TextIn(BaseModel):
    model_config = _IN
    text: str = Field(min_length=1, max_length=20_000)


class AttachmentRef(BaseModel):
    """A file an upload answered with (``POST /api/v1/tickets/{number}/attachments``), named
    in a reply."""

    model_config = _IN
    ref: str = Field(pattern=f"^{STORED_NAME}$")
    """The stored file: the SHA-256 of its bytes."""
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(default="application/octet-stream", max_length=255)
    size: Whole | None = Field(default=None, ge=0)
    """As the upload answered; the stored file's own size is what the message keeps."""


class Uploaded(BaseModel):
    model_config = _OUT
    ref: str
    filename: str
    content_type: str
    size: int


class ReplyIn(BaseModel):
    """A reply's text and the uploaded files it carries; one of the two may be left out."""

    model_config = _IN
    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=10)
    reply_to: RowId | None = None
    """The customer's message this answers (a message of this ticket, from the customer): the
    reply quotes it where the channel can (Telegram) and threads on it (email). Left out, the
    reply threads on the customer's latest message, as before."""
    text: str = Field(default="", max_length=20_000, validate_default=True)

    @field_validator("text")
    @classmethod
    def _text_or_files(cls, text: str, info: ValidationInfo) -> str:
        if not text.strip() and not info.data.get("attachments"):
            raise ValueError("a reply needs a text or an attachment")
        return text


class MessageCreated(BaseModel):
    model_config = _OUT
    message_id: int
    ticket: TicketOut


class TicketPatch(BaseModel):
    """Only the fields sent change; ``null`` clears category, assignee or team."""

    model_config = _IN
    status: TicketStatus = TicketStatus.NEW
    priority: Priority = Priority.NORMAL
    category_id: RowId | None = None
    need_type: NeedType = NeedType.INQUIRY
    assignee_id: RowId | None = None
    team_id: RowId | None = None
    note: str | None = Field(default=None, max_length=5000)


class TransferIn(BaseModel):
    model_config = _IN
    assignee_id: RowId | None = None
    team_id: RowId | None = None
    note: str = Field(min_length=1, max_length=5000)
    """Why: for the agent who takes it over (VIP, cross-team ...)."""


class MergeIn(BaseModel):
    model_config = _IN
    other_id: RowId
    """This contact is merged into the one in the path; its identities and tickets move."""


class TeamIn(BaseModel):
    model_config = _IN
    name: str = Field(min_length=1, max_length=120)


class TeamOut(BaseModel):
    model_config = _OUT
    id: int
    name: str


class TeamList(BaseModel):
    model_config = _OUT
    items: list[TeamOut]


class CategoryIn(BaseModel):
    model_config = _IN
    name: str = Field(min_length=1, max_length=120)
    parent_id: RowId | None = None
    team_id: RowId | None = None


class CategoryOut(BaseModel):
    model_config = _OUT
    id: int
    name: str
    parent_id: int | None
    team_id: int | None


class CategoryList(BaseModel):
    model_config = _OUT
    items: list[CategoryOut]


class CannedIn(BaseModel):
    model_config = _IN
    shortcut: str = Field(min_length=1, max_length=60, pattern=r"^[\w-]+$")
    title: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=20_000)


class CannedOut(BaseModel):
    model_config = _OUT
    id: int
    shortcut: str
    title: str
    text: str


class CannedQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: str | None = Field(default=None, max_length=60)
    """A prefix of the shortcut (with or without the leading ``/``) or words of the title."""


class CannedList(BaseModel):
    model_config = _OUT
    items: list[CannedOut]


# --- the directory's edits (admins) ---------------------------------------------------------
# PATCH bodies: only the fields sent change (``exclude_unset``); the defaults are never applied.


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # never used, and "" would not be valid against minLength


def _sent_text(max_length: int, **constraints: Any) -> Any:
    """A text field of a PATCH body: not null, not empty, if sent at all."""
    return Field(
        default="",
        min_length=1,
        max_length=max_length,
        json_schema_extra=_no_default,
        **constraints,
    )


class TeamPatch(BaseModel):
    model_config = _IN
    name: str = _sent_text(120)


class CategoryPatch(BaseModel):
    """``parent_id: null`` makes it a top-level category; ``team_id: null`` stops dispatching
    it to a team (tickets already opened keep their team)."""

    model_config = _IN
    name: str = _sent_text(120)
    parent_id: RowId | None = None
    team_id: RowId | None = None


class CannedPatch(BaseModel):
    model_config = _IN
    shortcut: str = _sent_text(60, pattern=r"^[\w-]+$")
    title: str = _sent_text(200)
    text: str = _sent_text(20_000)


class AgentPatch(BaseModel):
    """An agent's role, team, dispatch capacity and whether the account may log in."""

    model_config = _IN
    role: AgentRole = AgentRole.AGENT
    team_id: RowId | None = None
    capacity: Whole = Field(default=10, ge=0, le=1000)
    active: bool = True


class AgentQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    active: Literal["true", "false", "all"] = "true"
    """``true`` (the default): accounts that may log in; ``false``: deactivated ones; ``all``."""


class AgentList(BaseModel):
    model_config = _OUT
    items: list[AgentOut]
