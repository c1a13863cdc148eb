"""One mail from bytes to a committed ticket message: parse, thread, store files, ingest.

The IMAP listener calls :meth:`MailProcessor.process` and acks the mail only after it returns;
tests and the benchmark call it too.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from channels.email.bounces import record_bounce
from channels.email.files import save_parts
from channels.email.parse import ParsedMail, Rejected, RejectReason, parse_mail
from channels.email.references import find_ticket
from channels.email.sender import signer_for
from gateway.metrics import Metrics
from gateway.models import Channel
from gateway.pipeline import OnMessage
from gateway.settings import Settings
from gateway.store import Store

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    BOUNCE = "bounce"
    DROPPED = "dropped"


class MailProcessor:
    """Turns raw mail into ticket messages through ``on_message`` (the pipeline's)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        on_message: OnMessage,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.email = settings.email
        self.store = store
        self.on_message = on_message
        self.metrics = metrics
        self.signer = signer_for(settings)
        self.address = (self.email.address or "").lower() or None
        self.ours = (self.address,) if self.address else ()

    def parse(self, raw: bytes) -> ParsedMail | Rejected:
        """Parse (pure); raises ``ChannelInputError`` for mail that is not usable."""
        return parse_mail(
            raw,
            our_addresses=self.ours,
            signer=self.signer,
            max_attachment_bytes=self.email.attachment_max_bytes,
        )

    async def deliver(self, parsed: ParsedMail | Rejected) -> Outcome:
        """Store a parsed mail (or record a bounce); returns once it is committed."""
        if isinstance(parsed, Rejected):
            self.count(parsed.reason.value)
            if parsed.reason is RejectReason.BOUNCE:
                marked = await record_bounce(self.store, parsed, self.signer)
                log.info("bounce", extra={"marked_failed": marked})
                return Outcome.BOUNCE
            log.info("own mail dropped", extra={"reason": parsed.reason.value})
            return Outcome.DROPPED
        ticket_ref = await find_ticket(self.store, parsed, self.signer, self.address)
        attachments = await save_parts(self.email.attachment_dir, parsed.parts)
        result = await self.on_message(
            parsed.inbound(ticket_ref=ticket_ref, attachments=attachments)
        )
        return Outcome.DUPLICATE if result.duplicate else Outcome.STORED

    async def process(self, raw: bytes) -> Outcome:
        return await self.deliver(self.parse(raw))

    def count(self, reason: str) -> None:
        """Count a mail that did not become a ticket message, by reason."""
        if self.metrics is not None:
            self.metrics.rejected.labels(channel=Channel.EMAIL.value, reason=reason).inc()
