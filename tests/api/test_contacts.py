"""A supervisor merges two contacts of one person: identities, tickets and known fields move to
the one kept, with the proof of the email and phone they bring; every ticket of a contact shows
the names they go by on their channels."""

from __future__ import annotations

from sqlalchemy import select

from channels.telegram.parse import parse_update
from gateway.models import AgentRole, Channel, InboundMessage
from gateway.store.tables import Contact, OutboxRow, Ticket
from tests.api.conftest import Desk
from tests.channels.telegram.conftest import load_fixture
from tests.factories import inbound


async def test_a_supervisor_merges_two_contacts_of_one_person(desk: Desk) -> None:
    by_form = await desk.customer_says(
        inbound(
            channel=Channel.WEBCHAT,
            external_user_id="session-1",
            thread_key="session-1",
            email="ann@example.test",
            sender_name="Ann",
        )
    )
    by_telegram = await desk.customer_says(
        inbound(external_user_id="777", phone="+8613800138000", phone_verified=True)
    )
    async with desk.store.read() as session:
        tickets = {t.number: t.contact_id for t in (await session.scalars(select(Ticket))).all()}
    keep, other = tickets[by_form], tickets[by_telegram]
    agent = await desk.login("agent@shop.test", AgentRole.AGENT)
    refused = await agent.send("POST", f"/api/v1/contacts/{keep}/merge", {"other_id": other})
    assert refused.status == 403

    supervisor = await desk.login("lead@shop.test", AgentRole.SUPERVISOR)
    merged = await supervisor.send("POST", f"/api/v1/contacts/{keep}/merge", {"other_id": other})
    assert merged.status == 200, await merged.text()
    body = await merged.json()
    assert (body["email"], body["phone"]) == ("ann@example.test", "+8613800138000")
    assert sorted(body["channels"]) == ["telegram", "webchat"]
    async with desk.store.read() as session:
        kept = await session.get_one(Contact, keep)
        assert (kept.email_verified, kept.phone_verified) == (False, True)  # typed; proven
        assert (await session.get_one(Contact, other)).merged_into_id == keep
        owners = (await session.scalars(select(Ticket.contact_id))).all()
        owed = (await session.scalars(select(OutboxRow.contact_id))).all()
    assert set(owners) == {keep}
    # The notices still owed go to the contact kept: the other has no identity left to
    # deliver them through, so they would have failed.
    assert len(owed) == 4 and set(owed) == {keep}  # each ticket: received, escalated
    again = await supervisor.send("POST", f"/api/v1/contacts/{keep}/merge", {"other_id": other})
    assert again.status == 404  # merged already


async def test_every_ticket_of_a_contact_shows_their_latest_telegram_username(desk: Desk) -> None:
    """The console read the @username from the messages of the ticket on screen: a ticket from
    another channel, or one older than the name, showed none though the contact has one."""
    by_form = await desk.customer_says(
        inbound(
            channel=Channel.WEBCHAT,
            external_user_id="session-1",
            thread_key="session-1",
            email="ann@example.test",
        )
    )
    by_telegram = await desk.customer_says(inbound(external_user_id="777"))  # no name yet
    for meta in ({"username": "li_old"}, {"username": "li_xiao"}, {}):
        # A name, a new name, then a message without the key (stored before Telegram's
        # parse said "" for none): it says nothing, and the name before it stays.
        assert by_telegram == await desk.customer_says(
            inbound(external_user_id="777", channel_meta=meta)
        )
    async with desk.store.read() as session:
        tickets = {t.number: t.contact_id for t in (await session.scalars(select(Ticket))).all()}
    keep = tickets[by_form]
    supervisor = await desk.login("lead@shop.test", AgentRole.SUPERVISOR)
    merged = await supervisor.send(
        "POST", f"/api/v1/contacts/{keep}/merge", {"other_id": tickets[by_telegram]}
    )
    assert merged.status == 200, await merged.text()
    assert (await merged.json())["usernames"] == {"telegram": "li_xiao"}
    agent = await desk.login("agent@shop.test", AgentRole.AGENT)
    for number in (by_form, by_telegram):
        detail = await (await agent.get(f"/api/v1/tickets/{number}")).json()
        assert detail["contact"]["usernames"] == {"telegram": "li_xiao"}, number


async def test_a_contact_without_a_username_has_none(desk: Desk) -> None:
    number = await desk.customer_says(inbound(channel_meta={"username": ""}))
    agent = await desk.login("agent@shop.test", AgentRole.AGENT)
    detail = await (await agent.get(f"/api/v1/tickets/{number}")).json()
    assert detail["contact"]["usernames"] == {}


async def test_a_telegram_username_the_customer_removed_is_no_longer_shown(desk: Desk) -> None:
    """A customer who removed their @username still showed the old one on every ticket: their
    messages without one were taken to say nothing. Telegram's message is parsed as it comes
    (``username`` "" for none), and the latest decides; a name taken again shows again."""
    agent = await desk.login("agent@shop.test", AgentRole.AGENT)

    async def writes(n: int, username: str | None) -> dict[str, str]:
        update = load_fixture("private_text")
        update["update_id"], update["message"]["message_id"] = 1100 + n, 100 + n
        if username is not None:
            update["message"]["from"]["username"] = username
        message = parse_update(update)
        assert isinstance(message, InboundMessage)
        number = await desk.customer_says(message)
        detail = await (await agent.get(f"/api/v1/tickets/{number}")).json()
        usernames: dict[str, str] = detail["contact"]["usernames"]
        return usernames

    assert await writes(1, "li_old") == {"telegram": "li_old"}
    assert await writes(2, None) == {}
    assert await writes(3, "li_new") == {"telegram": "li_new"}
