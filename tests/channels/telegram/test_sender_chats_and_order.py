"""Which chat a delivery goes to when a contact has two, and a contact's rows delivered in
the order they were owed."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import Redis
from rq import Queue

from channels.base import TransientChannelError
from gateway.appkeys import PIPELINE
from gateway.settings import Settings
from gateway.store import Store
from tests.channels.telegram.conftest import (
    AlwaysAnswers,
    Gateway,
    MakeGateway,
    outbox,
    post_fixture,
    post_update,
    sent_again,
)
from tests.channels.telegram.deliveries import add_identity, as_agent_reply, first_notice
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.test_outbox_relay import run_worker
from tests.worker_harness import read_record
from workers.jobs import deliver_async, deliver_many
from workers.relay import OutboxRelay


async def test_a_notice_goes_to_the_chat_of_its_ticket_when_the_contact_has_two(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """A merge can give one contact two Telegram accounts: a ticket's notices and replies
    went to the newest, not to the chat the customer wrote from."""
    row = await first_notice(gateway, db)  # Li writes from chat 888
    await add_identity(db, row, "telegram", "999")
    assert await deliver_async(row.id, settings) == "sent"
    assert [s["chat_id"] for s in fake.sent] == [888]


async def test_a_ticket_the_chat_left_with_new_is_still_answered_in_that_chat(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """``/new`` gives the chat's earlier tickets a thread key of their own (``<chat>/<number>``):
    their notices and replies no longer found the chat they came from, and a contact with two
    Telegram accounts read them in the other one (where a Reply found no ticket)."""
    row = await first_notice(gateway, db)  # Li writes from chat 888
    await add_identity(db, row, "telegram", "999")
    _, client = gateway
    new = sent_again("private_text")
    new["message"]["text"] = "/new"
    new["message"]["entities"] = [{"offset": 0, "length": 4, "type": "bot_command"}]
    assert await post_update(client, new) == 200
    fake.sent.clear()  # the command's answer
    await as_agent_reply(db, row, "您的订单已发货")
    assert await deliver_async(row.id, settings) == "sent"
    assert [s["chat_id"] for s in fake.sent] == [888]


async def test_a_contacts_later_rows_wait_for_the_retry_of_an_earlier_one(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """Two replies to one customer in one job; the first meets a 502. Sent at once, the second
    would arrive first and the retry's first after it."""
    await first_notice(gateway, db)
    first, second = (await outbox(db))[:2]
    assert first.contact_id == second.contact_id
    await as_agent_reply(db, first, "1. Restart the router.")
    await as_agent_reply(db, second, "2. Then press reset.")
    fake.fail_next("sendMessage", 502, "Bad Gateway")
    with pytest.raises(TransientChannelError):
        await deliver_many([first.id, second.id], settings)
    assert fake.sent == []
    assert {r.status for r in (await outbox(db))[:2]} == {"pending"}  # none marked sent
    await deliver_many([first.id, second.id], settings, last_try=True)  # RQ's retry
    assert [s["text"] for s in fake.sent] == ["1. Restart the router.", "2. Then press reset."]


async def test_the_acknowledgement_and_the_knowledge_bases_answer_arrive_in_that_order(
    make_gateway: MakeGateway, settings: Settings, db: Store, tmp_path: Path
) -> None:
    """Ingest owes "we got your message" (a notice), then the router the answer (a reply):
    on queues of their own a worker took the reply first. A contact's rows relayed together
    go in one job, on the most urgent kind's queue, in the order they were owed."""
    app, client = await make_gateway(settings, kb=AlwaysAnswers())
    assert await post_fixture(client, "private_text") == 200
    await app[PIPELINE].drain()
    rows = await outbox(db)
    assert [(r.kind, r.template) for r in rows] == [
        ("notice", "ticket_received"),
        ("reply", "message"),
    ]
    redis = Redis.from_url(settings.redis_url)
    try:
        assert await OutboxRelay(db, redis).run_once() == 2
        assert Queue("replies", connection=redis).count == 1
    finally:
        redis.close()
    record = tmp_path / "sent.jsonl"
    await run_worker(settings.database_url, settings.redis_url, record)
    order = [(m.kind.value, m.template) for m in read_record(record)]
    assert order == [("notice", "ticket_received"), ("reply", "message")]
