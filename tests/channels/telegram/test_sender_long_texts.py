"""Outbound texts over Telegram's 4,096 characters: split on paragraphs, and a delivery
that fails after its first part sends only the rest."""

from __future__ import annotations

from channels.telegram.conversations import replied_ticket
from gateway.outbox_admin import retry_row
from gateway.settings import Settings
from gateway.store import Store
from tests.channels.telegram.conftest import Gateway, outbox
from tests.channels.telegram.deliveries import as_agent_reply, first_notice
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from workers.jobs import deliver_async


async def test_long_texts_are_split_on_paragraphs_and_the_receipt_names_the_first(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    row = await first_notice(gateway, db)
    paragraphs = [f"Step {i}: " + " ".join(["详细说明"] * 400) for i in range(4)]
    await as_agent_reply(db, row, "\n\n".join(paragraphs))
    assert await deliver_async(row.id, settings) == "sent"
    texts = [s["text"] for s in fake.sent]
    assert len(texts) == 2
    assert all(len(t) <= 4096 for t in texts)
    assert texts[0].startswith("Step 0") and texts[1].startswith("Step 2")
    assert texts == ["\n\n".join(paragraphs[:2]), "\n\n".join(paragraphs[2:])]
    assert (await outbox(db))[0].external_id == str(fake.sent[0]["message_id"])


async def test_trouble_after_the_first_part_is_waited_out_not_sent_again(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """The first part went; the second met flood control twice, then a 502. Handing the row
    back to RQ used to send the first part again with the second."""
    row = await first_notice(gateway, db)
    await as_agent_reply(db, row, "A" * 3000 + "\n\n" + "B" * 3000)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1, after=1)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    fake.fail_next("sendMessage", 502, "Bad Gateway")
    assert await deliver_async(row.id, settings) == "sent"
    assert [s["text"][0] for s in fake.sent] == ["A", "B"]
    assert len(fake.calls_of("sendMessage")) == 5


async def test_a_delivery_stopped_after_its_first_part_sends_only_the_rest_on_retry(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """The second part met flood control longer than a delivery waits: the next try sent the
    whole text again, and the customer read the first part twice."""
    row = await first_notice(gateway, db)
    await as_agent_reply(db, row, "A" * 3000 + "\n\n" + "B" * 3000)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 60", retry_after=60, after=1)
    result = await deliver_async(row.id, settings)
    assert result == "deferred: Telegram flood control (1 of 2 parts delivered)"
    assert [s["text"][0] for s in fake.sent] == ["A"]
    assert await deliver_async(row.id, settings) == "sent"  # when due, queued again
    assert [s["text"][0] for s in fake.sent] == ["A", "B"]
    [stored] = [r for r in await outbox(db) if r.id == row.id]
    assert stored.external_id == str(fake.sent[0]["message_id"])  # the first part, as ever


async def test_a_refused_later_part_says_what_went_and_a_retry_sends_the_rest(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """The second part refused for good: the row failed as if nothing had gone, so the agent
    took the reply for undelivered, and an admin's retry sent the first part again. A
    customer's Reply to the part they got must still find the ticket."""
    row = await first_notice(gateway, db)
    await as_agent_reply(db, row, "A" * 3000 + "\n\n" + "B" * 3000)
    fake.fail_next("sendMessage", 400, "Bad Request: message is too long", after=1)
    result = await deliver_async(row.id, settings)
    assert result.endswith("(1 of 2 parts delivered)")
    [stored] = [r for r in await outbox(db) if r.id == row.id]
    assert (stored.status, stored.last_error) == ("failed", result.removeprefix("failed: "))
    async with db.read() as session:
        found = await replied_ticket(session, 888, fake.sent[0]["message_id"])
    assert found == "G20261122001"  # the fixture chat's ticket
    assert await retry_row(db, row.id)  # the admin's "outbox retry"
    assert await deliver_async(row.id, settings) == "sent"
    assert [s["text"][0] for s in fake.sent] == ["A", "B"]
