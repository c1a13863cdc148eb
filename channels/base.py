"""The interface every channel implements, and its two tiers of error.

Inbound, an adapter is *handed* the pipeline's ``on_message`` callable and acks its channel only
after that returns. Outbound, a channel is anything with ``async send(OutboundMessage)``.
"""

from __future__ import annotations

from typing import Protocol

from gateway.models import DeliveryReceipt, OutboundMessage


class ChannelInputError(Exception):
    """The sender's fault (a malformed payload, an oversize mail): counted, logged at info."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ChannelError(Exception):
    """Our fault or the platform's: logged at error."""


class TransientChannelError(ChannelError):
    """Worth retrying with backoff: a timeout, a reset connection, a rate limit."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OutboundSender(Protocol):
    """Delivers one message on a channel."""

    async def send(self, msg: OutboundMessage) -> DeliveryReceipt: ...
