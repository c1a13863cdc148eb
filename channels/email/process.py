"""One mail from bytes to a committed ticket message: parse, thread, store files, ingest.

The IMAP listener parses fetched batches with :meth:`MailProcessor.parse_many` (in a worker
process, :mod:`channels.email.parse_pool`), hands each result to :meth:`MailProcessor.deliver`
and acks the mail only after it returns; tests and the benchmark call :meth:`process` too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Mapping
from enum import Enum, StrEnum
from typing import Any

from channels.base import ChannelInputError
from channels.email.bounces import record_bounce
from channels.email.files import save_parts
from channels.email.parse import ParsedMail, Rejected, RejectReason
from channels.email.parse_pool import Parsed, ParseOptions, ParsePool
from channels.email.references import find_ticket, find_tickets
from channels.email.sender import signer_for
from gateway.metrics import Metrics
from gateway.models import Channel
from gateway.pipeline import OnMessage
from gateway.settings import Settings
from gateway.store import Store

log = logging.getLogger(__name__)


class Unset(Enum):
    UNSET = "unset"


UNSET = Unset.UNSET


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
        parse_workers: int = 1,
    ) -> None:
        """``parse_workers``: processes that parse fetched mail (0: parse in the event loop)."""
        self.email = settings.email
        self.store = store
        self.on_message = on_message
        self.metrics = metrics
        self.signer = signer_for(settings)
        self.address = (self.email.address or "").lower() or None
        self.ours = (self.address,) if self.address else ()
        self.options = ParseOptions(self.ours, self.signer, self.email.attachment_max_bytes)
        self.pool = ParsePool(self.options, workers=parse_workers)

    def parse(self, raw: bytes) -> ParsedMail | Rejected:
        """Parse (pure); raises ``ChannelInputError`` for mail that is not usable."""
        parsed = self.options.parse(raw)
        if isinstance(parsed, ChannelInputError):
            raise parsed
        return parsed

    async def parse_many(self, raws: list[bytes]) -> list[Parsed]:
        """Parse a batch off the event loop; an unusable mail's entry is its error."""
        return await self.pool.parse(raws)

    def close(self) -> None:
        """Stop the parser processes (started again if the processor is used again)."""
        self.pool.close()

    async def find_tickets(self, mails: list[ParsedMail]) -> list[str | None]:
        """The ticket each mail answers, looked up together (see :meth:`deliver`)."""
        return await find_tickets(self.store, mails, self.signer, self.address)

    async def deliver(
        self, parsed: ParsedMail | Rejected, *, ticket_ref: str | Unset | None = UNSET
    ) -> Outcome:
        """Store a parsed mail (or record a bounce); returns once it is committed.

        ``ticket_ref``: the ticket :meth:`find_tickets` found for it since the sender's last
        mail was committed; by default it is looked up now.
        """
        if isinstance(parsed, Rejected):
            self.count(parsed.reason.value)
            if parsed.reason is RejectReason.BOUNCE:
                marked = await record_bounce(self.store, parsed, self.signer)
                log.info("bounce", extra={"marked_failed": marked})
                return Outcome.BOUNCE
            log.info("own mail dropped", extra={"reason": parsed.reason.value})
            return Outcome.DROPPED
        if isinstance(ticket_ref, Unset):
            ticket_ref = await find_ticket(self.store, parsed, self.signer, self.address)
        attachments = await save_parts(self.email.attachment_dir, parsed.parts)
        result = await self.on_message(
            parsed.inbound(ticket_ref=ticket_ref, attachments=attachments)
        )
        if result.duplicate and _another_mail(parsed, result.message_row):
            # Its Message-ID is taken by a different mail: stored under an id of its own,
            # made from both, so this mail delivered again is still a duplicate.
            log.info("Message-ID reused by another mail", extra={"id": parsed.external_id})
            parsed = dataclasses.replace(parsed, external_id=_reused_id(parsed))
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


def _another_mail(parsed: ParsedMail, stored: Mapping[str, Any]) -> bool:
    """The message stored under ``parsed``'s Message-ID is another mail (messages stored
    before mails carried a digest count as the same)."""
    meta = stored.get("channel_meta") or {}
    theirs = meta.get("digest") if isinstance(meta, Mapping) else None
    return isinstance(theirs, str) and theirs != parsed.meta.get("digest")


def _reused_id(parsed: ParsedMail) -> str:
    key = f"{parsed.external_id}\0{parsed.meta.get('digest')}"
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()
