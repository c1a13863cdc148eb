"""Threading by each route, and the ways it must refuse: forged ids, foreign ticket numbers."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from typing import Any

from sqlalchemy import event, select, update

from channels.email.ids import Signer
from channels.email.parse import ParsedMail
from channels.email.process import Outcome
from gateway.models import TicketStatus
from gateway.store.tables import Ticket, TicketMessage
from tests.channels.email.conftest import Mailroom, Sink
from tests.channels.email.mailmaker import mail
from tests.conftest import SECRET

SIGNER = Signer(SECRET, "example.test")


async def ticket_of(room: Mailroom, raw: bytes) -> str:
    """Process ``raw`` and return the number of the ticket it landed on."""
    parsed = room.processor.parse(raw)
    assert isinstance(parsed, ParsedMail)
    assert await room.processor.deliver(parsed) is Outcome.STORED
    async with room.store.read() as session:
        number = await session.scalar(
            select(Ticket.number)
            .join(TicketMessage, TicketMessage.ticket_id == Ticket.id)
            .where(TicketMessage.external_id == parsed.external_id)
        )
    assert number is not None
    return str(number)


async def test_reply_to_our_mail_threads_by_signed_in_reply_to(
    mailroom: Mailroom, smtp_sink: Sink
) -> None:
    first = await ticket_of(mailroom, mail(subject="Order 1"))
    assert await mailroom.deliver_pending() == ["sent"]
    ours = str(smtp_sink.mails()[0]["Message-ID"])
    assert SIGNER.verify_message_id(ours) is not None
    reply = mail(subject="Re: something else entirely", in_reply_to=ours, references=ours)
    assert await ticket_of(mailroom, reply) == first


async def test_subject_tag_threads_for_the_tickets_own_contact(mailroom: Mailroom) -> None:
    first = await ticket_of(mailroom, mail(subject="Order 1"))
    assert await ticket_of(mailroom, mail(subject=f"Re: [{first}] Order 1")) == first


async def test_signed_reply_address_threads(mailroom: Mailroom) -> None:
    first = await ticket_of(mailroom, mail(subject="Order 1"))
    address = SIGNER.reply_address("support@example.test", first)
    assert await ticket_of(mailroom, mail(subject="more", to=address)) == first


async def test_references_to_the_customers_own_stored_mail_thread(mailroom: Mailroom) -> None:
    first_raw = mail(subject="Order 1", message_id="<own-1@client.example>")
    first = await ticket_of(mailroom, first_raw)
    follow = mail(subject="Re: Order 1", references="<own-1@client.example>")
    assert await ticket_of(mailroom, follow) == first


async def test_known_subject_without_reference_is_a_new_ticket(mailroom: Mailroom) -> None:
    first = await ticket_of(mailroom, mail(subject="Question"))
    assert await ticket_of(mailroom, mail(subject="Question")) != first


async def test_forged_message_id_does_not_attach_to_a_ticket(mailroom: Mailroom) -> None:
    first = await ticket_of(mailroom, mail(subject="Order 1"))
    genuine = SIGNER.message_id(1, first)
    forged = genuine.replace(genuine.split(".")[2][:10], "0123456789")
    assert SIGNER.verify_message_id(forged) is None
    assert await ticket_of(mailroom, mail(in_reply_to=forged)) != first


async def test_someone_elses_ticket_number_and_ids_open_a_new_ticket(
    mailroom: Mailroom, smtp_sink: Sink
) -> None:
    victim = await ticket_of(mailroom, mail("victim@example.org", message_id="<v1@x.example>"))
    await mailroom.deliver_pending()
    genuine = str(smtp_sink.mails()[0]["Message-ID"])  # a real id, leaked
    attacker = "mallory@evil.example"
    for raw in (
        mail(attacker, subject=f"Re: [{victim}] hello"),  # foreign ticket number
        mail(attacker, in_reply_to=genuine),  # a valid signed id of someone else's ticket
        mail(attacker, references="<v1@x.example>"),  # the victim's own Message-ID
        mail(attacker, to=SIGNER.reply_address("support@example.test", victim)),
    ):
        assert await ticket_of(mailroom, raw) != victim
    async with mailroom.store.read() as session:
        on_victim = await session.scalar(
            select(TicketMessage.id)
            .join(Ticket, Ticket.id == TicketMessage.ticket_id)
            .where(Ticket.number == victim)
            .offset(1)
        )
    assert on_victim is None


async def test_first_valid_route_wins_over_a_foreign_subject_tag(
    mailroom: Mailroom, smtp_sink: Sink
) -> None:
    theirs = await ticket_of(mailroom, mail("other@example.org"))
    mine = await ticket_of(mailroom, mail(message_id="<mine-1@client.example>"))
    raw = mail(subject=f"[{theirs}] wrong tag", references="<mine-1@client.example>")
    assert await ticket_of(mailroom, raw) == mine


async def test_reply_to_a_closed_ticket_reopens_it(mailroom: Mailroom) -> None:
    first = await ticket_of(mailroom, mail(subject="Order 1"))
    async with mailroom.store.write() as session:
        await session.execute(
            update(Ticket)
            .where(Ticket.number == first)
            .values(
                status=TicketStatus.CLOSED.value,
                closed_at=mailroom.clock.now - timedelta(days=1),
                resolved_at=mailroom.clock.now - timedelta(days=1),
            )
        )
    assert await ticket_of(mailroom, mail(subject=f"Re: [{first}] Order 1")) == first
    async with mailroom.store.read() as session:
        status = await session.scalar(select(Ticket.status).where(Ticket.number == first))
    assert status == TicketStatus.REOPENED.value


async def test_same_mail_twice_is_stored_once(mailroom: Mailroom) -> None:
    raw = mail(message_id="<twice@client.example>")
    await ticket_of(mailroom, raw)
    parsed = mailroom.processor.parse(raw)
    assert await mailroom.processor.deliver(parsed) is Outcome.DUPLICATE


async def close_long_ago(room: Mailroom, number: str) -> None:
    long_ago = room.clock.now - timedelta(days=30)
    async with room.store.write() as session:
        await session.execute(
            update(Ticket)
            .where(Ticket.number == number)
            .values(status=TicketStatus.CLOSED.value, closed_at=long_ago, resolved_at=long_ago)
        )


async def test_second_reply_to_a_long_closed_ticket_joins_its_open_follow_up(
    mailroom: Mailroom,
) -> None:
    """Regression: every mail naming a ticket closed beyond the reopen window opened a follow-up
    of its own, so a customer's "and one more thing" a minute later split the new question over
    two tickets (email has no conversation whose latest ticket would have caught it)."""
    old = await ticket_of(mailroom, mail(subject="Order 1"))
    await close_long_ago(mailroom, old)
    follow_up = await ticket_of(mailroom, mail(subject=f"Re: [{old}] Order 1", text="Broke again"))
    assert follow_up != old
    again = mail(subject=f"Re: [{old}] Order 1", text="And the lid is cracked too")
    assert await ticket_of(mailroom, again) == follow_up
    async with mailroom.store.read() as session:
        tickets = (await session.scalars(select(Ticket.number).order_by(Ticket.id))).all()
    assert tickets == [old, follow_up]


async def test_two_replies_to_a_long_closed_ticket_in_one_batch_open_one_follow_up(
    mailroom: Mailroom,
) -> None:
    old = await ticket_of(mailroom, mail(subject="Order 1"))
    await close_long_ago(mailroom, old)
    first = mailroom.processor.parse(mail(subject=f"Re: [{old}] Order 1", text="Broke again"))
    second = mailroom.processor.parse(mail(subject=f"Re: [{old}] Order 1", text="Lid cracked"))
    assert isinstance(first, ParsedMail) and isinstance(second, ParsedMail)
    # Side by side, as the listener's group commit puts them in one ingest batch.
    await asyncio.gather(mailroom.processor.deliver(first), mailroom.processor.deliver(second))
    async with mailroom.store.read() as session:
        tickets = (await session.scalars(select(Ticket.number).order_by(Ticket.id))).all()
    assert len(tickets) == 2


def read_receipt(number: str, ours: str) -> bytes:
    """A message disposition notification (RFC 8098) for our mail ``ours``, as a mail client
    sends it when the customer opens the mail: no Auto-Submitted header."""
    msg = EmailMessage()
    msg["From"] = "ann@example.org"
    msg["To"] = "support@example.test"
    msg["Subject"] = f"Read: [{number}] Order 1"
    msg["Message-ID"] = "<mdn-1@client.example>"
    msg["In-Reply-To"] = ours
    msg.set_content("Your message was read on Monday.")
    report = EmailMessage()
    report.set_content(
        f"Final-Recipient: rfc822; ann@example.org\r\nOriginal-Message-ID: {ours}\r\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\r\n"
    )
    msg.add_attachment(report)
    msg.replace_header("Content-Type", "multipart/report")
    msg.set_param("report-type", "disposition-notification")
    return msg.as_bytes(policy=policy.SMTP)


async def resolved_yesterday(mailroom: Mailroom, smtp_sink: Sink) -> tuple[str, str]:
    """A ticket whose acknowledgement went out, resolved a day ago: its number, and the
    Message-ID of our mail a customer's client answers."""
    first = await ticket_of(mailroom, mail(subject="Order 1"))
    assert await mailroom.deliver_pending() == ["sent"]
    ours = str(smtp_sink.mails()[0]["Message-ID"])
    yesterday = mailroom.clock.now - timedelta(days=1)
    async with mailroom.store.write() as session:
        await session.execute(
            update(Ticket)
            .where(Ticket.number == first)
            .values(status=TicketStatus.RESOLVED.value, resolved_at=yesterday)
        )
    return first, ours


