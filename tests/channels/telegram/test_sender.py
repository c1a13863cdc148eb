"""Outbound: the real delivery job (``workers.jobs.deliver_async``) against the fake Bot API."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import insert, update
from telegram.error import NetworkError

from channels.attachment_store import read_stored
from channels.base import TransientChannelError
from channels.telegram import sender
from channels.telegram.conversations import replied_ticket
from channels.telegram.sender import TelegramSender
from gateway.appkeys import PIPELINE
from gateway.models import Attachment, Channel, OutboundMessage, OutboxKind
from gateway.outbox_admin import HandedToEmail, failed_rows, retry_row
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import ContactIdentity, OutboxRow, TicketMessage
from tests.channels.telegram.conftest import (
    AlwaysAnswers,
    Gateway,
    MakeGateway,
    identities,
    outbox,
    post_fixture,
    post_update,
    sent_again,
    telegram_settings,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.test_outbox_relay import run_worker
from tests.worker_harness import read_record
from workers.jobs import DEFER_AT_MOST, deliver_async, deliver_many
from workers.relay import OutboxRelay


async def first_notice(gateway: Gateway, db: Store) -> OutboxRow:
    """Li writes in: the acknowledgement notice is outbox row 1."""
    app, client = gateway
    assert await post_fixture(client, "private_text") == 200
    await app[PIPELINE].drain()
    return (await outbox(db))[0]


async def add_identity(db: Store, row: OutboxRow, channel: str, user_id: str) -> None:
    """Give the contact of ``row`` one more (reachable) identity."""
    async with db.write() as session:
        await session.execute(
            insert(ContactIdentity).values(
                contact_id=row.contact_id,
                channel=channel,
                external_user_id=user_id,
                reachable=True,
                created_at=row.created_at,
            )
        )


def outbound(text: str, **fields: object) -> OutboundMessage:
    values: dict[str, object] = {
        "outbox_id": 1,
        "channel": Channel.TELEGRAM,
        "recipient": "888",
        "text": text,
        "ticket_number": "G20261122001",
    }
    values.update(fields)
    return OutboundMessage.model_validate(values)


async def test_a_429_with_retry_after_delays_and_then_delivers(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    row = await first_notice(gateway, db)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    started = time.monotonic()
    assert await deliver_async(row.id, settings) == "sent"
    assert time.monotonic() - started >= 1.0
    first, second = fake.calls_of("sendMessage")
    assert second.at - first.at >= 1.0
    assert [s["chat_id"] for s in fake.sent] == [888]
    assert (await outbox(db))[0].status == "sent"


async def test_one_bot_keeps_to_its_rate_across_chats(
    fake: FakeBotAPI, db_url: str, redis_url: str, tmp_path: Path
) -> None:
    """python-telegram-bot's rate limiter paces a worker's kept bot: ten notices to ten chats
    at 5 a second leave over about a second (five at once, then one every 0.2 s).

    Timed from before the first send, not from the first arrival: the first requests may
    arrive late (a connection opened on a busy machine), the last cannot arrive early."""
    settings = telegram_settings(fake, db_url, redis_url, tmp_path, rate_per_second=5)
    sender = TelegramSender(settings)
    await sender.open()
    started = time.monotonic()  # the fake stamps arrivals with the same clock
    try:
        await asyncio.gather(
            *(
                sender.send(outbound(f"notice {n}", outbox_id=n, recipient=str(1000 + n)))
                for n in range(10)
            )
        )
    finally:
        await sender.aclose()
    times = sorted(call.at for call in fake.calls_of("sendMessage"))
    assert len(times) == 10
    assert times[-1] - started >= 0.95
    assert sorted(s["chat_id"] for s in fake.sent) == list(range(1000, 1010))


async def test_a_long_retry_after_goes_back_to_the_queue_with_its_delay(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    row = await first_notice(gateway, db)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 30", retry_after=30)
    asked_at = time.time()
    assert await deliver_async(row.id, settings) == "deferred: Telegram flood control"
    deferred = (await outbox(db))[0]
    assert deferred.status == "pending"  # the relay queues it again once due
    assert abs(deferred.due_at.timestamp() - (asked_at + 30)) < 5
    assert await deliver_async(row.id, settings) == "sent"
    assert len(fake.sent) == 1


async def test_a_403_marks_the_identity_unreachable(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    row = await first_notice(gateway, db)
    fake.blocked.add(888)
    result = await deliver_async(row.id, settings)
    assert result.startswith("failed: the user blocked the bot")
    [identity] = await identities(db)
    assert identity.reachable is False
    failed = (await outbox(db))[0]
    assert failed.status == "failed"
    # The next notice has no reachable identity on Telegram: parked with that reason.
    later = (await outbox(db))[1]
    assert "no reachable identity" in await deliver_async(later.id, settings)
    assert fake.sent == []


async def test_a_user_who_unblocks_and_writes_is_answered_again(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """Writing proves the bot is no longer blocked. Only /start used to say so: a user whose
    app unblocks without it stayed unreachable, every later notice and reply failing."""
    row = await first_notice(gateway, db)
    fake.blocked.add(888)
    assert (await deliver_async(row.id, settings)).startswith("failed: the user blocked")
    fake.blocked.clear()
    app, client = gateway
    assert await post_update(client, sent_again("private_text")) == 200
    await app[PIPELINE].drain()
    [identity] = await identities(db)
    assert identity.reachable is True
    later = (await outbox(db))[1]
    assert await deliver_async(later.id, settings) == "sent"
    assert len(fake.sent) == 1


async def test_a_blocked_users_notices_fall_back_to_their_email(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """The notice that meets the block and every one after it: the later ones used to fail
    with no reachable identity, though the customer's email was known."""
    row = await first_notice(gateway, db)
    await add_identity(db, row, "email", "li@example.com")
    fake.blocked.add(888)
    first = await deliver_async(row.id, settings)
    assert first.startswith("failed: the user blocked the bot") and "handed to email" in first
    later = (await outbox(db))[1]
    assert "handed to email" in await deliver_async(later.id, settings)
    # Delivered again (a retry after a crash): settled, nothing owed twice.
    assert await deliver_async(later.id, settings) == "already failed"
    rows = await outbox(db)
    assert [(r.channel, r.status) for r in rows[:2]] == [("telegram", "failed")] * 2
    handed = rows[2:]
    assert [(r.channel, r.kind, r.status) for r in handed] == [("email", "notice", "pending")] * 2
    assert [r.template for r in handed] == [row.template, later.template]
    assert [r.payload["fallback_from"] for r in handed] == [row.id, later.id]
    assert fake.sent == []


