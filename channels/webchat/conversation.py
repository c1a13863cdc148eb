"""What one chat session may do with the store: send, read its history, give feedback, rate.

Every read and write is scoped by the session's token claims: a session sees only tickets of its
own conversation (its contact, the web chat channel, its session id as thread key), so a token
for contact A can never read or touch contact B's tickets (invariant 5).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from channels.webchat.files import shown_files, stored_uploads
from channels.webchat.frames import (
    ErrorCode,
    FeedbackFrame,
    FrameError,
    MessageFrame,
    RatingFrame,
    ack_frame,
)
from channels.webchat.tokens import SessionClaims
from gateway import kb_feedback
from gateway.ingest import IngestResult
from gateway.metrics import Metrics
from gateway.models import (
    REPLY_TO_MESSAGE,
    Attachment,
    AuthorType,
    Channel,
    InboundMessage,
    MessageKind,
)
from gateway.pipeline import Pipeline
from gateway.routing import Router
from gateway.store import Store
from gateway.store.tables import Agent, Contact, Ticket, TicketMessage
from gateway.surveys import record_rating

_SHOWN_KINDS = (MessageKind.INCOMING.value, MessageKind.OUTGOING.value)
"""What the customer sees: never internal notes or system records."""

_UNAVAILABLE = "the message could not be stored now; send it again (same client_id)"

SETTLING = timedelta(seconds=10)
"""The longest one of our write transactions plausibly stays open between reading the clock for
a message's ``created_at`` (just before the row takes its id) and committing it; a message may
become visible that late after a message with a higher id."""


@dataclass(frozen=True, slots=True)
class Services:
    """The core services a conversation uses (taken from the application at startup)."""

    store: Store
    pipeline: Pipeline
    router: Router
    metrics: Metrics


def external_id(session_id: str, client_id: str) -> str:
    """The dedupe key of a web chat message: a resent ``client_id`` is the same message."""
    return f"{session_id}:{client_id}"


class Conversation:
    """One session's view of the store."""

    def __init__(self, claims: SessionClaims, services: Services, *, files: Path) -> None:
        self.claims = claims
        self.services = services
        self.files = files
        """The web chat's attachment store, where the session's uploads are."""

    async def send(self, frame: MessageFrame) -> dict[str, Any]:
        """Store the customer's message; returns the ack frame (only once it is committed).

        The files it names must have been uploaded (``file_routes.py``); checked before
        anything is stored, so a refused message leaves nothing behind.
        """
        claims = self.claims
        attachments: tuple[Attachment, ...] = ()
        if frame.attachments:
            # is_file() and stat() touch the disk: not on the event loop.
            attachments = await asyncio.to_thread(
                stored_uploads, frame.attachments, self.files, client_id=frame.client_id
            )
        inbound = InboundMessage(
            channel=Channel.WEBCHAT,
            external_id=external_id(claims.session_id, frame.client_id),
            external_user_id=claims.session_id,
            thread_key=claims.session_id,
            text=frame.text,
            locale=claims.locale,
            attachments=attachments,
            channel_meta={"client_id": frame.client_id},
        )
        try:
            if frame.handoff:
                result = await self._hand_off(inbound)
            else:
                result = await self.services.pipeline.on_message(inbound)
        except (SQLAlchemyError, OSError):
            raise FrameError(
                ErrorCode.UNAVAILABLE, _UNAVAILABLE, client_id=frame.client_id
            ) from None
        return ack_frame(frame.client_id, result.message_id, result.ticket_number)

    async def _hand_off(self, inbound: InboundMessage) -> IngestResult:
        """The "talk to a person" button: store the message, then escalate (no bot answer).

        The message skips the knowledge base (it is marked routed in the escalating
        transaction), so the bot never answers a customer who asked for a person.
        """
        services = self.services
        result = await services.pipeline.ingest(inbound)
        if not result.duplicate:
            services.metrics.ingested.labels(channel=Channel.WEBCHAT.value).inc()
        router = services.router
        async with services.store.write() as session:
            now = router.clock()
            message = await session.get_one(TicketMessage, result.message_id, with_for_update=True)
            if message.routed_at is None:
                message.routed_at = now
            ticket = await session.get_one(Ticket, result.ticket_id, with_for_update=True)
            await router.escalate(session, ticket, now, note="customer asked for a person")
        services.pipeline.committed.set()  # wake the outbox relay for the notice
        return result

    async def history(self, *, after: int, limit: int) -> list[dict[str, Any]]:
        """The session's shown messages past cursor ``after`` (the latest ``limit``), oldest first.

        A row takes its id when it is inserted but is seen when it commits, and on PostgreSQL
        commits come in any order: id 100 may become visible after the client was shown 101,
        so ``id > after`` alone would lose it for good. So this also returns the messages with
        ids up to ``after`` created at most ``SETTLING`` before message ``after`` was (any the
        client could not yet see must be that recent); the client drops ids it has shown.

        An agent's reply that answers one of the customer's messages carries its words
        (``quote``) as its live frame does, read in the same query (a join, not one per reply).
        """
        async with self.services.store.read() as session:
            since = await self._settling_since(session, after)
            quoted = aliased(TicketMessage)
            query = (
                self._scoped(select(TicketMessage, Ticket.number, Agent.name, quoted.text))
                .outerjoin(quoted, _answered(quoted))
                .where((TicketMessage.id > after) | (TicketMessage.created_at >= since))
            )
            rows = (
                await session.execute(query.order_by(TicketMessage.id.desc()).limit(limit))
            ).all()
        return [
            message_frame(m, number, name, quote=words) for m, number, name, words in reversed(rows)
        ]

    async def _settling_since(self, session: AsyncSession, after: int) -> datetime:
        """The oldest ``created_at`` a message with an id up to ``after`` still owed can have.

        Counted from message ``after``, not from now: it was committed before the client read
        it, so anything committed later was opened less than ``SETTLING`` before it, however
        long the client then stayed away (reconnect backoff, a long poll, a closed laptop).
        """
        cursor: datetime | None = await session.scalar(
            self._scoped(select(TicketMessage.created_at)).where(TicketMessage.id == after)
        )
        if cursor is None:  # not a message of this conversation (0: nothing shown yet)
            cursor = self.services.router.clock()
        return cursor - SETTLING

    async def feedback(self, frame: FeedbackFrame) -> dict[str, Any]:
        """Record "did this help?" on a bot answer: "yes" resolves, "no" hands it to people."""
        services = self.services
        async with services.store.write() as session:
            now = services.router.clock()
            message = (
                await session.scalars(
                    self._scoped(select(TicketMessage)).where(
                        TicketMessage.id == frame.message_id,
                        TicketMessage.author_type == AuthorType.BOT.value,
                    )
                )
            ).first()
            if message is None:
                raise FrameError(
                    ErrorCode.NOT_FOUND,
                    "no bot answer with that id in this conversation",
                    field="message_id",
                    client_id=frame.client_id,
                )
            # Resolves the ticket on "yes"; on "no" escalates it with the question and the
            # rejected answer shown to the agent, and counts the miss.
            outcome = await kb_feedback.feedback(
                session, message.id, frame.helpful, now, services.router
            )
        if outcome.changed:
            services.pipeline.committed.set()  # wake the outbox relay for any notice
        return _ack(frame.client_id, message.id, outcome.ticket.number)

    async def rate(self, frame: RatingFrame) -> dict[str, Any]:
        """Store a satisfaction rating (1-5 and a comment) of one of this session's tickets.

        Kept as a ``system`` ticket message (``channel_meta.rating``), one per ticket and
        session: a second rating replaces the first. Acting on it (a low score reopens the
        ticket) belongs to the surveys.
        """
        claims = self.claims
        async with self.services.store.write() as session:
            now = self.services.router.clock()
            ticket = (
                await session.scalars(
                    select(Ticket).where(
                        Ticket.number == frame.ticket,
                        Ticket.contact_id.in_(_contact_and_survivors(claims.contact_id)),
                        Ticket.channel == Channel.WEBCHAT.value,
                        Ticket.thread_key == claims.session_id,
                    )
                )
            ).first()
            if ticket is None:
                raise FrameError(
                    ErrorCode.NOT_FOUND,
                    "no such ticket in this conversation",
                    field="ticket",
                    client_id=frame.client_id,
                )
            key = f"{claims.session_id}:rating:{ticket.number}"
            meta = {"rating": frame.score, "comment": frame.comment, "at": now.isoformat()}
            stored = (
                await session.scalars(
                    select(TicketMessage).where(
                        TicketMessage.channel == Channel.WEBCHAT.value,
                        TicketMessage.external_id == key,
                    )
                )
            ).first()
            if stored is None:
                stored = TicketMessage(
                    ticket_id=ticket.id,
                    kind=MessageKind.SYSTEM.value,
                    author_type=AuthorType.CUSTOMER.value,
                    author_id=ticket.contact_id,
                    channel=Channel.WEBCHAT.value,
                    external_id=key,
                    text=frame.comment,
                    attachments=[],
                    channel_meta=meta,
                    created_at=now,
                    routed_at=now,  # a rating is not a question for the router
                )
                session.add(stored)
            else:
                stored.text = frame.comment
                stored.channel_meta = meta
            # The rating reaches the ticket's survey; a low one reopens it (gateway/surveys.py).
            await record_rating(session, ticket, frame.score, frame.comment, now)
            await session.flush()
        return _ack(frame.client_id, stored.id, ticket.number)

    async def file(self, name: str) -> dict[str, Any] | None:
        """The attachment named ``name`` (its bytes' digest) of one of this conversation's
        shown messages, or None: a session downloads its own files only (invariant 5)."""
        query = self._scoped(select(TicketMessage.attachments)).where(
            func.json_array_length(TicketMessage.attachments) > 0
        )
        async with self.services.store.read() as session:
            for attachments in await session.scalars(query.order_by(TicketMessage.id.desc())):
                for attachment in attachments or []:
                    ref = attachment.get("ref") if isinstance(attachment, dict) else None
                    if isinstance(ref, str) and ref and Path(ref).name == name:
                        return dict(attachment)
        return None

    def _scoped(self, query: Any) -> Any:
        """Only this session's shown messages (joined to their ticket and agent)."""
        claims = self.claims
        return (
            query.join(Ticket, Ticket.id == TicketMessage.ticket_id)
            .outerjoin(
                Agent,
                (Agent.id == TicketMessage.author_id)
                & (TicketMessage.author_type == AuthorType.AGENT.value),
            )
            .where(
                Ticket.contact_id.in_(_contact_and_survivors(claims.contact_id)),
                Ticket.channel == Channel.WEBCHAT.value,
                Ticket.thread_key == claims.session_id,
                TicketMessage.kind.in_(_SHOWN_KINDS),
            )
        )


