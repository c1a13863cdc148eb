"""A reply naming the customer's message it answers (``reply_to``): kept on the reply, given to
the delivery in place of the latest message, and refused, storing nothing, for any message that
is not one of this ticket's customer's (delivery: tests/channels/telegram/test_quoted_replies.py
and tests/channels/email/test_quoted_replies.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from gateway.appkeys import SETTINGS
from gateway.models import AgentRole, Channel, OutboundMessage
from gateway.store.tables import OutboxRow, Ticket, TicketEvent, TicketMessage
from tests.api.conftest import AgentClient, Desk
from tests.factories import inbound
from workers.outbound import build_message, load_rows


def said(text: str, telegram_id: int, **fields: Any) -> Any:
    """Chat 1's customer writes ``text`` as Telegram message ``telegram_id``."""
    return inbound(text=text, channel_meta={"chat_id": 1, "message_id": telegram_id}, **fields)


async def message_id(desk: Desk, text: str) -> int:
    async with desk.store.read() as session:
        found = await session.scalar(select(TicketMessage.id).where(TicketMessage.text == text))
    assert found is not None, text
    return found


async def stored_counts(desk: Desk) -> tuple[int, int, int]:
    """Messages, outbox rows and ticket events: what a refused reply must not add to."""
    async with desk.store.read() as session:
        return (
            int(await session.scalar(select(func.count()).select_from(TicketMessage)) or 0),
            int(await session.scalar(select(func.count()).select_from(OutboxRow)) or 0),
            int(await session.scalar(select(func.count()).select_from(TicketEvent)) or 0),
        )


async def delivery_of(desk: Desk, reply_id: int) -> OutboundMessage:
    """What the delivery job makes of the outbox row owing the reply ``reply_id``."""
    async with desk.store.read() as session:
        row_id = await session.scalar(
            select(OutboxRow.id).where(OutboxRow.message_id == reply_id, OutboxRow.kind == "reply")
        )
        assert row_id is not None
        [loaded] = await load_rows(session, [row_id])
    built = build_message(loaded, desk.app[SETTINGS])
    assert built is not None
    return built


async def reply(agent: AgentClient, number: str, body: dict[str, Any]) -> Any:
    return await agent.send("POST", f"/api/v1/tickets/{number}/replies", body)


async def test_a_reply_to_an_earlier_message_keeps_it_and_threads_its_delivery_on_it(
    desk: Desk,
) -> None:
    number = await desk.customer_says(said("人工: my parcel is late", 11))
    await desk.customer_says(said("and the box was open", 12))
    ann = await desk.login("ann@shop.test", AgentRole.SUPERVISOR)
    first = await message_id(desk, "人工: my parcel is late")

    quoting = await reply(ann, number, {"text": "It left today.", "reply_to": first})
    assert quoting.status == 201, await quoting.text()
    quoting_id = (await quoting.json())["message_id"]
    plain = await reply(ann, number, {"text": "Anything else?"})
    assert plain.status == 201, await plain.text()

    detail = await (await ann.get(f"/api/v1/tickets/{number}")).json()
    metas = {m["text"]: m["channel_meta"] for m in detail["messages"]}
    assert metas["It left today."]["reply_to_message"] == first  # the console's quote
    assert "reply_to_message" not in metas["Anything else?"]

    quoted = await delivery_of(desk, quoting_id)
    assert (quoted.quote, dict(quoted.reply_meta)) == (True, {"chat_id": 1, "message_id": 11})
    assert quoted.quoted_text == "人工: my parcel is late"
    latest = await delivery_of(desk, (await plain.json())["message_id"])
    assert (latest.quote, dict(latest.reply_meta)) == (False, {"chat_id": 1, "message_id": 12})
    assert latest.quoted_text is None


async def test_reply_to_anything_but_this_tickets_customer_message_is_refused_storing_nothing(
    desk: Desk,
) -> None:
    number = await desk.customer_says(said("人工: my parcel is late", 21))
    await desk.customer_says(
        said("人工: someone else's question", 5, external_user_id="u-2", thread_key="chat-2")
    )
    ann = await desk.login("ann@shop.test", AgentRole.SUPERVISOR)
    note = await ann.send("POST", f"/api/v1/tickets/{number}/notes", {"text": "VIP"})
    answered = await reply(ann, number, {"text": "On it."})
    assert (note.status, answered.status) == (201, 201)
    others = await message_id(desk, "人工: someone else's question")
    refused_ids: list[Any] = [
        others,  # another ticket's customer message
        (await note.json())["message_id"],  # an internal note
        (await answered.json())["message_id"],  # our own reply
        2**31 - 1,  # no such message
        0,
        "abc",
        True,  # JSON's true, which pydantic read as message 1 (here, a customer message)
    ]
    before = await stored_counts(desk)
    for refused in refused_ids:
        response = await reply(ann, number, {"text": "Quoting that", "reply_to": refused})
        error = await response.json()
        assert (response.status, error["field"]) == (400, "reply_to"), (refused, error)
    # The same words whether the message is another ticket's or missing: ids are guessable.
    missing = await reply(ann, number, {"text": "x", "reply_to": 2**31 - 1})
    foreign = await reply(ann, number, {"text": "x", "reply_to": others})
    assert (await missing.json())["detail"].replace(str(2**31 - 1), "N") == (await foreign.json())[
        "detail"
    ].replace(str(others), "N")
    assert await stored_counts(desk) == before


async def test_a_refused_reply_to_does_not_claim_the_ticket(desk: Desk) -> None:
    number = await desk.customer_says(said("人工: hello", 31))
    other = await desk.customer_says(
        said("人工: hi", 6, external_user_id="u-3", thread_key="chat-3")
    )
    async with desk.store.write() as session:  # back in the queue, as if no one was online
        for ticket in await session.scalars(select(Ticket)):
            ticket.assignee_id = None
    ann = await desk.login("ann@shop.test", AgentRole.AGENT)
    foreign = await message_id(desk, "人工: hi")
    assert other != number
    response = await reply(ann, number, {"text": "Quoting", "reply_to": foreign})
    assert response.status == 400
    async with desk.store.read() as session:
        held = await session.scalar(select(Ticket.assignee_id).where(Ticket.number == number))
    assert held is None


async def test_a_chosen_message_from_another_channel_threads_on_the_latest_of_this_one(
    desk: Desk,
) -> None:
    """An email the customer sent into their Telegram ticket (its number in the subject) may be
    answered, and the console shows the quote; but the reply goes out on Telegram, where the
    email's ids mean nothing: it threads on the latest Telegram message, and carries the
    email's words for the channel to quote as text."""
    number = await desk.customer_says(said("人工: the screen is cracked", 41))
    async with desk.store.write() as session:
        ticket = (await session.scalars(select(Ticket).where(Ticket.number == number))).one()
        mailed = TicketMessage(
            ticket_id=ticket.id,
            kind="incoming",
            author_type="customer",
            channel=Channel.EMAIL.value,
            text=" photos attached\n",
            attachments=[],
            channel_meta={"message_id": "<p1@client.example>"},
            created_at=ticket.created_at,
        )
        session.add(mailed)
        await session.flush()
        mailed_id = mailed.id
    ann = await desk.login("ann@shop.test", AgentRole.SUPERVISOR)
    response = await reply(ann, number, {"text": "Thanks, got them.", "reply_to": mailed_id})
    assert response.status == 201, await response.text()
    built = await delivery_of(desk, (await response.json())["message_id"])
    assert (built.quote, dict(built.reply_meta)) == (False, {"chat_id": 1, "message_id": 41})
    assert built.quoted_text == "photos attached"  # stripped
