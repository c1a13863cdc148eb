"""``gateway inbound replay``: a parked mail, its cause fixed, runs through the channel again."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from channels.email.cursor import park
from gateway.inbound_admin import parked_inputs
from gateway.inbound_replay import NotReplayed, replay
from gateway.store.tables import Ticket, TicketMessage
from tests.channels.email.conftest import Mailroom
from tests.channels.email.mailmaker import mail
from tests.factories import NOON


async def parked(room: Mailroom, raw: bytes, external_id: str = "<p@example.org>") -> int:
    await park(
        room.store,
        external_id=external_id,
        reason="processing_failed",
        detail="RuntimeError('a bug')",
        raw=raw,
        attempts=5,
        now=NOON,
    )
    [row] = [p for p in await parked_inputs(room.store) if p.external_id == external_id]
    return row.id


async def stored_texts(room: Mailroom) -> list[str]:
    async with room.store.read() as session:
        return list((await session.scalars(select(TicketMessage.text))).all())


async def test_a_parked_mail_is_stored_routed_and_taken_off_the_list(mailroom: Mailroom) -> None:
    """Before ``replay``, a parked mail went back in only by appending it to the mailbox."""
    raw = mail("ann@example.org", text="My parcel never came.", message_id="<p@example.org>")
    parked_id = await parked(mailroom, raw)

    done = await replay(mailroom.settings, mailroom.store, parked_id)

    assert (done.channel, done.outcome) == ("email", "stored")
    assert [t.strip() for t in await stored_texts(mailroom)] == ["My parcel never came."]
    async with mailroom.store.read() as session:
        [ticket] = (await session.scalars(select(Ticket))).all()
        unrouted = await session.scalar(
            select(func.count()).where(TicketMessage.routed_at.is_(None))
        )
    assert ticket.escalated_at is not None and unrouted == 0  # no knowledge base: escalated
    assert await parked_inputs(mailroom.store) == []
    with pytest.raises(NotReplayed, match=f"no parked input {parked_id}"):
        await replay(mailroom.settings, mailroom.store, parked_id)


async def test_a_mail_stored_since_is_a_duplicate_and_leaves_the_list(mailroom: Mailroom) -> None:
    raw = mail(message_id="<p@example.org>")
    await mailroom.processor.process(raw)  # the same mail, delivered again meanwhile
    parked_id = await parked(mailroom, raw)
    done = await replay(mailroom.settings, mailroom.store, parked_id)
    assert done.outcome == "duplicate"
    assert len(await stored_texts(mailroom)) == 1
    assert await parked_inputs(mailroom.store) == []


async def test_a_refused_mail_and_one_without_bytes_stay_parked(mailroom: Mailroom) -> None:
    refused = await parked(mailroom, b"Subject: no sender\r\n\r\nhello\r\n", "<r@example.org>")
    with pytest.raises(NotReplayed) as said:
        await replay(mailroom.settings, mailroom.store, refused)
    assert str(said.value).startswith("the mail is refused: no_sender")
    assert str(said.value).endswith(f"(parked input {refused} stays parked)")

    bytesless = await parked(mailroom, b"", "imap/7")
    with pytest.raises(NotReplayed, match="no bytes kept"):
        await replay(mailroom.settings, mailroom.store, bytesless)

    assert sorted(p.id for p in await parked_inputs(mailroom.store)) == [refused, bytesless]
    assert await stored_texts(mailroom) == []