def _answered(quoted: type[TicketMessage]) -> ColumnElement[bool]:
    """Joins ``quoted`` to the customer's message an agent's reply names (``REPLY_TO_MESSAGE``).

    The reply's own ticket and incoming messages only, as the agent API allows (``gateway/desk.py``)
    and the live frame's ``quote`` has it (``workers/outbound.py``): whatever a stored id says,
    a resume never carries another conversation's words, nor a note's.
    """
    return and_(
        TicketMessage.author_type == AuthorType.AGENT.value,
        quoted.id == TicketMessage.channel_meta[REPLY_TO_MESSAGE].as_integer(),
        quoted.ticket_id == TicketMessage.ticket_id,
        quoted.kind == MessageKind.INCOMING.value,
    )


def _contact_and_survivors(contact_id: int) -> Select[Any]:
    """The contact and the one it was merged into (tickets may have moved to the survivor)."""
    merged_into = select(Contact.merged_into_id).where(Contact.id == contact_id)
    return select(Contact.id).where((Contact.id == contact_id) | Contact.id.in_(merged_into))


async def live_frame(store: Store, session_id: str, event: dict[str, Any]) -> dict[str, Any] | None:
    """The frame for an event the sender published to ``session_id`` (see ``hub.py``).

    A reply, notice or survey names its stored message, which is read back (once per event and
    process) for its author and agent name, and only if it belongs to this session's
    conversation. An event without one (a notice of no ticket) is shown as a system message.
    A reply that answers one of the customer's messages carries its words (``quote``), as the
    sender looked them up (``Conversation.history`` reads them from the store for a resume).
    """
    if event.get("type") == "typing":
        return {"type": "typing", "author": "agent", "name": event.get("name")}
    if event.get("type") != "message":
        return None
    message_id = event.get("message_id")
    if isinstance(message_id, int):
        async with store.read() as session:
            row = (
                await session.execute(
                    select(TicketMessage, Ticket.number, Agent.name)
                    .join(Ticket, Ticket.id == TicketMessage.ticket_id)
                    .outerjoin(
                        Agent,
                        (Agent.id == TicketMessage.author_id)
                        & (TicketMessage.author_type == AuthorType.AGENT.value),
                    )
                    .where(
                        TicketMessage.id == message_id,
                        TicketMessage.kind.in_(_SHOWN_KINDS),
                        Ticket.channel == Channel.WEBCHAT.value,
                        Ticket.thread_key == session_id,
                    )
                )
            ).first()
        if row is None:
            return None  # not this session's: never show another conversation's message
        frame = message_frame(row[0], row[1], row[2])
    else:
        frame = {
            "type": "message",
            "message_id": None,
            "author": AuthorType.SYSTEM.value,
            "name": None,
            "text": event.get("text", ""),
            "ticket": event.get("ticket"),
        }
    frame["kind"] = event.get("kind", "reply")
    if event.get("template"):
        frame["template"] = event["template"]
    if isinstance(event.get("quote"), str):
        frame["quote"] = event["quote"]
    return frame


