"""Ingest: dedupe, contacts, threading, reopening, and all-or-nothing transactions."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.models import Channel, EventKind, InboundMessage, OutboxKind, TicketStatus
from gateway.store import Store
from gateway.store.tables import (
    Contact,
    ContactIdentity,
    OutboxRow,
    Ticket,
    TicketEvent,
    TicketMessage,
)
from tests.factories import Clock, inbound, make_ingest


async def count(store: Store, table: type) -> int:
    async with store.read() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def set_status(store: Store, number: str, status: TicketStatus, clock: Clock) -> None:
    async with store.write() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        ticket.status = status.value
        ticket.resolved_at = clock.now


async def test_first_message_opens_a_ticket_and_owes_an_acknowledgement(store: Store) -> None:
    result = await make_ingest(store)(inbound(text="我的订单还没到"))
    assert result.new_ticket and not result.duplicate
    assert result.ticket.status is TicketStatus.NEW
    assert result.message.text == "我的订单还没到"
    assert result.contact.name == "Ann"
    async with store.read() as session:
        outbox = (await session.scalars(select(OutboxRow))).all()
        events = (await session.scalars(select(TicketEvent))).all()
    assert [(o.kind, o.template, o.ticket_id) for o in outbox] == [
        (OutboxKind.NOTICE, "ticket_received", result.ticket.id)
    ]
    assert [e.kind for e in events] == [EventKind.CREATED]


async def test_a_replay_returns_the_stored_message_and_changes_nothing(store: Store) -> None:
    ingest = make_ingest(store)
    message = inbound()
    first = await ingest(message)
    again = await ingest(message)
    assert again.duplicate
    assert again.message.id == first.message.id
    assert again.ticket.number == first.ticket.number
    assert await count(store, TicketMessage) == 1
    assert await count(store, OutboxRow) == 1


async def test_fifty_concurrent_deliveries_store_one_message(store: Store) -> None:
    ingest = make_ingest(store)
    message = inbound(external_user_id="new-user")
    results = await asyncio.gather(*(ingest(message) for _ in range(50)))
    assert len({r.message.id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert await count(store, TicketMessage) == 1
    assert await count(store, Ticket) == 1
    assert await count(store, Contact) == 1
    assert await count(store, OutboxRow) == 1


async def test_a_new_customers_racing_messages_share_one_ticket(store: Store) -> None:
    ingest = make_ingest(store)
    results = await asyncio.gather(
        *(ingest(inbound(external_user_id="racer", thread_key="chat-9")) for _ in range(20))
    )
    assert len({r.ticket.id for r in results}) == 1
    assert await count(store, Contact) == 1


async def test_racing_batches_of_a_known_customers_new_conversation_open_one_ticket(
    store: Store,
) -> None:
    """Two group commits (two gateway processes) each take a message of a known customer's new
    conversation at once: one ticket, not two. No unique key can tell (a conversation has many
    tickets over time): PostgreSQL serializes a sender's batches with an advisory lock, taken
    by the batch's first read; SQLite has one writer."""
    first, second = make_ingest(store), make_ingest(store)
    await first(inbound(external_user_id="known", thread_key="chat-0"))
    for n in range(1, 16):
        a, b = await asyncio.gather(
            first(inbound(external_user_id="known", thread_key=f"chat-{n}")),
            second(inbound(external_user_id="known", thread_key=f"chat-{n}")),
        )
        assert a.ticket.id == b.ticket.id, f"conversation {n} opened two tickets"
    assert await count(store, Ticket) == 16


async def test_same_external_id_on_another_channel_is_another_message(store: Store) -> None:
    ingest = make_ingest(store)
    await ingest(inbound(external_id="42", channel=Channel.TELEGRAM))
    other = await ingest(inbound(external_id="42", channel=Channel.WEBCHAT, external_user_id="w"))
    assert not other.duplicate
    assert await count(store, TicketMessage) == 2


