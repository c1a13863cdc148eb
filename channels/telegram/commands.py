"""The bot's commands: ``/start``, ``/status``, ``/new``, ``/human``, ``/help``.

A command is not a question for the ticket, so it is not ingested (it would open a ticket and
ask the knowledge base about "/start"). Its effects are written in one transaction, and its
answer goes straight back to the chat before the update is acknowledged: an answer to a
question the user just asked, not something the gateway owes later. A failed answer leaves the
update unacknowledged, so Telegram asks again; every command is safe to repeat. Once answered,
the command's ``update_id`` is recorded for its chat: an update Telegram delivers again because
its acknowledgement was lost (the gateway stopped between the answer and the 200) is not
answered twice. An answer refused because the user blocked the bot or deleted their account
(403) is final: no redelivery could reach them, so the identity is marked unreachable, as a
refused notice marks it, and the command counts as answered. So is one refused as a bad
request (400, logged): a redelivery would be refused the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Bot
from telegram.error import BadRequest, Forbidden

from channels.telegram import conversations
from channels.telegram.bot import forbidden_reason
from channels.telegram.state import command_answered, record_answered
from channels.telegram.texts import status_name, text
from gateway.ingest.contacts import resolve_contacts
from gateway.models import DONE_STATUSES, InboundMessage, TicketStatus
from gateway.pipeline import Pipeline
from gateway.reopening import reopen
from gateway.routing import Router
from gateway.store import Store
from gateway.store.tables import Ticket
from workers.templates import render

log = logging.getLogger(__name__)

STATUS_SHOWN = 20
"""Open tickets ``/status`` lists by name. A customer may have many more (an importer, a
business with a ticket per order): listed whole, the answer would pass Telegram's 4,096
characters, be refused (400), and the command stay unacknowledged, held up for good."""


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What a command needs: the store, the router, the bot, and the time."""

    store: Store
    router: Router
    pipeline: Pipeline
    bot: Bot
    now: datetime


async def run_command(ctx: CommandContext, inbound: InboundMessage) -> None:
    """Carry out the command in ``inbound.channel_meta["command"]`` and answer it, once."""
    command = inbound.channel_meta["command"]
    chat_id = int(inbound.channel_meta["chat_id"])
    update_id = int(inbound.channel_meta["update_id"])
    if await command_answered(ctx.store, chat_id, update_id):
        log.info("command already answered", extra={"update_id": update_id})
        return
    answer: str | None
    if command == "start":
        answer = await _start(ctx, inbound)
    elif command == "status":
        answer = await _status(ctx, inbound)
    elif command == "new":
        answer = await _new(ctx, inbound, chat_id)
    elif command == "human":
        answer = await _human(ctx, inbound, chat_id)
    elif command == "help":
        answer = await _help(ctx, inbound)
    else:  # pragma: no cover - parse_update only lets known commands through
        raise ValueError(f"unknown command {command!r}")
    if answer:
        try:
            await ctx.bot.send_message(chat_id, answer)
        except Forbidden as exc:
            # Blocked, or the account deleted, between the command and its answer. Failing the
            # update would only have Telegram deliver it again to the same refusal, holding up
            # the poller (every chat waits behind its retries) or this chat's webhook queue.
            async with ctx.store.write() as session:
                await conversations.set_reachable(
                    session, inbound.external_user_id, False, now=ctx.now
                )
            log.info(
                "command not answered: %s", forbidden_reason(exc), extra={"update_id": update_id}
            )
        except BadRequest as exc:
            # Refused for good ("chat not found"): the same answer would be refused on every
            # redelivery, while the chat's later updates (every chat's, when polling) wait
            # behind it. Failures that may pass (5xx, timeouts) still raise.
            log.warning(
                "command not answered: Telegram refused the answer",
                extra={"update_id": update_id, "error": exc.message},
            )
    await record_answered(ctx.store, chat_id, update_id, ctx.now)


async def _start(ctx: CommandContext, inbound: InboundMessage) -> str:
    """Make the user a contact (with their language) and welcome them."""
    async with ctx.store.write() as session:
        await conversations.lock_sender(session, inbound)
        # A user who blocked the bot and comes back presses "Restart", which sends /start:
        # like any message, it makes their identity reachable again.
        await resolve_contacts(session, [inbound], ctx.now)
    return text("welcome", inbound.locale)


async def _help(ctx: CommandContext, inbound: InboundMessage) -> str | None:
    """What the bot does; or, with words after the command ("/help my parcel broke"), those
    words as the customer's question, answered as any message is (they were dropped)."""
    words = _words_after(inbound)
    if words is None:
        return text("help", inbound.locale)
    await ctx.pipeline.on_message(words)
    return None


