"""The whole corpus, in order, through threading and ingest: exactly the expected tickets,
messages and sends (the sends delivered by the real job body to an SMTP sink)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from channels.base import ChannelInputError
from channels.email.parse import ParsedMail
from channels.email.process import Outcome
from gateway.models import OutboxStatus
from gateway.store.tables import OutboxRow, Ticket, TicketMessage
from tests.channels.email.conftest import Mailroom, Sink
from tests.channels.email.corpus import expected, mails, raw


async def _ticket_of(room: Mailroom, external_id: str) -> tuple[str, TicketMessage]:
    async with room.store.read() as session:
        row = (
            await session.execute(
                select(Ticket.number, TicketMessage)
                .join(Ticket, Ticket.id == TicketMessage.ticket_id)
                .where(TicketMessage.external_id == external_id)
            )
        ).one()
        return row[0], row[1]


async def test_corpus_becomes_the_expected_tickets_messages_and_sends(
    mailroom_factory: Any, smtp_sink: Sink
) -> None:
    table = expected()
    room: Mailroom = mailroom_factory(attachment_max_bytes=table["attachment_max_bytes"])
    numbers: dict[str, str] = table["tickets"]
    stored = 0
    for index, entry in enumerate(mails()):
        data = raw(entry["file"])
        if entry["outcome"] == "rejected":
            with pytest.raises(ChannelInputError):
                room.processor.parse(data)
            continue
        parsed = room.processor.parse(data)
        outcome = await room.processor.deliver(parsed)
        assert outcome.value == {"dropped": "dropped", "bounce": "bounce"}.get(
            entry["outcome"], "duplicate" if entry["outcome"] == "duplicate" else "stored"
        ), entry["file"]
        if index == 0:
            # Our acknowledgement goes out, so later mails can answer (and bounce) it.
            assert await room.deliver_pending() == ["sent"]
            sent_id = str(smtp_sink.mails()[0]["Message-ID"])
            assert sent_id == table["sent_before"][0]["message_id"]
        if outcome in (Outcome.STORED, Outcome.DUPLICATE):
            assert isinstance(parsed, ParsedMail)
            number, message = await _ticket_of(room, parsed.external_id)
            assert number == numbers[entry["ticket"]], entry["file"]
            stored += outcome is Outcome.STORED
            wanted = entry.get("attachments", [])
            for attachment, want in zip(message.attachments, wanted, strict=False):
                assert attachment["filename"] == want["filename"]
                assert (attachment["ref"] is not None) is want.get("stored", True)
    async with room.store.read() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == len(numbers)
        assert await session.scalar(select(func.count()).select_from(TicketMessage)) == stored
        bounced = await session.get_one(OutboxRow, 1)
    assert bounced.status == OutboxStatus.FAILED.value
    assert "550 5.1.1" in (bounced.last_error or "")

    # Sends: one acknowledgement per ticket a person opened; none for automatic mail.
    results = await room.deliver_pending()
    assert set(results) == {"sent"}
    auto = {e["ticket"] for e in mails() if e.get("auto_submitted") and e.get("new_ticket")}
    opened_by_people = [e for e in mails() if e.get("new_ticket") and e["ticket"] not in auto]
    sent = smtp_sink.mails()
    assert len(sent) == len(opened_by_people)
    subjects = sorted(str(m["Subject"]).split("]")[0] + "]" for m in sent)
    assert subjects == sorted(f"[{numbers[e['ticket']]}]" for e in opened_by_people)
    assert all(mail["Auto-Submitted"] == "auto-replied" for mail in sent)
    # Each threads under the customer's mail, except the one that came without a Message-ID.
    assert sum(1 for mail in sent if mail["In-Reply-To"]) == len(sent) - 1
    oversize = [m for m in sent if "noise.mp4" in m.get_body(("plain",)).get_content()]  # type: ignore[union-attr]
    assert len(oversize) == 1  # the customer is told the file was not kept
