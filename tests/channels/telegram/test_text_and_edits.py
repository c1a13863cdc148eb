"""Text through the real app's webhook: the ticket, message, contact and replies a private
text produces (replies delivered by the real job to the fake Bot API), ``/start``, and edits."""

from __future__ import annotations

from gateway.appkeys import PIPELINE
from gateway.settings import Settings
from gateway.store import Store
from tests.channels.telegram.conftest import (
    Gateway,
    contacts,
    deliver_all,
    identities,
    load_fixture,
    messages,
    outbox,
    post_fixture,
    post_update,
    tickets,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI


async def test_private_text_opens_a_ticket_and_the_replies_reach_the_chat(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    app, client = gateway
    assert await post_fixture(client, "private_text") == 200
    await app[PIPELINE].drain()

    [ticket] = await tickets(db)
    assert (ticket.number, ticket.channel, ticket.thread_key) == ("G20261122001", "telegram", "888")
    assert ticket.escalated_at is not None  # the knowledge base declined: people take it
    [message] = await messages(db)
    assert message.external_id == "888:11"
    assert message.text == "我的订单 #A1024 还没有发货，请帮我查一下"
    assert message.channel_meta["update_id"] == 1001
    [contact] = await contacts(db)
    assert (contact.name, contact.locale) == ("小李", "zh-hans")
    [identity] = await identities(db)
    assert (identity.channel, identity.external_user_id, identity.reachable) == (
        "telegram",
        "888",
        True,
    )
    assert [r.template for r in await outbox(db)] == ["ticket_received", "escalated"]

    assert await deliver_all(db, settings) == ["sent", "sent"]
    sent = fake.sent
    assert [(s["chat_id"], s["method"]) for s in sent] == [(888, "sendMessage")] * 2
    assert "G20261122001" in sent[0]["text"] and "24 小时" in sent[0]["text"]
    assert "人工" in sent[1]["text"]
    assert [r.external_id for r in await outbox(db)] == [str(s["message_id"]) for s in sent]


async def test_text_starting_with_a_slash_but_no_entity_is_a_question(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    _, client = gateway
    assert await post_fixture(client, "slash_text_without_entity") == 200
    [message] = await messages(db)
    assert message.text == "/start is not working on my device"
    assert fake.sent == []


async def test_start_command_welcomes_in_the_users_language_and_opens_no_ticket(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    _, client = gateway
    assert await post_fixture(client, "command_with_entities") == 200
    [sent] = fake.sent
    assert sent["chat_id"] == 777
    assert sent["text"].startswith("Hello, welcome")
    assert await tickets(db) == []
    [contact] = await contacts(db)
    assert (contact.name, contact.locale) == ("Ann Lee", "en")

    chinese = load_fixture("command_with_entities")
    chinese["update_id"] += 100
    chinese["message"]["from"] = {
        "id": 888,
        "is_bot": False,
        "first_name": "李",
        "language_code": "zh-hans",
    }
    chinese["message"]["chat"]["id"] = 888
    assert await post_update(client, chinese) == 200
    assert fake.sent[1]["text"].startswith("您好，欢迎")


async def test_edited_message_updates_the_stored_message(gateway: Gateway, db: Store) -> None:
    _, client = gateway
    assert await post_fixture(client, "private_text") == 200
    assert await post_fixture(client, "edited_message") == 200
    assert await post_fixture(client, "edited_message") == 200  # redelivered: applied once
    [message] = await messages(db)
    assert message.text == "我的订单 #A1025 还没有发货，请帮我查一下"
    assert message.channel_meta["edits"] == [
        {"text": "我的订单 #A1024 还没有发货，请帮我查一下", "replaced_at": 1795320060}
    ]
    assert len(await tickets(db)) == 1


async def test_a_second_edit_within_the_same_second_is_kept(gateway: Gateway, db: Store) -> None:
    """``edit_date`` counts seconds: a quick second correction was taken for a redelivery."""
    _, client = gateway
    assert await post_fixture(client, "private_text") == 200
    first = load_fixture("edited_message")
    second = load_fixture("edited_message")
    second["update_id"] += 1
    second["edited_message"]["text"] = "我的订单 #A1026 还没有发货，请帮我查一下"
    for edit in (first, second, second, first):  # each redelivered, the first after the second
        assert await post_update(client, edit) == 200
    [message] = await messages(db)
    assert message.text == "我的订单 #A1026 还没有发货，请帮我查一下"
    assert [e["text"] for e in message.channel_meta["edits"]] == [
        "我的订单 #A1024 还没有发货，请帮我查一下",
        "我的订单 #A1025 还没有发货，请帮我查一下",
    ]


async def test_edit_of_a_message_never_stored_is_stored(gateway: Gateway, db: Store) -> None:
    _, client = gateway
    assert await post_fixture(client, "edited_message") == 200
    [message] = await messages(db)
    assert (message.external_id, message.text) == (
        "888:11",
        "我的订单 #A1025 还没有发货，请帮我查一下",
    )