async def _status(ctx: CommandContext, inbound: InboundMessage) -> str:
    """The sender's own open tickets, and nobody else's: the newest :data:`STATUS_SHOWN`,
    then how many more there are."""
    tickets: list[tuple[str, str]] = []
    total = 0
    async with ctx.store.read() as session:
        contact_id = await conversations.contact_of(session, inbound.external_user_id)
        if contact_id is not None:
            tickets, total = await conversations.open_tickets(
                session, contact_id, limit=STATUS_SHOWN
            )
    if not tickets:
        return text("status_none", inbound.locale)
    lines = [text("status_header", inbound.locale)]
    lines += [f"{number} · {status_name(status, inbound.locale)}" for number, status in tickets]
    if total > len(tickets):
        lines.append(text("status_more", inbound.locale).format(count=total - len(tickets)))
    return "\n".join(lines)


async def _new(ctx: CommandContext, inbound: InboundMessage, chat_id: int) -> str | None:
    """Detach the chat's tickets, so what comes next opens a new one: the words after the
    command, if any (the new ticket's notice answers them), else the next message."""
    words = _words_after(inbound)
    if words is not None:
        words = words.model_copy(update={"ticket_ref": None})  # new: not a replied-to ticket
    async with ctx.store.write() as session:
        # Delivered again after its words were stored: the ticket they opened stays the chat's.
        if words is None or not await conversations.stored(session, words.external_id):
            await conversations.start_new_conversation(session, chat_id)
    if words is None:
        return text("new_ticket", inbound.locale)
    await ctx.pipeline.on_message(words)
    return None


async def _human(ctx: CommandContext, inbound: InboundMessage, chat_id: int) -> str | None:
    """Escalate the chat's open ticket; the "escalated" notice goes out through the outbox.

    Words after the command are the customer's message, for people: stored on the chat's
    ticket (a new one if none is open) and escalated by the router without asking the
    knowledge base (``text_from``). Sent as a Reply, the command alone escalates the ticket
    its words would have gone to (ingest's rule): the replied one, reopened if it was done
    within the reopen window; past it, the chat's open one."""
    words = _words_after(inbound, text_from="human")
    if words is not None:
        await ctx.pipeline.on_message(words)
        return None
    async with ctx.store.write() as session:
        contact_id = await conversations.contact_of(session, inbound.external_user_id)
        ticket = None
        if contact_id and inbound.ticket_ref:  # sent as a Reply: the ticket it answers
            ticket = await conversations.ticket_numbered(session, contact_id, inbound.ticket_ref)
            if ticket is not None and not _taken_back(ctx, session, ticket):
                ticket = None
        if contact_id and ticket is None:
            ticket = await conversations.conversation_ticket(session, contact_id, chat_id)
        if ticket is None:
            return text("human_nothing_open", inbound.locale)
        if ticket.escalated_at is not None:
            return render("escalated", inbound.locale, number=ticket.number)
        await ctx.router.escalate(
            session, ticket, ctx.now, note="the customer asked for a person (/human)"
        )
    ctx.pipeline.committed.set()  # wake the outbox relay for the notice
    return None


def _taken_back(ctx: CommandContext, session: AsyncSession, ticket: Ticket) -> bool:
    """Whether the replied ticket can be escalated: open, or done within the reopen window
    and reopened now ("/human" replied to a message of a ticket closed yesterday escalated
    the chat's other, open ticket, or with none open asked for a question the customer had
    just pointed at). Past the window, a reply goes to the chat's open ticket: a person is
    asked for there, as "/human <words>" would put the words there."""
    if TicketStatus(ticket.status) not in DONE_STATUSES:
        return True
    done_at = ticket.closed_at or ticket.resolved_at or ticket.updated_at
    if ctx.now - done_at > ctx.pipeline.ingest.reopen_window:
        return False
    reopen(session, ticket, ctx.now, note="the customer asked for a person (/human) about it")
    ticket.resolved_by_bot = False  # the customer took the bot's resolution back
    return True


def _words_after(inbound: InboundMessage, *, text_from: str | None = None) -> InboundMessage | None:
    """What the user typed after the command (``/human my parcel broke``), as their message;
    None if nothing. The message keeps the command's ids, so a redelivery is deduplicated."""
    words = str(inbound.channel_meta.get("command_args") or "").strip()
    if not words:
        return None
    meta = dict(inbound.channel_meta)
    if text_from is not None:
        meta["text_from"] = text_from
    return inbound.model_copy(update={"text": words, "channel_meta": meta})