async def test_retrying_a_notice_that_was_handed_to_email_does_not_owe_the_email_again(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings, tmp_path: Path
) -> None:
    """A notice handed to email was listed by ``outbox failed`` as a failure, and ``outbox
    retry`` took it: the email was owed a second time, or, once the user had unblocked the
    bot, the notice went on Telegram as well. It is not listed, and its retry is refused."""
    from tests.cli_runner import environment
    from tests.cli_runner import gateway as run_gateway

    row = await first_notice(gateway, db)
    await add_identity(db, row, "email", "li@example.com")
    fake.blocked.add(888)
    assert "handed to email" in await deliver_async(row.id, settings)
    [email] = [r for r in await outbox(db) if r.channel == "email"]
    fake.blocked.clear()  # the user unblocked meanwhile
    assert await failed_rows(db) == []
    with pytest.raises(HandedToEmail, match=f"handed to email \\(outbox {email.id}\\)"):
        await retry_row(db, row.id)
    env = environment(
        GATEWAY_DATABASE_URL=settings.database_url, GATEWAY_REDIS_URL=settings.redis_url
    )
    listed = await asyncio.to_thread(run_gateway, "outbox", "failed", env=env, cwd=tmp_path)
    assert (listed.returncode, listed.stdout) == (0, "")
    retried = await asyncio.to_thread(
        run_gateway, "outbox", "retry", str(row.id), env=env, cwd=tmp_path
    )
    assert retried.returncode == 1
    assert f"retry outbox {email.id}" in retried.stderr
    assert await deliver_async(row.id, settings) == "already failed"
    assert [r.id for r in await outbox(db) if r.channel == "email"] == [email.id]
    assert fake.sent == []


