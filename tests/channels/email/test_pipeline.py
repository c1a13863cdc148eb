"""The listener's pipeline against a real Dovecot: the next batch is fetched and parsed while the
current one commits, yet a failure mid-pipeline keeps the order and the at-least-once-then-dedupe
guarantee (nothing delivered past a failed mail; what committed before failing is a no-op again).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from channels.email import listener as listener_module
from channels.email.imap import ImapSession
from channels.email.listener import within
from channels.email.parse import ParsedMail, Rejected
from channels.email.process import Outcome
from gateway.store.tables import Ticket, TicketMessage
from tests.channels.email.conftest import Dovecot, Mailroom
from tests.channels.email.mailmaker import mail
from tests.channels.email.test_listener import count, cursor_at, eventually, make_listener, running

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fails", ["before_commit", "after_commit"])
async def test_failure_mid_pipeline_keeps_order_and_dedupes(
    mailroom: Mailroom, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    monkeypatch.setattr(listener_module, "FETCH_BATCH", 2)
    ids = [f"<p{n}@example.org>" for n in range(1, 7)]
    await dovecot.append(
        [mail(f"c{n}@example.org", subject=f"Q{n}", message_id=ids[n - 1]) for n in range(1, 7)]
    )
    fetches: list[list[int]] = []
    real_fetch = ImapSession.fetch

    async def fetch(self: ImapSession, uids: list[int]) -> dict[int, bytes]:
        fetches.append(uids)
        return await real_fetch(self, uids)

    monkeypatch.setattr(ImapSession, "fetch", fetch)
    real_deliver = mailroom.processor.deliver
    calls: list[tuple[str, str]] = []

    async def deliver(parsed: ParsedMail | Rejected, **lookup: Any) -> Outcome:
        first_try = parsed.external_id == ids[2] and not any(c[0] == ids[2] for c in calls)
        if first_try and fails == "before_commit":
            calls.append((parsed.external_id, "failed"))
            raise RuntimeError("database went away")
        outcome = await real_deliver(parsed, **lookup)
        calls.append((parsed.external_id, outcome.value))
        if first_try:
            raise RuntimeError("connection dropped after COMMIT")
        return outcome

    monkeypatch.setattr(mailroom.processor, "deliver", deliver)
    async with running(make_listener(mailroom, dovecot)):
        await eventually(lambda: cursor_at(mailroom, 6))

    # Batch [5, 6] was fetched ahead while [3, 4] was committing, then dropped when mail 3
    # failed; reading started again at mail 3.
    assert fetches == [[1, 2], [3, 4], [5, 6], [3, 4], [5, 6]]
    first = "failed" if fails == "before_commit" else "stored"
    again = "stored" if fails == "before_commit" else "duplicate"
    assert calls == [
        (ids[0], "stored"),
        (ids[1], "stored"),
        (ids[2], first),
        (ids[3], "stored"),  # another sender: its chain goes on
        (ids[2], again),
        (ids[3], "duplicate"),  # delivered twice, stored once
        (ids[4], "stored"),  # nothing past mail 3 before mail 3 was done
        (ids[5], "stored"),
    ]
    assert await count(mailroom.store, TicketMessage) == 6
    assert await count(mailroom.store, Ticket) == 6
    async with mailroom.store.read() as session:
        stored = (
            await session.scalars(select(TicketMessage.external_id).order_by(TicketMessage.id))
        ).all()
    # In mailbox order, but for mail 4 (another sender), which went ahead of the failed mail 3.
    assert stored == (ids if fails == "after_commit" else [*ids[:2], ids[3], ids[2], *ids[4:]])
    assert all("\\Seen" in f for f in (await dovecot.flags()).values())


async def test_stopping_mid_pipeline_acks_only_what_committed(
    mailroom: Mailroom, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while a batch commits and the next is being fetched: the fetched-ahead batch
    is neither delivered nor flagged, and a new listener resumes at the cursor."""
    monkeypatch.setattr(listener_module, "FETCH_BATCH", 2)
    await dovecot.append([mail(f"s{n}@example.org", subject=f"S{n}") for n in range(1, 7)])
    real_deliver = mailroom.processor.deliver
    blocked = asyncio.Event()
    release = asyncio.Event()

    async def deliver(parsed: ParsedMail | Rejected, **lookup: Any) -> Outcome:
        if isinstance(parsed, ParsedMail) and parsed.sender == "s3@example.org":
            blocked.set()
            await release.wait()  # cancelled here
        return await real_deliver(parsed, **lookup)

    monkeypatch.setattr(mailroom.processor, "deliver", deliver)
    async with running(make_listener(mailroom, dovecot)):
        await asyncio.wait_for(blocked.wait(), 20)
        await asyncio.sleep(0.3)  # batch [5, 6] is fetched ahead meanwhile
    flags = await dovecot.flags()
    assert ["\\Seen" in flags[uid] for uid in range(1, 7)] == [True, True] + [False] * 4
    assert await count(mailroom.store, TicketMessage) in (2, 3)  # mail 4 may have committed

    monkeypatch.setattr(mailroom.processor, "deliver", real_deliver)
    async with running(make_listener(mailroom, dovecot)):
        await eventually(lambda: cursor_at(mailroom, 6))
    assert await count(mailroom.store, TicketMessage) == 6
    assert all("\\Seen" in f for f in (await dovecot.flags()).values())