async def test_messages_in_one_conversation_thread_onto_its_open_ticket(store: Store) -> None:
    ingest = make_ingest(store)
    first = await ingest(inbound())
    second = await ingest(inbound())
    elsewhere = await ingest(inbound(thread_key="chat-2"))
    assert second.ticket.id == first.ticket.id and not second.new_ticket
    assert elsewhere.ticket.id != first.ticket.id
    assert await count(store, OutboxRow) == 2  # one acknowledgement per ticket, not per message


async def test_a_message_without_thread_or_reference_opens_a_new_ticket(store: Store) -> None:
    ingest = make_ingest(store)
    first = await ingest(inbound(channel=Channel.EMAIL, thread_key=None))
    second = await ingest(inbound(channel=Channel.EMAIL, thread_key=None))
    assert first.ticket.id != second.ticket.id


async def test_a_ticket_reference_is_honoured_only_for_its_own_contact(store: Store) -> None:
    ingest = make_ingest(store)
    ann = await ingest(
        inbound(channel=Channel.EMAIL, external_user_id="ann@x.test", thread_key=None)
    )
    own = await ingest(
        inbound(
            channel=Channel.EMAIL,
            external_user_id="ann@x.test",
            thread_key=None,
            ticket_ref=ann.ticket.number,
        )
    )
    forged = await ingest(
        inbound(
            channel=Channel.EMAIL,
            external_user_id="eve@x.test",
            thread_key=None,
            ticket_ref=ann.ticket.number,
        )
    )
    assert own.ticket.id == ann.ticket.id
    assert forged.ticket.id != ann.ticket.id and forged.new_ticket


async def test_a_verified_sender_does_not_join_a_contact_that_was_only_told_the_email(
    store: Store,
) -> None:
    """Anyone can type anyone's address into a form: that contact is no proof of the person,
    and joining it would show each side the other's tickets. A later proof makes it one."""
    ingest = make_ingest(store)
    typed = await ingest(
        inbound(channel=Channel.WEBCHAT, external_user_id="session-1", email="ann@example.test")
    )
    assert not typed.contact.email_verified
    proven = await ingest(
        inbound(
            channel=Channel.WEBCHAT,
            external_user_id="session-2",
            email="ann@example.test",
            email_verified=True,
        )
    )
    assert proven.contact.id != typed.contact.id
    assert proven.contact.email_verified
    again = await ingest(
        inbound(
            channel=Channel.WEBCHAT,
            external_user_id="session-1",
            email="ann@example.test",
            email_verified=True,
            text="proven now",
        )
    )
    assert again.contact.id == typed.contact.id and again.contact.email_verified


async def test_a_verified_email_joins_a_new_channel_to_the_same_contact(store: Store) -> None:
    ingest = make_ingest(store)
    by_mail = await ingest(
        inbound(
            channel=Channel.EMAIL,
            external_user_id="ann@example.test",
            email="Ann@Example.test",
            email_verified=True,
            thread_key=None,
        )
    )
    by_chat = await ingest(
        inbound(
            channel=Channel.WEBCHAT,
            external_user_id="session-1",
            email="ann@example.test",
            email_verified=True,
        )
    )
    unverified = await ingest(
        inbound(channel=Channel.WEBCHAT, external_user_id="session-2", email="ann@example.test")
    )
    assert by_chat.contact.id == by_mail.contact.id
    assert unverified.contact.id != by_mail.contact.id
    async with store.read() as session:
        identities = await session.scalar(
            select(func.count())
            .select_from(ContactIdentity)
            .where(ContactIdentity.contact_id == by_mail.contact.id)
        )
    assert identities == 2


async def test_a_reply_within_the_window_reopens_the_resolved_ticket(store: Store) -> None:
    clock = Clock()
    ingest = make_ingest(store, clock)
    first = await ingest(inbound())
    await set_status(store, first.ticket.number, TicketStatus.RESOLVED, clock)
    clock.now += timedelta(days=6, hours=23)
    again = await ingest(inbound())
    assert again.reopened and again.ticket.id == first.ticket.id
    assert again.ticket.status is TicketStatus.REOPENED
    assert again.ticket.resolved_at is None
    async with store.read() as session:
        kinds = (await session.scalars(select(TicketEvent.kind).order_by(TicketEvent.id))).all()
    assert kinds == [EventKind.CREATED, EventKind.REOPENED]


