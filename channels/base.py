"""The interface every channel implements, and its two tiers of error.

Inbound, an adapter is *handed* the pipeline's ``on_message`` callable and acks its channel only
after that returns. Outbound, a channel is anything with ``async send(OutboundMessage)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from gateway.models import DeliveryReceipt, OutboundMessage


class ChannelInputError(Exception):
    """The sender's fault (a malformed payload, an oversize mail): counted, logged at info."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ChannelError(Exception):
    """Our fault or the platform's: logged at error."""


class RecipientUnreachable(ChannelError):
    """The recipient cannot be written to on this channel any more (a Telegram user who blocked
    the bot or deleted their account). The sender has marked their identity unreachable;
    retrying cannot help, another channel may: the delivery job hands a notice or survey to the
    contact's email (``gateway/outbox_fallback.py``)."""


class TransientChannelError(ChannelError):
    """Worth retrying with backoff: a timeout, a reset connection, a rate limit."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OutboundSender(Protocol):
    """Delivers one message on a channel."""

    async def send(self, msg: OutboundMessage) -> DeliveryReceipt: ...


Handover = Callable[[str | None], Awaitable[None]]
"""Called with the id the peer will know a message by, at the last moment before the peer has it
for good; the delivery job records it (``workers/jobs.py``). Called with ``None`` when the peer
refused the message after all (nothing went): the mark is withdrawn, and a retry after a crash
sends the message instead of taking it as delivered."""


@runtime_checkable
class HandsOver(Protocol):
    """A sender that can tell when a message passes to the peer for good (SMTP: just before the
    end of DATA). Knowing that moment lets a retry after a crash between the peer accepting and
    the row being marked sent see that the message went, instead of sending it twice."""

    async def send_handing_over(
        self, msg: OutboundMessage, handover: Handover
    ) -> DeliveryReceipt: ...


@runtime_checkable
class KeepsConnections(Protocol):
    """A sender that can hold its connections open across sends (a worker process keeps its
    senders from job to job): :meth:`open` once, then sends, then :meth:`aclose`."""

    async def open(self) -> None: ...

    async def aclose(self) -> None: ...