async def test_a_notice_handed_to_email_twice_owes_the_email_once(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """However a handed-over row came to be delivered again, meeting the block once more
    owed its notice by email a second time."""
    row = await first_notice(gateway, db)
    await add_identity(db, row, "email", "li@example.com")
    fake.blocked.add(888)
    await deliver_async(row.id, settings)
    [email] = [r for r in await outbox(db) if r.channel == "email"]
    async with db.write() as session:
        await session.execute(
            update(OutboxRow).where(OutboxRow.id == row.id).values(status="pending")
        )
    again = await deliver_async(row.id, settings)
    assert again.endswith(f"handed to email (outbox {email.id})")  # the same email row
    emails = [r for r in await outbox(db) if r.channel == "email"]
    assert [r.payload["fallback_from"] for r in emails] == [row.id]


async def test_blocking_the_bot_is_heard_at_once_and_unblocking_opens_the_way_again(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """Telegram says when a user blocks or unblocks the bot (``my_chat_member``): no send has
    to be refused first, and an agent's reply reaches them again before they write."""
    row = await first_notice(gateway, db)
    _, client = gateway
    fake.blocked.add(888)
    assert await post_fixture(client, "bot_blocked") == 200
    [identity] = await identities(db)
    assert identity.reachable is False
    assert "no reachable identity" in await deliver_async(row.id, settings)
    assert fake.calls_of("sendMessage") == []  # not even tried

    fake.blocked.clear()
    assert await post_fixture(client, "bot_unblocked") == 200
    [identity] = await identities(db)
    assert identity.reachable is True
    later = (await outbox(db))[1]
    await as_agent_reply(db, later, "您的订单已发货")
    assert await deliver_async(later.id, settings) == "sent"
    assert [s["text"] for s in fake.sent] == ["您的订单已发货"]


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


async def as_agent_reply(db: Store, row: OutboxRow, text: str) -> None:
    """Make outbox ``row`` the delivery of an agent's reply saying ``text``."""
    async with db.write() as session:
        reply = TicketMessage(
            ticket_id=row.ticket_id,
            kind="outgoing",
            author_type="agent",
            channel="telegram",
            text=text,
            attachments=[],
            channel_meta={},
            created_at=row.created_at,
        )
        session.add(reply)
        await session.flush()
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row.id)
            .values(kind="reply", template="message", message_id=reply.id)
        )


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


async def test_an_admins_retry_gives_the_row_its_deferrals_back(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """A row parked after Telegram's flood control outlasted its deferrals kept its tries
    through "outbox retry": the retried row met the next long 429 with RQ's short retries
    (5 s, 30 s...) instead of waiting as Telegram asked, and was parked again."""
    row = await first_notice(gateway, db)
    async with db.write() as session:
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row.id)
            .values(status="failed", attempts=DEFER_AT_MOST + 3, last_error="flood control")
        )
    assert await retry_row(db, row.id)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 600", retry_after=600)
    assert await deliver_async(row.id, settings) == "deferred: Telegram flood control"
    [stored] = [r for r in await outbox(db) if r.id == row.id]
    assert (stored.status, stored.attempts) == ("pending", 1)