async def test_parser_process_is_used_and_stopped(mailroom: Mailroom, dovecot: Dovecot) -> None:
    await dovecot.append([mail("pool@example.org")])
    listener = make_listener(mailroom, dovecot)
    async with running(listener):
        await eventually(lambda: cursor_at(mailroom, 1))
        executor: Any = mailroom.processor.pool._executor
        assert executor is not None  # parsed in a worker process, not in the loop
        workers = list(executor._processes.values())
        assert workers and all(w.is_alive() for w in workers)
    mailroom.processor.close()

    async def stopped() -> bool:
        # Polled, not joined: the executor's own thread joins them too, and a join that loses
        # that race to reap the child returns while is_alive() still says True.
        return not any(worker.is_alive() for worker in workers)

    await eventually(stopped, within=10)


def test_within_keeps_a_batch_under_its_byte_budget() -> None:
    sizes = {1: 40, 2: 40, 3: 40, 4: 500, 5: 40}
    assert within([1, 2, 3, 4, 5], sizes, 100) == [1, 2]
    assert within([4, 5], sizes, 100) == [4]  # too big alone: comes alone
    assert within([2, 3], sizes, 100) == [2, 3]
    assert within([9, 1], sizes, 100) == [9, 1]  # 9 is gone: costs nothing


async def test_fetches_are_bounded_by_bytes(
    mailroom: Mailroom, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = [mail(f"b{n}@example.org", subject="S", text="short") for n in range(4)]
    big = mail("big@example.org", subject="B", text="x" * 20_000)
    assert len({len(m) for m in small}) == 1
    monkeypatch.setattr(listener_module, "FETCH_BYTES", 2 * len(small[0]) + 10)
    fetches: list[list[int]] = []
    real_fetch = ImapSession.fetch

    async def fetch(self: ImapSession, uids: list[int]) -> dict[int, bytes]:
        fetches.append(uids)
        return await real_fetch(self, uids)

    monkeypatch.setattr(ImapSession, "fetch", fetch)
    await dovecot.append([*small[:3], big, small[3]])
    async with running(make_listener(mailroom, dovecot)):
        await eventually(lambda: cursor_at(mailroom, 5))
    assert fetches == [[1, 2], [3], [4], [5]]
    assert await count(mailroom.store, TicketMessage) == 5


async def test_a_reply_in_the_same_batch_as_its_mail_joins_its_ticket(
    mailroom: Mailroom, dovecot: Dovecot
) -> None:
    """Senders' first mails are threaded in one lookup before the batch commits; a sender's
    next mail is looked up after the one before it committed, so it can answer it."""
    first = mail("same@example.org", subject="Help", message_id="<first@example.org>")
    other = mail("other@example.org", subject="Other", message_id="<other@example.org>")
    reply = mail(
        "same@example.org",
        subject="Re: Help",
        in_reply_to="<first@example.org>",
        references="<first@example.org>",
    )
    await dovecot.append([first, other, reply])
    async with running(make_listener(mailroom, dovecot)):
        await eventually(lambda: cursor_at(mailroom, 3))
    async with mailroom.store.read() as session:
        rows = (
            await session.execute(
                select(TicketMessage.external_id, TicketMessage.ticket_id).order_by(
                    TicketMessage.id
                )
            )
        ).all()
    by_id = dict(rows)
    assert len(rows) == 3
    assert by_id["<first@example.org>"] != by_id["<other@example.org>"]
    known = ("<first@example.org>", "<other@example.org>")
    replies = [ticket for external_id, ticket in rows if external_id not in known]
    assert replies == [by_id["<first@example.org>"]]


async def test_a_nul_in_a_mails_headers_does_not_fail_its_insert(mailroom: Mailroom) -> None:
    """PostgreSQL's text holds no NUL: one in the Message-ID or the From address failed the
    insert on every try, and the listener parked the customer's mail."""
    raw = (
        b"From: Ann <ann\x00x@example.com>\r\nTo: help@shop.example\r\nSubject: hi\x00\r\n"
        b"Message-ID: <ab\x00c@example.com>\r\n\r\nmy parcel is late\r\n"
    )
    assert await mailroom.processor.process(raw) is Outcome.STORED
    async with mailroom.store.read() as session:
        [(text, external_id)] = (
            await session.execute(select(TicketMessage.text, TicketMessage.external_id))
        ).all()
    assert text == "my parcel is late"
    assert external_id is not None and "\x00" not in external_id
