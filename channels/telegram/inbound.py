"""One Telegram update, from JSON to committed: the step the webhook and the poller share.

``await TelegramInbound.handle(update)`` returns once everything the update asks for is
committed (and a command answered); only then may the caller acknowledge the update (answer
the webhook with 200, or move the polling offset past it). It raises when that failed, and the
update must come again; every path is safe to repeat: messages are deduplicated on
``(telegram, "<chat>:<message>")``, edits and button presses are applied once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from telegram import Bot
from telegram.error import TelegramError

from channels.base import ChannelInputError
from channels.telegram import conversations, edits
from channels.telegram.callbacks import on_callback
from channels.telegram.commands import CommandContext, run_command
from channels.telegram.files import download_attachments
from channels.telegram.parse import Ignored, addressee, parse_update
from channels.telegram.state import claim_once, claimed
from channels.telegram.texts import TEXTS
from gateway.ingest.contacts import identity_key, resolve_contacts
from gateway.metrics import Metrics
from gateway.models import Channel, InboundMessage
from gateway.pipeline import Pipeline
from gateway.routing import Router
from gateway.settings import TelegramSettings
from gateway.store import Store
from gateway.store.types import utcnow

log = logging.getLogger(__name__)

CHANNEL = Channel.TELEGRAM.value


class TelegramInbound:
    """Turns updates into stored messages, commands, edits and button presses."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        store: Store,
        router: Router,
        metrics: Metrics,
        bot: Bot,
        settings: TelegramSettings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.router = router
        self.metrics = metrics
        self.bot = bot
        self.settings = settings
        self.clock = clock
        self.attachments_dir = Path(settings.attachment_dir)
        self._username: str | None = None

    async def handle(self, update: Mapping[str, Any]) -> None:
        """Process one update; returns once it may be acknowledged."""
        username = await self._own_username() if addressee(update) else None
        try:
            parsed = parse_update(
                update, max_bytes=self.settings.attachment_max_bytes, bot_username=username
            )
        except ChannelInputError as exc:
            self.metrics.rejected.labels(channel=CHANNEL, reason=exc.reason).inc()
            log.info("telegram update refused", extra={"reason": exc.reason, "detail": exc.detail})
            return
        if isinstance(parsed, Ignored):
            await self._ignore(parsed)
            return
        meta = parsed.channel_meta
        if {"callback_query_id", "edit_date", "command"} & meta.keys():
            await self._heard_from(parsed)
        if not parsed.locale and {"callback_query_id", "command"} & meta.keys():
            parsed = await self._in_known_language(parsed)
        if "member_status" in meta:
            await self._membership(parsed)
        elif "callback_query_id" in meta:
            await on_callback(self._context(), parsed)
        elif "edit_date" in meta:
            await self._edit(parsed)
        elif "command" in meta:
            if "reply_to" in meta:  # "/human ..." sent as a Reply: its words go to that ticket
                parsed = await self._replying(parsed)
            await run_command(self._context(), parsed)
        else:
            await self._message(parsed)

    async def _own_username(self) -> str:
        """The bot's username, asked of ``getMe`` the first time a command names a bot (not
        through ``Bot.initialize()``, whose error on a refused token holds the token: see
        ``bot.py``). If Telegram cannot say, the update fails and comes again."""
        if self._username is None:
            me = await self.bot.get_me()
            self._username = me.username or ""
        return self._username

    async def _heard_from(self, inbound: InboundMessage) -> None:
        """Nobody can send a bot they block anything: a user marked unreachable who presses a
        button, edits or sends a command is reachable again (ingest says so for messages),
        or the notices and replies of their open tickets would keep failing."""
        async with self.store.read() as session:
            was_blocked = await conversations.blocked(session, inbound.external_user_id)
        if was_blocked:
            async with self.store.write() as session:
                await conversations.set_reachable(
                    session, inbound.external_user_id, True, now=self.clock()
                )

    async def _in_known_language(self, inbound: InboundMessage) -> InboundMessage:
        """``inbound`` in its contact's language, which Telegram did not say (``language_code``
        is optional): the answer to a command or a press was in Chinese while the customer's
        notices, which follow the contact's language, were in English."""
        async with self.store.read() as session:
            locale = await conversations.contact_locale(session, inbound.external_user_id)
        return inbound if locale is None else inbound.model_copy(update={"locale": locale})

    async def _membership(self, inbound: InboundMessage) -> None:
        """The user blocked the bot or unblocked it: their identity follows at once, so notices
        go to their email from the block on (not after one more refused send), and agents'
        replies reach them again from the unblock on (not only once they write)."""
        unblocked = inbound.channel_meta["member_status"] != "kicked"
        async with self.store.write() as session:
            await conversations.set_reachable(
                session, inbound.external_user_id, unblocked, now=self.clock()
            )

    def _context(self) -> CommandContext:
        return CommandContext(self.store, self.router, self.pipeline, self.bot, self.clock())

    async def _message(self, inbound: InboundMessage) -> None:
        if "contact" in inbound.channel_meta:
            await self._shared_contact(inbound)
            return
        if "reply_to" in inbound.channel_meta:
            inbound = await self._replying(inbound)
        if inbound.attachments:
            inbound = await self._downloaded(inbound)
        await self.pipeline.on_message(inbound)

    async def _downloaded(self, inbound: InboundMessage) -> InboundMessage:
        """``inbound`` with its files fetched through ``getFile`` into the attachment store."""
        return await download_attachments(
            self.bot,
            inbound,
            directory=self.attachments_dir,
            max_bytes=self.settings.attachment_max_bytes,
        )

    async def _replying(self, inbound: InboundMessage) -> InboundMessage:
        """A message sent with Telegram's "Reply" goes to the ticket of the message it
        answers (ingest checks the ticket is the sender's), not to the chat's latest: after
        ``/new``, the answer to an agent's question on the earlier ticket went to the new one,
        where that agent never saw it. (Ingest decides what a reference to a ticket closed
        beyond its reopen window does.)"""
        meta = inbound.channel_meta
        async with self.store.read() as session:
            number = await conversations.replied_ticket(
                session, int(meta["chat_id"]), int(meta["reply_to"])
            )
        return inbound if number is None else inbound.model_copy(update={"ticket_ref": number})

    async def _shared_contact(self, inbound: InboundMessage) -> None:
        """A shared contact card: the user's own verified phone goes on their contact
        (joining no other: :func:`conversations.merge_by_phone`); their card is recorded on
        the conversation's open ticket, but opens none (their own number is not a question).
        Someone else's card is a message for people ("call my colleague"): it is stored,
        opening a ticket if none is open, where before it was dropped with no answer."""
        chat_id = int(inbound.channel_meta["chat_id"])
        async with self.store.write() as session:
            await conversations.lock_sender(session, inbound)
            # The sender's own contact first (found by their Telegram id, or new), without the
            # phone: whether the phone joins them to a contact that proved it before is
            # merge_by_phone's decision (not if another Telegram account proved it).
            unproven = inbound.model_copy(update={"phone": None, "phone_verified": False})
            found = await resolve_contacts(session, [unproven], self.clock())
            contact_id = int(found[identity_key(inbound)]["id"])
            if inbound.phone and inbound.phone_verified:
                contact_id = await conversations.merge_by_phone(session, contact_id, inbound.phone)
            ticket = await conversations.conversation_ticket(session, contact_id, chat_id)
        if ticket is not None or not inbound.phone_verified:
            await self.pipeline.on_message(inbound)

    async def _edit(self, inbound: InboundMessage) -> None:
        files: InboundMessage | None = None
        if inbound.attachments:
            # Telegram's apps can replace a message's photo or document while editing it: the
            # new file is fetched (outside any transaction) and takes the old one's place.
            # A caption's edit carries the same files, fetched once already.
            async with self.store.read() as session:
                stored = await edits.stored_files(session, inbound.external_id)
            if stored is not None and stored.replaced_by(inbound):
                inbound = files = await self._downloaded(inbound)
        async with self.store.write() as session:
            applied = await edits.apply_edit(
                session,
                inbound.external_id,
                inbound.text,
                int(inbound.channel_meta["edit_date"]),
                self.clock(),
                reopen_window=self.pipeline.ingest.reopen_window,
                with_files=files,
                update_id=int(inbound.channel_meta["update_id"]),
                content=edits.edited_content(inbound),
            )
        if applied is None:
            if "command_edit" in inbound.channel_meta:
                return  # the command's words were not stored: nothing to correct
            # An edit of a message we never stored (sent before the bot): store the edited
            # text as the message.
            await self._message(inbound)
        elif applied.to_route:
            self.pipeline.reroute(applied.message_id)
        elif applied.follow_up is not None:
            # A thanks on a ticket closed long ago, edited into a request: the request is a
            # message of its own, which ingest threads as one sent now (a linked follow-up).
            follow_up = {"external_id": applied.follow_up, "ticket_ref": applied.follow_up_of}
            await self._message(inbound.model_copy(update=follow_up))

    async def _ignore(self, ignored: Ignored) -> None:
        """Groups and channels are not served: count them, and tell a group once."""
        self.metrics.rejected.labels(channel=CHANNEL, reason=ignored.reason).inc()
        if ignored.reason != "group" or ignored.chat_id is None:
            return
        claim = {"update_id": ignored.update_id}
        if ignored.linked_chat_id is not None:
            # Telegram upgrades a group to a supergroup by itself, under a new chat id, and
            # says so with a service message on each side: a group told once is not told again
            # under its new id, and the service message, which nobody wrote, tells nothing.
            keys = [_explained_key(ignored.chat_id), _explained_key(ignored.linked_chat_id)]
            if any([await claimed(self.store, key) for key in keys]):
                for key in keys:
                    await claim_once(self.store, key, claim, self.clock())
            return
        if not await claim_once(self.store, _explained_key(ignored.chat_id), claim, self.clock()):
            return
        explanation = "\n".join(TEXTS["group_unsupported"].values())
        try:
            await self.bot.send_message(ignored.chat_id, explanation)
        except TelegramError as exc:
            # Claimed first, sent second: at most one explanation, even if this one is lost.
            log.info("group explanation not sent", extra={"error": type(exc).__name__})


def _explained_key(chat_id: int) -> str:
    """The ``channel_state`` key claimed once the group ``chat_id`` was told that the bot works
    only in private chats."""
    return f"group_explained:{chat_id}"


TELEGRAM = web.AppKey("telegram", TelegramInbound)
"""The channel's inbound side, set when the application starts."""