async def test_an_auto_reply_to_our_mail_does_not_reopen_the_resolved_ticket(
    mailroom: Mailroom, smtp_sink: Sink
) -> None:
    """Regression: an out-of-office answer (or a read receipt) to our "resolved" notice
    threads onto the ticket, as it should, but reopened it: back in the queue, its SLA clock
    running, for a mail no person wrote."""
    first, ours = await resolved_yesterday(mailroom, smtp_sink)
    out_of_office = mail(
        subject=f"Automatic reply: [{first}] Order 1",
        text="I am out of the office until Monday.",
        in_reply_to=ours,
        headers={"Auto-Submitted": "auto-replied"},
    )
    assert await ticket_of(mailroom, out_of_office) == first
    # Outlook's and Thunderbird's read receipts (RFC 8098) carry no Auto-Submitted: the
    # report's type says what they are.
    assert await ticket_of(mailroom, read_receipt(first, ours)) == first
    async with mailroom.store.read() as session:
        status = await session.scalar(select(Ticket.status).where(Ticket.number == first))
    assert status == TicketStatus.RESOLVED.value


async def test_a_persons_reply_through_a_list_alias_reopens_the_resolved_ticket(
    mailroom: Mailroom, smtp_sink: Sink
) -> None:
    """Regression: the auto-reply rule took every mail with a List-Id or ``Precedence: list``
    for one, and a support address that is a group (Google Groups, Mailman) adds both to
    every mail: a customer's "it broke again" a day after the resolution was kept on the
    resolved ticket, which stayed done, and nobody answered it."""
    first, ours = await resolved_yesterday(mailroom, smtp_sink)
    via_group = mail(
        subject=f"Re: [{first}] Order 1",
        text="It broke again this morning.",
        in_reply_to=ours,
        headers={
            "List-Id": "<support.example.test>",
            "List-Unsubscribe": "<mailto:support+unsubscribe@example.test>",
            "Precedence": "list",
        },
    )
    assert await ticket_of(mailroom, via_group) == first
    async with mailroom.store.read() as session:
        status = await session.scalar(select(Ticket.status).where(Ticket.number == first))
    assert status == TicketStatus.REOPENED.value


async def test_a_reply_to_an_open_ticket_reads_no_follow_ups(mailroom: Mailroom) -> None:
    """Regression: every batch naming a ticket read the named tickets' open follow-ups, one
    more query on ingest's hot path (most mail answers an open ticket), though only a ticket
    closed beyond the reopen window can have one worth joining."""
    first = await ticket_of(mailroom, mail(subject="Order 1"))
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(str(args[2]))

    engine = mailroom.store.write_engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert await ticket_of(mailroom, mail(subject=f"Re: [{first}] Order 1")) == first
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert statements
    assert not [s for s in statements if "follow_up" in s]