async def test_a_reply_after_the_window_opens_a_linked_follow_up(store: Store) -> None:
    clock = Clock()
    ingest = make_ingest(store, clock)
    first = await ingest(inbound())
    await set_status(store, first.ticket.number, TicketStatus.CLOSED, clock)
    clock.now += timedelta(days=7, minutes=1)
    later = await ingest(inbound())
    assert later.new_ticket and not later.reopened
    assert later.ticket.parent_id == first.ticket.id
    assert later.ticket.status is TicketStatus.NEW


async def test_a_reference_to_a_long_closed_ticket_goes_to_the_conversations_open_one(
    store: Store,
) -> None:
    """Naming a ticket closed beyond the window opened a follow-up of it, which became the
    conversation's latest ticket: the open one, and its agent, heard no more."""
    clock = Clock()
    ingest = make_ingest(store, clock)
    first = await ingest(inbound())
    await set_status(store, first.ticket.number, TicketStatus.CLOSED, clock)
    clock.now += timedelta(days=8)
    follow_up = await ingest(inbound())
    assert follow_up.ticket.parent_id == first.ticket.id
    named = await ingest(inbound(ticket_ref=first.ticket.number))
    assert not named.new_ticket and named.ticket.id == follow_up.ticket.id
    await set_status(store, follow_up.ticket.number, TicketStatus.RESOLVED, clock)
    again = await ingest(inbound(ticket_ref=first.ticket.number))  # nothing open: a follow-up
    assert again.new_ticket and again.ticket.parent_id == first.ticket.id


async def test_an_automatic_message_is_stored_but_owed_nothing(store: Store) -> None:
    result = await make_ingest(store)(inbound(channel=Channel.EMAIL, auto_submitted=True))
    assert result.message.channel_meta["auto_submitted"] is True
    assert await count(store, OutboxRow) == 0


@pytest.mark.parametrize("new_ticket", [True, False])
async def test_a_failure_after_the_message_insert_leaves_nothing_half_written(
    store: Store, monkeypatch: pytest.MonkeyPatch, new_ticket: bool
) -> None:
    ingest = make_ingest(store)
    if not new_ticket:
        await ingest(inbound())
    tables = (Contact, ContactIdentity, Ticket, TicketEvent, TicketMessage, OutboxRow)
    before = {t: await count(store, t) for t in tables}

    async def fail_after_messages(session: object, rows: object) -> None:
        raise RuntimeError("injected after the message insert")

    # write_outbox runs after the messages are inserted, in the same transaction.
    monkeypatch.setattr("gateway.ingest.transaction.write_outbox", fail_after_messages)
    sender = "brand-new" if new_ticket else "user-1"
    with pytest.raises(RuntimeError, match="injected"):
        await ingest(inbound(external_user_id=sender))
    monkeypatch.undo()
    assert {t: await count(store, t) for t in tables} == before
    # ... and the same sender's next message goes through once the fault is gone.
    assert not (await ingest(inbound(external_user_id=sender))).duplicate