def _ack(client_id: str | None, message_id: int, ticket: str) -> dict[str, Any]:
    return ack_frame(client_id or "", message_id, ticket)


def message_frame(
    message: TicketMessage,
    ticket: str | None,
    agent_name: str | None,
    *,
    quote: str | None = None,
) -> dict[str, Any]:
    """A stored message as the widget shows it; ``quote``: the words of the customer's message
    an agent's reply answers (the widget cannot point at a message, so it shows them)."""
    author = message.author_type
    frame: dict[str, Any] = {
        "type": "message",
        "message_id": message.id,
        "author": author,
        "name": agent_name if author == AuthorType.AGENT.value else None,
        "text": message.text,
        "ticket": ticket,
        "at": _iso(message.created_at),
    }
    if message.attachments:
        frame["attachments"] = shown_files(message.attachments)
    meta = message.channel_meta or {}
    if author == AuthorType.CUSTOMER.value and "client_id" in meta:
        frame["client_id"] = meta["client_id"]
    if author == AuthorType.SYSTEM.value and "outbox_kind" in meta:
        # A notice or survey the sender stored: on resume it shows as it did live.
        frame["kind"] = meta["outbox_kind"]
        if meta.get("template"):
            frame["template"] = meta["template"]
    # Stripped and left out when empty, as the sender does for a live frame (a file alone).
    if quote is not None and quote.strip():
        frame["quote"] = quote.strip()
    if author == AuthorType.BOT.value:
        feedback = meta.get("feedback")
        frame["helpful"] = feedback.get("helpful") if isinstance(feedback, dict) else None
        if meta.get("kb_choices"):
            frame["choices"] = True
    return frame


def _iso(value: datetime) -> str:
    return value.isoformat()
