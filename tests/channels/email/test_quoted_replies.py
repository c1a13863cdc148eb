"""An agent answers one of the customer's mails (``reply_to`` in the agent API): the reply's
In-Reply-To and References thread on that mail, not on the latest one (RFC 5322 3.6.4). A
message that is no mail of the thread (the customer wrote it on Telegram) cannot be threaded
on: the reply starts with its words as "> " quoted lines instead."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from channels.email.parse import ParsedMail
from channels.email.process import Outcome
from gateway.app import create_app
from gateway.models import AgentRole, Channel
from gateway.store.tables import Ticket, TicketMessage
from tests.api.conftest import PASSWORD, add_agent
from tests.channels.email.conftest import Mailroom, Sink
from tests.channels.email.mailmaker import mail
from tests.conftest import make_settings

Client = TestClient[web.Request, web.Application]
FIRST, SECOND = "<first-1@client.example>", "<second-1@client.example>"


async def customer_mails(room: Mailroom, raw: bytes) -> tuple[str, int]:
    """Take in ``raw``: its ticket's number and the stored message's id."""
    parsed = room.processor.parse(raw)
    assert isinstance(parsed, ParsedMail)
    assert await room.processor.deliver(parsed) is Outcome.STORED
    async with room.store.read() as session:
        found = (
            await session.execute(
                select(Ticket.number, TicketMessage.id)
                .join(TicketMessage, TicketMessage.ticket_id == Ticket.id)
                .where(TicketMessage.external_id == parsed.external_id)
            )
        ).one()
    return str(found[0]), int(found[1])


async def agent(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    room: Mailroom,
    db_url: str,
    redis_url: str,
) -> tuple[Client, dict[str, str]]:
    """The agent API on the mailroom's database (its own settings: no IMAP listener), and a
    supervisor logged in to it."""
    app = create_app(make_settings(database_url=db_url, redis_url=redis_url, outbox_relay=False))
    client = await aiohttp_client(app)
    await add_agent(room.store, "ann@shop.test", AgentRole.SUPERVISOR)
    response = await client.post(
        "/api/v1/auth/login", json={"email": "ann@shop.test", "password": PASSWORD}
    )
    assert response.status == 200, await response.text()
    return client, {"X-CSRF-Token": (await response.json())["csrf_token"]}


def sent_saying(sink: Sink, words: str) -> EmailMessage:
    [found] = [m for m in sink.mails() if words in str(m.get_body(("plain",)))]
    return found


def plain_text(sent: EmailMessage) -> str:
    body = sent.get_body(("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content()).replace("\r\n", "\n")  # as the sink received it: CRLF


async def test_a_reply_to_the_first_of_two_mails_threads_on_it(
    aiohttp_client: Any, mailroom: Mailroom, smtp_sink: Sink, db_url: str, redis_url: str
) -> None:
    number, first = await customer_mails(mailroom, mail(subject="Blender broken", message_id=FIRST))
    later, _ = await customer_mails(
        mailroom,
        mail(subject="Re: Blender broken", text="Also the lid.", message_id=SECOND,
             references=FIRST, in_reply_to=FIRST),
    )  # fmt: skip
    assert later == number
    client, headers = await agent(aiohttp_client, mailroom, db_url, redis_url)
    path = f"/api/v1/tickets/{number}/replies"
    chosen = await client.post(
        path, json={"text": "About the motor: it is covered.", "reply_to": first}, headers=headers
    )
    assert chosen.status == 201, await chosen.text()
    latest = await client.post(path, json={"text": "A new lid is on its way."}, headers=headers)
    assert latest.status == 201, await latest.text()
    assert set(await mailroom.deliver_pending()) == {"sent"}

    to_first = sent_saying(smtp_sink, "About the motor")
    assert (to_first["In-Reply-To"], to_first["References"]) == (FIRST, FIRST)
    assert plain_text(to_first).startswith("About the motor")  # threaded on it: no "> " quote
    to_latest = sent_saying(smtp_sink, "A new lid")
    assert (to_latest["In-Reply-To"], to_latest["References"]) == (SECOND, f"{FIRST} {SECOND}")


async def on_telegram(room: Mailroom, number: str, text: str) -> int:
    """The customer's Telegram message saying ``text`` in ticket ``number`` (as one joins it
    once their Telegram and email contacts are one): its id."""
    async with room.store.write() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        message = TicketMessage(
            ticket_id=ticket.id,
            kind="incoming",
            author_type="customer",
            channel=Channel.TELEGRAM.value,
            external_id="888:41",
            text=text,
            attachments=[],
            channel_meta={"chat_id": 888, "message_id": 41},
            created_at=ticket.created_at,
        )
        session.add(message)
        await session.flush()
        return message.id


async def test_a_reply_to_a_telegram_message_in_a_mail_ticket_quotes_its_words(
    aiohttp_client: Any, mailroom: Mailroom, smtp_sink: Sink, db_url: str, redis_url: str
) -> None:
    """Regression: the mail answered a Telegram message with no sign of which one (its ids
    cannot go in In-Reply-To); it threads on the customer's latest mail, as a plain reply."""
    number, _ = await customer_mails(mailroom, mail(subject="Blender broken", message_id=FIRST))
    chat = await on_telegram(mailroom, number, "Is the <lid> covered?\n\nIt cracked & fell.")
    client, headers = await agent(aiohttp_client, mailroom, db_url, redis_url)
    answer = await client.post(
        f"/api/v1/tickets/{number}/replies",
        json={"text": "Yes, the lid is covered.", "reply_to": chat},
        headers=headers,
    )
    assert answer.status == 201, await answer.text()
    assert set(await mailroom.deliver_pending()) == {"sent"}

    sent = sent_saying(smtp_sink, "the lid is covered")
    plain = plain_text(sent)
    assert plain.startswith(
        "> Is the <lid> covered?\n>\n> It cracked & fell.\n\nYes, the lid is covered.\n"
    )
    html = sent.get_body(("html",))
    assert isinstance(html, EmailMessage)
    page = str(html.get_content())
    assert (
        '<body><blockquote type="cite">Is the &lt;lid&gt; covered?<br><br>It cracked &amp; '
        "fell.</blockquote><p>Yes, the lid is covered.</p>"
    ) in page
    assert (sent["In-Reply-To"], sent["References"]) == (FIRST, FIRST)
