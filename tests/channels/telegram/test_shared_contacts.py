"""Contacts shared in the chat: the sender's own phone (proved, merging contacts), a number
that moved to another account, and someone else's card."""

from __future__ import annotations

from sqlalchemy import insert, update

from gateway.appkeys import PIPELINE
from gateway.store import Store
from gateway.store.tables import Contact
from tests.channels.telegram.conftest import (
    Gateway,
    contacts,
    identities,
    load_fixture,
    messages,
    outbox,
    post_fixture,
    post_update,
    tickets,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.factories import NOON


async def test_shared_contact_puts_the_phone_on_the_contact_and_merges(
    gateway: Gateway, db: Store
) -> None:
    _, client = gateway
    async with db.write() as session:
        await session.execute(
            insert(Contact).values(
                name="Ann (phone)",
                phone="+8613800138000",
                phone_verified=True,  # proven before (a Telegram account of Ann's shared it)
                email="ann@example.com",
                created_at=NOON,
            )
        )
    text = load_fixture("private_text")
    text["message"]["from"] = {"id": 777, "is_bot": False, "first_name": "Ann"}
    text["message"]["chat"]["id"] = 777
    assert await post_update(client, text) == 200
    async with db.write() as session:  # an agent marked the Telegram contact VIP
        await session.execute(update(Contact).where(Contact.phone.is_(None)).values(vip=True))
    assert await post_fixture(client, "contact") == 200
    assert await post_fixture(client, "contact") == 200  # redelivered: nothing new
    older, newer = await contacts(db)
    assert (older.phone, older.vip) == ("+8613800138000", True)
    assert newer.merged_into_id == older.id
    [identity] = await identities(db)
    assert identity.contact_id == older.id
    assert {t.contact_id for t in await tickets(db)} == {older.id}
    shared = (await messages(db))[-1]
    assert shared.channel_meta["contact"]["phone"] == "+8613800138000"
    assert len(await messages(db)) == 2


async def test_a_number_that_moved_to_another_telegram_account_merges_nothing(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    """A carrier gives Ann's dropped number to Bob, who shares it from his own account: the
    merge showed Bob Ann's tickets and sent him her notices."""
    _, client = gateway
    ann = load_fixture("private_text")
    ann["message"]["from"] = {"id": 777, "is_bot": False, "first_name": "Ann"}
    ann["message"]["chat"]["id"] = 777
    assert await post_update(client, ann) == 200
    assert await post_fixture(client, "contact") == 200  # Ann proves +8613800138000
    bob = load_fixture("contact")
    bob["update_id"] += 100
    bob["message"]["from"] = {"id": 999, "is_bot": False, "first_name": "Bob"}
    bob["message"]["chat"] = {"id": 999, "type": "private", "first_name": "Bob"}
    bob["message"]["contact"]["user_id"] = 999
    assert await post_update(client, bob) == 200
    by_user = {i.external_user_id: i.contact_id for i in await identities(db)}
    found = {c.id: c for c in await contacts(db)}
    ann_contact, bob_contact = found[by_user["777"]], found[by_user["999"]]
    assert ann_contact.id != bob_contact.id and bob_contact.merged_into_id is None
    assert (bob_contact.phone, bob_contact.phone_verified) == ("+8613800138000", True)
    assert ann_contact.phone_verified is False  # her proof lapsed with the number
    assert {t.contact_id for t in await tickets(db)} == {ann_contact.id}


async def test_someone_elses_contact_is_not_put_on_the_sender(gateway: Gateway, db: Store) -> None:
    """Nor dropped: shared with no ticket open, it was neither stored nor answered."""
    app, client = gateway
    assert await post_fixture(client, "contact_of_someone_else") == 200
    await app[PIPELINE].drain()
    [contact] = await contacts(db)
    assert contact.phone is None
    [card] = await messages(db)
    assert card.text == "📇 Bob: +8613900000000"
    [ticket] = await tickets(db)
    assert ticket.escalated_at is not None  # a card is for people, not the knowledge base
    assert [r.template for r in await outbox(db)] == ["ticket_received", "escalated"]


async def test_a_contact_shared_outside_a_conversation_opens_no_ticket(
    gateway: Gateway, db: Store
) -> None:
    _, client = gateway
    assert await post_fixture(client, "contact") == 200
    [contact] = await contacts(db)
    assert (contact.name, contact.phone) == ("Ann Lee", "+8613800138000")
    assert await tickets(db) == []
    assert await outbox(db) == []