async def test_one_bad_message_in_a_batch_fails_alone(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.ingest.transaction import ingest_batch as real

    sizes: list[int] = []

    async def fragile(session: Any, batch: list[InboundMessage], **kwargs: Any) -> Any:
        sizes.append(len(batch))
        if any(m.text == "poison" for m in batch):
            raise RuntimeError("poison")
        return await real(session, batch, **kwargs)

    monkeypatch.setattr("gateway.ingest.ingest_batch", fragile)
    ingest = make_ingest(store)
    results = await asyncio.gather(
        *(ingest(inbound(external_user_id=f"ok-{i}", thread_key=f"ok-{i}")) for i in range(5)),
        ingest(inbound(external_user_id="poison", text="poison")),
        return_exceptions=True,
    )
    assert sizes[0] == 6  # they were written as one batch first
    assert [type(r).__name__ for r in results] == ["IngestResult"] * 5 + ["RuntimeError"]
    assert await count(store, TicketMessage) == 5


async def test_a_new_contact_takes_each_field_from_the_first_message_that_offers_it(
    store: Store,
) -> None:
    ingest = make_ingest(store)
    await asyncio.gather(
        ingest(inbound(external_user_id="new", sender_name="Ann", locale=None)),
        ingest(inbound(external_user_id="new", sender_name="Bob", locale="zh", phone="+861")),
    )
    await ingest(inbound(external_user_id="new", sender_name="Cid", locale="en", phone="+862"))
    async with store.read() as session:
        contacts = (await session.scalars(select(Contact))).all()
    assert [(c.name, c.locale, c.phone) for c in contacts] == [("Ann", "zh", "+861")]


async def test_a_thanks_after_the_resolution_is_kept_and_reopens_nothing(store: Store) -> None:
    clock = Clock()
    ingest = make_ingest(store, clock)
    first = await ingest(inbound(text="my parcel is late"))
    await set_status(store, first.ticket.number, TicketStatus.RESOLVED, clock)
    clock.now += timedelta(hours=2)
    thanks = await ingest(inbound(text="Thanks, all good now 👍"))
    assert thanks.ticket.id == first.ticket.id
    assert not thanks.reopened and not thanks.new_ticket
    assert thanks.routed  # nothing for the knowledge base or for people
    assert thanks.ticket.status is TicketStatus.RESOLVED
    assert thanks.ticket.resolved_at is not None
    # More than a thanks reopens it, as before.
    clock.now += timedelta(hours=1)
    again = await ingest(inbound(text="thanks, but it broke again"))
    assert again.reopened and again.ticket.status is TicketStatus.REOPENED
    assert not again.routed
    async with store.read() as session:
        kinds = (await session.scalars(select(TicketEvent.kind).order_by(TicketEvent.id))).all()
        texts = (
            await session.scalars(
                select(TicketMessage.text)
                .where(TicketMessage.ticket_id == first.ticket.id)
                .order_by(TicketMessage.id)
            )
        ).all()
    assert kinds == [EventKind.CREATED, EventKind.REOPENED]
    assert texts == ["my parcel is late", "Thanks, all good now 👍", "thanks, but it broke again"]


@pytest.mark.parametrize("together", [False, True], ids=["one-by-one", "one-batch"])
async def test_a_batch_threads_its_messages_as_they_would_go_one_after_the_other(
    store: Store, together: bool
) -> None:
    """A message naming an older ticket of another thread (a Telegram "Reply" after
    ``/new``), then a plain one: the plain one goes to its own thread's ticket either way."""
    ingest = make_ingest(store)
    old = (await ingest(inbound(thread_key="chat-1/1", text="my parcel arrived broken"))).ticket
    current = (await ingest(inbound(thread_key="chat-1/2", text="where is my invoice?"))).ticket
    reply = inbound(thread_key="chat-1/2", text="broken again", ticket_ref=old.number)
    plain = inbound(thread_key="chat-1/2", text="invoice 9")
    if together:
        placed = list(await asyncio.gather(ingest(reply), ingest(plain)))
    else:
        placed = [await ingest(reply), await ingest(plain)]
    assert [r.ticket.number for r in placed] == [old.number, current.number]


async def test_a_nul_in_what_a_customer_sent_is_dropped_not_a_failed_insert(store: Store) -> None:
    """PostgreSQL's text holds no NUL: such a message failed its insert on every redelivery."""
    message = inbound(text="order\x0042", sender_name="A\x00nn", subject="help\x00")
    result = await make_ingest(store)(message)
    assert (result.message.text, result.contact.name) == ("order42", "Ann")
    assert result.ticket.subject == "help"