async def test_flood_control_before_anything_went_goes_back_to_the_queue(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    row = await first_notice(gateway, db)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    with pytest.raises(TransientChannelError):
        await deliver_async(row.id, settings)
    assert fake.sent == []


async def test_bot_answers_carry_did_this_help_and_surveys_the_stars(
    fake: FakeBotAPI, settings: Settings
) -> None:
    sender = TelegramSender(settings)
    await sender.send(
        outbound(
            "Orders ship within 48 hours.", channel_meta={"kb_entry_id": "shipping"}, message_id=42
        )
    )
    await sender.send(outbound("请为本次服务打分", kind=OutboxKind.SURVEY, outbox_id=2))
    await sender.send(outbound("An agent's answer", outbox_id=3))
    helpful, survey, plain = fake.sent
    assert helpful["reply_markup"] == {
        "inline_keyboard": [
            [
                {"text": "有帮助", "callback_data": "a:42:y"},
                {"text": "没有，转人工", "callback_data": "a:42:n"},
            ]
        ]
    }
    stars = survey["reply_markup"]["inline_keyboard"][0]
    assert [b["callback_data"] for b in stars] == [f"r:G20261122001:{n}" for n in range(1, 6)]
    assert "reply_markup" not in plain


async def test_agents_attachments_are_sent_as_photo_and_document(
    fake: FakeBotAPI, settings: Settings, tmp_path: Path
) -> None:
    photo, pdf = tmp_path / "a.png", tmp_path / "b.pdf"
    await asyncio.to_thread(photo.write_bytes, b"\x89PNG...")
    await asyncio.to_thread(pdf.write_bytes, b"%PDF-1.7")
    receipt = await TelegramSender(settings).send(
        outbound(
            "See attached",
            attachments=[
                {"filename": "a.png", "content_type": "image/png", "size": 7, "ref": str(photo)},
                {
                    "filename": "b.pdf",
                    "content_type": "application/pdf",
                    "size": 8,
                    "ref": str(pdf),
                },
            ],
        )
    )
    assert [s["method"] for s in fake.sent] == ["sendMessage", "sendPhoto", "sendDocument"]
    assert fake.sent[2]["document"]["filename"] == "b.pdf"
    assert receipt.channel_meta["message_ids"] == [s["message_id"] for s in fake.sent]


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


async def test_long_flood_control_defers_the_contacts_rows_till_when_telegram_asked(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """A 429 asking for ten minutes went back to RQ, whose next try came 5 s later into the
    same flood control (then 30 s, 2 min...), using up tries the rows may need."""
    await first_notice(gateway, db)
    first, second = (await outbox(db))[:2]
    await as_agent_reply(db, first, "1. Restart the router.")
    await as_agent_reply(db, second, "2. Then press reset.")
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 600", retry_after=600)
    asked_at = time.time()
    done = await deliver_many([first.id, second.id], settings)  # no exception: RQ is done
    assert done == {
        first.id: "deferred: Telegram flood control",
        second.id: f"deferred after outbox {first.id}",
    }
    assert fake.sent == []
    rows = {r.id: r for r in await outbox(db)}
    assert {rows[i].status for i in (first.id, second.id)} == {"pending"}
    assert (rows[first.id].attempts, rows[second.id].attempts) == (1, 0)
    assert rows[first.id].last_error == "Telegram flood control"
    for outbox_id in (first.id, second.id):
        assert abs(rows[outbox_id].due_at.timestamp() - (asked_at + 600)) < 5
    # When due, the relay queues them again, in order:
    await deliver_many([first.id, second.id], settings)
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


async def killed_in_a_wait(
    row: OutboxRow, fake: FakeBotAPI, settings: Settings, calls: int
) -> None:
    """Deliver ``row`` and kill the delivery once ``calls`` sendMessage calls were made and the
    sender is waiting out Telegram's flood control (a kill leaves the database the same)."""
    job = asyncio.create_task(deliver_async(row.id, settings))
    for _ in range(500):
        if len(fake.calls_of("sendMessage")) >= calls:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)  # within the 2 s wait
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job


async def test_a_kill_while_waiting_out_flood_control_does_not_lose_the_message(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """Telegram refused the request (429, retry after 2 s), so nothing went; yet the row kept
    its hand-over mark through the wait, and the retry after a kill took it as delivered."""
    row = await first_notice(gateway, db)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 2", retry_after=2)
    await killed_in_a_wait(row, fake, settings, calls=1)
    assert (await outbox(db))[0].external_id is None  # the mark withdrawn before the wait
    assert await deliver_async(row.id, settings) == "sent"  # RQ's retry
    assert len(fake.sent) == 1


async def test_a_kill_while_a_later_part_waits_out_flood_control_resumes_after_the_first(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """The first part went, the second met flood control: a kill in the wait lost the second
    (the retry took the row as delivered). Now the part sent is recorded before the wait."""
    row = await first_notice(gateway, db)
    await as_agent_reply(db, row, "A" * 3000 + "\n\n" + "B" * 3000)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 2", retry_after=2, after=1)
    await killed_in_a_wait(row, fake, settings, calls=2)
    assert await deliver_async(row.id, settings) == "sent"
    assert [s["text"][0] for s in fake.sent] == ["A", "B"]
    [stored] = [r for r in await outbox(db) if r.id == row.id]
    assert stored.external_id == str(fake.sent[0]["message_id"])


async def test_a_file_gone_from_the_store_fails_the_reply_before_its_text_goes(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings, tmp_path: Path
) -> None:
    """The text went, then the file could not be read (a worker host without the shared
    attachment directory): the row failed as if nothing had gone, and an admin's retry, once
    the file was back, sent the text again."""
    row = await first_notice(gateway, db)
    await as_agent_reply(db, row, "Here is your invoice.")
    gone = tmp_path / "gone.pdf"
    [reloaded] = [r for r in await outbox(db) if r.id == row.id]
    invoice = {"filename": "invoice.pdf", "content_type": "application/pdf", "size": 8}
    async with db.write() as session:
        await session.execute(
            update(TicketMessage)
            .where(TicketMessage.id == reloaded.message_id)
            .values(attachments=[{**invoice, "ref": str(gone)}])
        )
    result = await deliver_async(row.id, settings)
    assert result.startswith("failed: attachment 'invoice.pdf' unreadable")
    assert fake.sent == []
    await asyncio.to_thread(gone.write_bytes, b"%PDF-1.7")  # the operator restores the file
    assert await retry_row(db, row.id)
    assert await deliver_async(row.id, settings) == "sent"
    assert [s["method"] for s in fake.sent] == ["sendMessage", "sendDocument"]


async def test_a_replys_files_are_read_one_at_a_time_as_their_turn_comes(
    gateway: Gateway,
    db: Store,
    fake: FakeBotAPI,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checking a reply's files before its text goes read them all, and held them till the
    last was sent: ten files of 50 MB a send, and a job has eight sends under way."""
    row = await first_notice(gateway, db)
    await as_agent_reply(db, row, "Here are your files.")
    files = []
    for n in range(3):
        path = tmp_path / f"f{n}.pdf"
        path.write_bytes(b"%PDF-1.7 " + bytes([n]) * 1000)
        files.append(
            {"filename": path.name, "content_type": "application/pdf", "size": 1009}
            | {"ref": str(path)}
        )
    [reloaded] = [r for r in await outbox(db) if r.id == row.id]
    async with db.write() as session:
        await session.execute(
            update(TicketMessage)
            .where(TicketMessage.id == reloaded.message_id)
            .values(attachments=files)
        )
    sent_when_read: list[int] = []

    def counting(attachment: Attachment) -> bytes:
        sent_when_read.append(len(fake.sent))
        return read_stored(attachment)

    monkeypatch.setattr(sender, "read_stored", counting)
    assert await deliver_async(row.id, settings) == "sent"
    assert [s["method"] for s in fake.sent] == ["sendMessage"] + ["sendDocument"] * 3
    assert sent_when_read == [1, 2, 3]  # each once the parts before it went


@pytest.mark.parametrize(
    "said",
    [
        "Request Entity Too Large",  # the Bot API's description (JSON), on every Python
        # python-telegram-bot's own words when the body is not JSON (a proxy's page): the
        # status's phrase, which Python 3.13 renamed after RFC 9110.
        "Request Entity Too Large (413). Parsing the server response b'<html>' failed",
        "Content Too Large (413). Parsing the server response b'<html>' failed",
    ],
)
def test_a_413_is_known_as_final_whatever_python_calls_it(said: str) -> None:
    """The check compared with ``HTTPStatus(413).phrase``, which is "Content Too Large" from
    Python 3.13 on: there, the Bot API's "Request Entity Too Large" went unrecognised, and a
    file over the limit was uploaded again on every retry, as before the 413 was made final."""
    assert sender._too_large(NetworkError(said))
    assert not sender._too_large(NetworkError("httpx.ConnectError: All connection attempts failed"))
