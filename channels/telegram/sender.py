"""Delivering an :class:`OutboundMessage` to a Telegram user: ``SENDERS[Channel.TELEGRAM]``.

- Texts over 4,096 characters (``sendMessage``'s limit,
  https://core.telegram.org/bots/api#sendmessage) go as several messages, cut at paragraph
  breaks, then line breaks, then spaces.
- A bot answer from the knowledge base carries a "did this help?" keyboard, a survey the 1-5
  star keyboard; their presses come back as callback queries (``callbacks.py``).
- Agents' attachments are read from the attachment store and sent as photos, videos, songs
  or voice notes (which Telegram shows or plays), anything else as documents. The messages a
  delivery is sent as are made in ``delivery_parts.py``; here they are sent, in order.
- An agent's reply that names the customer's message it answers (``OutboundMessage.quote``)
  quotes it in the delivery's first message (``reply_parameters``), or, when it is not a
  message of this chat (another channel's, another chat's), starts that message with its words
  as a blockquote entity (``blockquote.py``); other replies quote nothing.
- ``RetryAfter`` (HTTP 429, https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this):
  a short wait is waited out here; a longer one goes back to RQ as a
  :class:`TransientChannelError` carrying the delay. Timeouts and network errors are transient too.
  Once part of a delivery has gone (a long text's first message, the text before a file), the
  rest is waited for longer (:data:`LATER_PART_PATIENCE`), network errors included. A delivery
  that stops part-way all the same records the parts it sent (``state.record_parts``): RQ's
  retry, or an admin's, sends only the rest, and a failure's reason says how many went.
- A 413 (an upload over the Bot API's limit) is final, though PTB raises it as a network error.
- ``Forbidden`` (403: the user blocked the bot, or deleted their account): the identity is
  marked unreachable and the row fails (:class:`RecipientUnreachable`) with the reason
  (``bot.forbidden_reason``): retrying cannot help; the delivery job hands a notice or survey
  to the contact's email when they have one.
- Hand-over (``channels.base.HandsOver``): the Bot API has no idempotency key, so the moment a
  message leaves is the last one we can mark. An httpx event hook gives each ``sendMessage`` of
  a delivery httpcore's ``trace`` callback, which runs the job's hand-over just before the
  request body is written (the server cannot act on a request without it). A work horse killed
  after that, waiting for the answer, has its row taken as delivered by the retry: at most once
  in that window (as SMTP after the end of data), where without the mark it would send twice.
  A request Telegram refuses (flood control) delivered nothing: before the delivery waits to
  try again, the parts sent so far are recorded and the mark withdrawn, so a kill in the wait
  resumes after them. What remains: a kill between the mark and the body's write loses the
  message; a text cut into several messages is marked at the first, so a kill between parts
  (not in a wait) loses the rest; a network error after the body went (a timeout waiting for the
  answer) is retried and may send twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from functools import partial
from typing import Any, TypeVar

import httpx
from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from channels.base import ChannelError, Handover, RecipientUnreachable, TransientChannelError
from channels.telegram import conversations, delivery_parts
from channels.telegram.bot import forbidden_reason, open_bot, retry_seconds
from channels.telegram.delivery_parts import Part
from channels.telegram.state import load_progress, record_parts
from gateway.models import DeliveryReceipt, OutboundMessage
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.types import utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")

HANDED_OVER_ID = "telegram:handed-over"
"""A row's ``external_id`` from its hand-over until the answer gives the message id."""


class _Mark:
    """A delivery's hand-over mark: made by the first request whose body goes, withdrawn when
    Telegram refused that request and the delivery waits before trying again."""

    def __init__(self, handover: Handover) -> None:
        self._handover = handover
        self.made = False

    async def make(self) -> None:
        if not self.made:
            self.made = True
            await self._handover(HANDED_OVER_ID)

    async def withdraw(self) -> None:
        if self.made:
            self.made = False
            await self._handover(None)


_handing_over: ContextVar[_Mark | None] = ContextVar("telegram_handing_over", default=None)
"""The current delivery's hand-over, for the requests its task makes (each send is a task)."""

_BODY_STARTS = "http11.send_request_body.started"

LATER_PART_PATIENCE = 30.0
"""Seconds of flood control or network trouble a delivery waits out once part of it has gone.
Bounded: the job's RQ timeout (180 s) kills a work horse that waits on, and a killed delivery
loses its parts not yet sent (see the hand-over above)."""


async def _mark_before_body(request: httpx.Request) -> None:
    """httpx's request hook: a delivery's request calls its hand-over before its body goes."""
    mark = _handing_over.get()
    if mark is None:
        return

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event == _BODY_STARTS:
            await mark.make()

    request.extensions = {**request.extensions, "trace": trace}


_HOOKS: dict[str, Any] = {"event_hooks": {"request": [_mark_before_body]}}


