"""An agent answers one of the customer's mails (``reply_to`` in the agent API): the reply's
In-Reply-To and References thread on that mail, not on the latest one (RFC 5322 3.6.4)."""

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
from gateway.models import AgentRole
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
    to_latest = sent_saying(smtp_sink, "A new lid")
    assert (to_latest["In-Reply-To"], to_latest["References"]) == (SECOND, f"{FIRST} {SECOND}")
