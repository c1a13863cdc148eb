"""``/status`` through the webhook: the sender's own open tickets, in one message, in the
contact's language."""

from __future__ import annotations

from sqlalchemy import insert

from channels.telegram.commands import STATUS_SHOWN
from gateway.appkeys import PIPELINE
from gateway.models import Channel, InboundMessage
from gateway.store import Store
from gateway.store.tables import Contact, ContactIdentity
from tests.channels.telegram.conftest import (
    Gateway,
    contacts,
    identities,
    load_fixture,
    messages,
    post_fixture,
    post_update,
    tickets,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.channels.telegram.private_chat import say, text_from
from tests.factories import NOON


async def test_status_shows_only_the_senders_own_open_tickets(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    app, client = gateway
    await say(client, 777, "my parcel is late")  # G20261122001, Ann's
    await say(client, 888, "退货怎么办")  # G20261122002, Li's
    await say(client, 777, "/new")
    await say(client, 777, "and the invoice is wrong")  # G20261122003, Ann's
    await app[PIPELINE].drain()
    fake.sent.clear()

    await say(client, 777, "/status")
    [answer] = fake.sent
    assert answer["chat_id"] == 777
    assert answer["text"].splitlines() == [
        "Your open tickets:",
        "G20261122003 · received",
        "G20261122001 · received",
    ]
    await say(client, 888, "/status", language="zh-hans")
    assert fake.sent[1]["text"].splitlines() == ["您处理中的工单：", "G20261122002 · 已受理"]
    await say(client, 999, "/status")
    assert fake.sent[2]["text"] == "You have no open tickets."
    assert not any(m.text == "/status" for m in await messages(db))  # commands are not stored


async def test_a_number_typed_into_a_form_does_not_hand_its_tickets_to_who_shares_it(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    """A web chat visitor typed Ann's number in the pre-chat form. When Ann shares it as her
    own, the visitor's contact used to take her Telegram identity: her /status listed the
    visitor's tickets (and the visitor's contact hers)."""
    app, client = gateway
    async with db.write() as session:
        visitor = await session.scalar(
            insert(Contact)
            .values(name="Visitor", phone="+8613800138000", vip=False, created_at=NOON)
            .returning(Contact.id)
        )
        await session.execute(
            insert(ContactIdentity).values(
                contact_id=visitor, channel="webchat", external_user_id="sess-1", created_at=NOON
            )
        )
    inbound = InboundMessage(
        channel=Channel.WEBCHAT,
        external_id="w1",
        external_user_id="sess-1",
        text="the visitor's own question",
        thread_key="sess-1",
    )
    await app[PIPELINE].on_message(inbound)  # G20261122001, the visitor's
    await say(client, 777, "my parcel is late")  # G20261122002, Ann's
    assert await post_fixture(client, "contact") == 200  # Ann's own number (user_id 777)
    await app[PIPELINE].drain()
    fake.sent.clear()

    await say(client, 777, "/status")
    assert fake.sent[0]["text"].splitlines() == ["Your open tickets:", "G20261122002 · received"]
    [ann] = [i for i in await identities(db) if i.channel == "telegram"]
    assert ann.contact_id != visitor
    assert [(c.phone, c.phone_verified) for c in await contacts(db)] == [
        ("+8613800138000", False),  # typed: no proof
        ("+8613800138000", True),  # shared by its owner
    ]


async def test_status_of_a_customer_with_many_open_tickets_fits_one_message(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    """Listed whole, a long enough list passes Telegram's 4,096 characters: refused with 400,
    the update would never be acknowledged. The newest are named, the rest counted."""
    app, client = gateway
    for n in range(STATUS_SHOWN + 3):
        await say(client, 777, f"order {n} is late")
        await say(client, 777, "/new")
    await app[PIPELINE].drain()
    numbers = [t.number for t in await tickets(db)]
    assert len(numbers) == STATUS_SHOWN + 3
    fake.sent.clear()

    await say(client, 777, "/status")
    [answer] = fake.sent
    lines = answer["text"].splitlines()
    assert lines[0] == "Your open tickets:"
    assert [line.split(" · ")[0] for line in lines[1:-1]] == numbers[::-1][:STATUS_SHOWN]
    assert lines[-1] == "…and 3 more open tickets."
    await say(client, 777, "/status", language="zh-hans")
    assert fake.sent[-1]["text"].splitlines()[-1] == "……另有 3 个处理中的工单。"


async def test_a_command_without_a_language_code_is_answered_in_the_contacts_language(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    """Telegram's ``language_code`` is optional: without it an English customer's commands
    and button presses were answered in Chinese, while their notices, which follow the
    contact's language, came in English. Nothing known of them at all: Chinese."""
    app, client = gateway
    await say(client, 777, "my parcel is late")  # language_code "en": the contact's
    await app[PIPELINE].drain()
    fake.sent.clear()
    for user in (777, 779):
        update = text_from(user, "/status")
        del update["message"]["from"]["language_code"]
        assert await post_update(client, update) == 200
    assert [s["text"].splitlines()[0] for s in fake.sent] == [
        "Your open tickets:",
        "您目前没有处理中的工单。",
    ]
    press = load_fixture("callback_query")
    press["callback_query"]["from"] = {"id": 777, "is_bot": False, "first_name": "U777"}
    press["callback_query"]["message"]["chat"]["id"] = 777
    assert await post_update(client, press) == 200
    [answer] = fake.calls_of("answerCallbackQuery")
    assert answer.params["text"] == "Thank you for your feedback!"