class TelegramSender:
    """Sends on Telegram through a ``Bot`` made for each send (a ``Bot`` is loop-bound), or one
    kept from :meth:`open` to :meth:`aclose` (a worker process's event loop outlives its jobs;
    a new ``Bot`` costs two HTTP clients and their TLS contexts, most of a send's time)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = settings.telegram
        self._kept: tuple[Bot, AsyncExitStack] | None = None
        self._kept_store: Store | None = None

    async def open(self) -> None:
        """Keep one ``Bot`` and its connections for every send until :meth:`aclose`."""
        if self._kept is None:
            stack = AsyncExitStack()
            bot = await stack.enter_async_context(
                open_bot(self.config, redis_url=self.settings.redis_url, httpx_kwargs=_HOOKS)
            )
            self._kept = (bot, stack)

    async def aclose(self) -> None:
        if self._kept is not None:
            await self._kept[1].aclose()
            self._kept = self._kept_store = None

    async def send_handing_over(self, msg: OutboundMessage, handover: Handover) -> DeliveryReceipt:
        """:meth:`send`, calling ``handover`` just before the first request's body goes (and
        with ``None`` if Telegram refuses it and the delivery waits: see the module doc)."""
        token = _handing_over.set(_Mark(handover))
        try:
            return await self.send(msg)
        finally:
            _handing_over.reset(token)

    async def send(self, msg: OutboundMessage) -> DeliveryReceipt:
        """Deliver ``msg``; the receipt's ``external_id`` is the (first) Telegram message id.

        A delivery of several parts that stops part-way records the parts sent (``state``), and
        its next attempt sends only the rest: the customer never reads a part twice.
        """
        chat_id = int(msg.recipient)
        parts = delivery_parts.parts(msg)
        if not parts:
            raise ChannelError("nothing to send: no text and no attachment")
        earlier = await self._progress(msg) if len(parts) > 1 else []
        ids = list(earlier)
        files_sent = max(0, len(ids) - (len(parts) - len(msg.attachments)))  # texts go first
        await delivery_parts.check_files(msg.attachments[files_sent:])
        recorded = len(earlier)  # ids[:recorded] are in the store's record of the delivery

        async def before_wait() -> None:
            # Telegram refused a request: record what went, then withdraw the mark, so a kill
            # during the wait resumes after the parts sent instead of taking all as delivered.
            nonlocal recorded
            if len(ids) > recorded:
                if not await self._parts_sent(msg, chat_id, ids[recorded:], progress=ids):
                    return  # not recorded: a resumed delivery would repeat them; keep the mark
                recorded = len(ids)
            mark = _handing_over.get()
            if mark is not None:
                await mark.withdraw()

        try:
            try:
                if self._kept is not None:
                    await self._send_all(self._kept[0], chat_id, parts, ids, before_wait)
                else:
                    async with open_bot(
                        self.config, redis_url=self.settings.redis_url, httpx_kwargs=_HOOKS
                    ) as bot:
                        await self._send_all(bot, chat_id, parts, ids, before_wait)
            except TelegramError:
                if len(ids) > recorded:
                    await self._parts_sent(msg, chat_id, ids[recorded:], progress=ids)
                raise
        except Forbidden as exc:
            reason = forbidden_reason(exc)
            await self._unreachable(msg, reason)
            raise RecipientUnreachable(f"{reason}: {exc.message}") from None
        except RetryAfter as exc:
            raise TransientChannelError(
                f"Telegram flood control{_so_far(ids, parts)}", retry_after=retry_seconds(exc)
            ) from None
        except BadRequest as exc:
            raise ChannelError(
                f"Telegram refused the message: {exc.message}{_so_far(ids, parts)}"
            ) from None
        except NetworkError as exc:  # includes TimedOut
            if _too_large(exc):
                raise ChannelError(
                    f"Telegram refused the file as too large: {exc.message}{_so_far(ids, parts)}"
                ) from None
            raise TransientChannelError(
                f"Telegram unreachable: {type(exc).__name__}{_so_far(ids, parts)}"
            ) from None
        except TelegramError as exc:
            raise ChannelError(
                f"Telegram error: {type(exc).__name__}: {exc.message}{_so_far(ids, parts)}"
            ) from None
        if recorded:  # the parts not yet recorded, and the record of progress cleared
            await self._parts_sent(msg, chat_id, ids[recorded:], progress=[])
        elif len(ids) > 1:
            await self._parts_sent(msg, chat_id, ids[1:])
        return DeliveryReceipt(external_id=str(ids[0]), channel_meta={"message_ids": ids})

    async def _send_all(
        self,
        bot: Bot,
        chat_id: int,
        parts: list[Part],
        ids: list[int],
        before_wait: Callable[[], Awaitable[None]],
    ) -> None:
        """Send the parts not yet in ``ids`` (sent by an earlier attempt), adding each one's id."""
        for part in parts[len(ids) :]:
            call = partial(part, bot, chat_id)
            sent = await self._patiently(call, started=bool(ids), before_wait=before_wait)
            ids.append(sent.message_id)

    async def _patiently(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        started: bool,
        before_wait: Callable[[], Awaitable[None]],
    ) -> T:
        """Make ``call``, waiting out one short ``RetryAfter`` (a longer one is raised); once
        part of the delivery has gone (``started``), any ``RetryAfter`` and network error for
        up to :data:`LATER_PART_PATIENCE` seconds in all. ``before_wait`` runs before each
        wait."""
        waited = 0.0
        failures = 0
        while True:
            try:
                return await call()
            except RetryAfter as exc:
                wait = retry_seconds(exc)
                failures += 1
                if started:
                    if waited + wait > max(LATER_PART_PATIENCE, self.config.max_retry_wait):
                        raise
                elif failures > 1 or wait > self.config.max_retry_wait:
                    raise
                log.info("telegram flood control, waiting", extra={"seconds": wait})
            except BadRequest:
                raise  # a NetworkError to PTB, but final
            except NetworkError as exc:  # TimedOut too: that part may have gone, not the rest
                if _too_large(exc):
                    raise  # final too: the same upload is refused again
                wait = min(2.0**failures, 8.0)
                failures += 1
                if not started or failures > 10 or waited + wait > LATER_PART_PATIENCE:
                    raise
                log.info(
                    "telegram unreachable mid-delivery, retrying",
                    extra={"seconds": wait, "error": type(exc).__name__},
                )
            await before_wait()
            await asyncio.sleep(wait)
            waited += wait

    @asynccontextmanager
    async def _store(self) -> AsyncIterator[Store]:
        """The store for the channel's own writes beside a delivery: kept with the ``Bot``
        from :meth:`open` to :meth:`aclose` (a store per write cost an engine and a
        connection for every reply sent with a file), else one for this write."""
        if self._kept is not None:
            if self._kept_store is None:
                self._kept_store = Store(self.settings.database_url)
                self._kept[1].push_async_callback(self._kept_store.close)
            yield self._kept_store
            return
        store = Store(self.settings.database_url)
        try:
            yield store
        finally:
            await store.close()

    async def _progress(self, msg: OutboundMessage) -> list[int]:
        """The parts earlier attempts of this delivery sent (read for a delivery of several)."""
        async with self._store() as store:
            return await load_progress(store, msg.outbox_id)

    async def _parts_sent(
        self,
        msg: OutboundMessage,
        chat_id: int,
        ids: list[int],
        *,
        progress: list[int] | None = None,
    ) -> bool:
        """Record the delivery's parts ``ids``, so a reply to one finds the ticket, and with
        ``progress`` the parts sent so far (``[]``: the delivery ended). Delivered is delivered:
        a failure here is logged (and False returned), and the row is still marked as it would
        have been."""
        try:
            async with self._store() as store:
                await record_parts(store, chat_id, msg.outbox_id, ids, utcnow(), progress=progress)
        except Exception as exc:
            log.warning(
                "telegram parts not recorded",
                extra={"outbox_id": msg.outbox_id, "error": repr(exc)},
            )
            return False
        return True

    async def _unreachable(self, msg: OutboundMessage, reason: str) -> None:
        """Mark the identity unreachable (the job hands a notice or survey to email)."""
        log.info("telegram user unreachable", extra={"outbox_id": msg.outbox_id, "reason": reason})
        async with self._store() as store, store.write() as session:
            await conversations.set_reachable(session, msg.recipient, False, now=utcnow())


_TOO_LARGE = ("request entity too large", "content too large", "payload too large", "(413)")
"""How a 413 reads: the Bot API's description, and python-telegram-bot's own text when the body
is not JSON (``HTTPStatus(413).phrase`` and the code): "Request Entity Too Large" up to
Python 3.12, "Content Too Large" from 3.13 (RFC 9110); "Payload Too Large" is RFC 7231's."""


def _too_large(exc: NetworkError) -> bool:
    """A 413: the Bot API refuses an upload over its limit (50 MB,
    https://core.telegram.org/bots/api#sending-files). python-telegram-bot raises any status
    it has no class for as a ``NetworkError`` and keeps no code, only Telegram's description.
    Not compared with this Python's ``HTTPStatus`` phrase: Telegram's words do not change with
    it."""
    said = exc.message.lower()
    return any(words in said for words in _TOO_LARGE)


def _so_far(ids: list[int], parts: list[Part]) -> str:
    """What a failure's reason adds when part of the delivery went."""
    return f" ({len(ids)} of {len(parts)} parts delivered)" if ids else ""
