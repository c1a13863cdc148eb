"""The IMAP listener against a real Dovecot: the corpus end to end, crash and restart, Dovecot
restarts, IDLE latency, and parking of mail that keeps failing."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from channels.email import listener as listener_module
from channels.email.cursor import load_cursor
from channels.email.imap import ImapSession
from channels.email.listener import MailboxListener
from gateway.backoff import Backoff
from gateway.store import Store
from gateway.store.tables import ParkedInbound, Ticket, TicketMessage
from tests.channels.email.conftest import Dovecot, Mailroom
from tests.channels.email.corpus import expected, mails, raw
from tests.channels.email.mailmaker import mail

pytestmark = pytest.mark.slow


async def count(store: Store, table: Any) -> int:
    async with store.read() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.05)


def make_listener(room: Mailroom, dovecot: Dovecot, **email: Any) -> MailboxListener:
    settings = room.settings.email.model_copy(update={"imap_port": dovecot.port, **email})
    return MailboxListener(
        settings, room.store, room.processor, backoff=Backoff(base=0.1, cap=0.5, jitter=0.1)
    )


@asynccontextmanager
async def running(listener: MailboxListener) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(listener.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def cursor_at(room: Mailroom, last: int) -> bool:
    cursor = await load_cursor(room.store, "support@example.test/INBOX")
    return cursor is not None and cursor.last_uid >= last


async def test_corpus_through_dovecot(
    mailroom_factory: Any, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fixtures name ticket numbers (subject tags, signed ids), which are handed out in
    # commit order; one mail per batch makes that the corpus order on every database.
    monkeypatch.setattr(listener_module, "FETCH_BATCH", 1)
    table = expected()
    room: Mailroom = mailroom_factory(attachment_max_bytes=table["attachment_max_bytes"])
    await dovecot.append([raw(m["file"]) for m in mails()])
    listener = make_listener(room, dovecot)
    async with running(listener):
        await eventually(lambda: cursor_at(room, len(mails())))
    assert await count(room.store, Ticket) == len(table["tickets"])
    stored = [m for m in mails() if m["outcome"] == "stored"]
    assert await count(room.store, TicketMessage) == len(stored)
    flags = await dovecot.flags()
    for uid, entry in enumerate(mails(), start=1):
        # Everything handled is \Seen; the one mail we could not read stays unread (and parked).
        assert ("\\Seen" in flags[uid]) is (entry["outcome"] != "rejected"), entry["file"]
    async with room.store.read() as session:
        parked = (await session.scalars(select(ParkedInbound))).all()
    assert [(p.reason, p.raw) for p in parked] == [
        ("no_sender", raw("no_from_header_rejected.eml"))
    ]
    # leak.png, one PDF (sent twice, stored once by content), the JPEG; not the oversize video.
    assert len(os.listdir(room.settings.email.attachment_dir)) == 3


async def test_killed_between_commit_and_seen_loses_and_doubles_nothing(
    mailroom: Mailroom, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    await dovecot.append([mail(f"c{n}@example.org", subject=f"Q{n}") for n in range(5)])

    class Killed(BaseException):
        """Stands for SIGKILL: nothing after the commit runs, no cleanup of ours either."""

    async def die(self: ImapSession, uids: list[int]) -> None:
        raise Killed

    monkeypatch.setattr(ImapSession, "mark_seen", die)
    first = asyncio.create_task(make_listener(mailroom, dovecot).run())
    with pytest.raises(Killed):
        await asyncio.wait_for(first, 20)
    assert await count(mailroom.store, TicketMessage) == 5  # committed ...
    assert all("\\Seen" not in f for f in (await dovecot.flags()).values())  # ... not acked
    monkeypatch.undo()

    async with running(make_listener(mailroom, dovecot)):
        await eventually(lambda: cursor_at(mailroom, 5))
    assert await count(mailroom.store, TicketMessage) == 5  # nothing doubled
    assert await count(mailroom.store, Ticket) == 5
    assert all("\\Seen" in f for f in (await dovecot.flags()).values())  # nothing lost


async def test_dovecot_restart_under_the_listener_misses_nothing(
    mailroom: Mailroom, dovecot: Dovecot
) -> None:
    listener = make_listener(mailroom, dovecot)
    async with running(listener):
        await asyncio.wait_for(listener.connected.wait(), 10)
        await asyncio.to_thread(dovecot.lda, mail("before@example.org"))
        await eventually(lambda: cursor_at(mailroom, 1))
        await asyncio.to_thread(dovecot.stop)
        # Mail that arrives while the IMAP server is down (an MTA writes the Maildir itself).
        new = dovecot.maildir / "new"
        path = new / f"{int(time.time())}.{uuid.uuid4().hex}.host"
        path.write_bytes(mail("during@example.org"))
        os.chown(path, 8, 8)
        await asyncio.to_thread(dovecot.start)
        await asyncio.to_thread(dovecot.lda, mail("after@example.org"))
        await eventually(lambda: cursor_at(mailroom, 3), within=30)
    async with mailroom.store.read() as session:
        senders = (await session.scalars(select(TicketMessage.channel_meta))).all()
    assert len(senders) == 3
    assert all("\\Seen" in f for f in (await dovecot.flags()).values())


async def test_idle_delivery_latency(mailroom: Mailroom, dovecot: Dovecot) -> None:
    listener = make_listener(mailroom, dovecot)
    latencies = []
    async with running(listener):
        await asyncio.wait_for(listener.connected.wait(), 10)
        for n in range(3):
            await eventually(lambda: _idle(listener))
            started = time.monotonic()
            await asyncio.to_thread(dovecot.lda, mail(f"idle{n}@example.org"))
            await eventually(lambda n=n: _stored(mailroom, n + 1), within=10)  # type: ignore[misc]
            latencies.append(time.monotonic() - started)
    # Only IDLE's push meets this: without it the next look at the mailbox is the IDLE refresh
    # (25 minutes) or the poll (60 s). A tighter bound would time the machine, not the push
    # (delivery runs dovecot-lda, a process, on a CI machine that may be busy).
    assert max(latencies) < 8.0, latencies


async def _idle(listener: MailboxListener) -> bool:
    return listener.drained > 0


async def _stored(room: Mailroom, n: int) -> bool:
    return await count(room.store, TicketMessage) >= n


async def test_failing_mail_is_retried_then_parked_and_the_rest_flows(
    mailroom: Mailroom, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison = mail("poison@example.org", message_id="<poison@example.org>")
    await dovecot.append([poison, mail("fine@example.org")])
    real = mailroom.processor.deliver
    tries = []

    async def flaky(parsed: Any, **lookup: Any) -> Any:
        if parsed.external_id == "<poison@example.org>":
            tries.append(1)
            raise RuntimeError("database said no")
        return await real(parsed, **lookup)

    monkeypatch.setattr(mailroom.processor, "deliver", flaky)
    async with running(make_listener(mailroom, dovecot, max_attempts=3)):
        await eventually(lambda: cursor_at(mailroom, 2))
    assert len(tries) == 3
    async with mailroom.store.read() as session:
        [parked] = (await session.scalars(select(ParkedInbound))).all()
    assert (parked.external_id, parked.reason, parked.attempts) == (
        "<poison@example.org>",
        "processing_failed",
        3,
    )
    assert parked.raw == poison and "database said no" in (parked.detail or "")
    assert await count(mailroom.store, TicketMessage) == 1
    flags = await dovecot.flags()
    assert "\\Seen" not in flags[1] and "\\Seen" in flags[2]  # kept unread, never deleted


async def test_a_mail_failing_for_a_passing_reason_is_not_parked(
    mailroom: Mailroom, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full attachment disk for half a minute said nothing about the mail, yet after
    ``max_attempts`` tries it was parked and never read again. Telegram never parks for a
    passing reason; now neither does email: the mail is tried until it is stored."""
    await dovecot.append([mail("disk@example.org", message_id="<disk@example.org>")])
    real = mailroom.processor.deliver
    tries = []

    async def disk_full_for_a_while(parsed: Any, **lookup: Any) -> Any:
        tries.append(1)
        if len(tries) <= 5:
            raise OSError(28, "No space left on device")
        return await real(parsed, **lookup)

    monkeypatch.setattr(mailroom.processor, "deliver", disk_full_for_a_while)
    async with running(make_listener(mailroom, dovecot, max_attempts=3)):
        await eventually(lambda: cursor_at(mailroom, 1), within=20)
    assert len(tries) == 6
    assert await count(mailroom.store, TicketMessage) == 1
    assert await count(mailroom.store, ParkedInbound) == 0
    assert "\\Seen" in (await dovecot.flags())[1]


class RecordedBackoff(Backoff):
    """A backoff that keeps the delays it gave."""

    def __init__(self) -> None:
        super().__init__(base=0.1, cap=0.8, jitter=0.0)
        self.given: list[float] = []

    def next(self) -> float:
        delay = super().next()
        self.given.append(delay)
        return delay


async def test_a_stored_mail_resets_the_wait_before_the_next_failure(
    mailroom: Mailroom, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait grew with one mail's failures and never shrank once it was stored: a later
    mail's first failure (a database blip) waited up to the cap, a minute in production."""
    await dovecot.append([mail("first@example.org", message_id="<first@example.org>")])
    real = mailroom.processor.deliver
    failing = {"<first@example.org>": 3, "<second@example.org>": 1}

    async def flaky(parsed: Any, **lookup: Any) -> Any:
        if failing.get(parsed.external_id, 0) > 0:
            failing[parsed.external_id] -= 1
            raise OSError(28, "No space left on device")
        return await real(parsed, **lookup)

    monkeypatch.setattr(mailroom.processor, "deliver", flaky)
    settings = mailroom.settings.email.model_copy(update={"imap_port": dovecot.port})
    backoff = RecordedBackoff()
    listener = MailboxListener(settings, mailroom.store, mailroom.processor, backoff=backoff)
    async with running(listener):
        await eventually(lambda: cursor_at(mailroom, 1))
        assert backoff.given == [0.1, 0.2, 0.4]
        await dovecot.append([mail("second@example.org", message_id="<second@example.org>")])
        await eventually(lambda: cursor_at(mailroom, 2))
    assert backoff.given == [0.1, 0.2, 0.4, 0.1]
    assert await count(mailroom.store, TicketMessage) == 2


def test_fixture_dir_is_world_traversable(dovecot_root: Path) -> None:
    assert dovecot_root.stat().st_mode & 0o005 == 0o005


async def test_mail_arriving_during_the_first_runs_searches_is_read(
    mailroom: Mailroom, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the first run searched UNSEEN, then ALL; a mail delivered between the two
    was counted as already done (the cursor started above it) and never read."""
    real = ImapSession.uids
    searches: list[str] = []

    async def uids(self: ImapSession, criteria: str) -> list[int]:
        found = await real(self, criteria)
        searches.append(criteria)
        if len(searches) == 1:  # between the first search and the next
            await dovecot.append([mail("between@example.org")])
            await self.noop()  # this session now knows the mail, as it would a moment later
        return found

    monkeypatch.setattr(ImapSession, "uids", uids)
    async with running(make_listener(mailroom, dovecot)):
        # The cursor, not the stored message: \Seen comes after the commit, the cursor after it.
        await eventually(lambda: cursor_at(mailroom, 1))
    assert await _stored(mailroom, 1)
    assert searches[0] in ("ALL", "UNSEEN")
    assert "\\Seen" in (await dovecot.flags())[1]


async def test_a_reused_message_id_does_not_swallow_the_second_mail(
    mailroom: Mailroom, dovecot: Dovecot
) -> None:
    """Regression: ingest dedupes on the Message-ID, so a second, different mail under an id
    already stored (clients that mint one id for everything, a sender copying another's id)
    was taken for a redelivery: acked \\Seen, the cursor moved past it, and nobody saw it."""
    reused = "<1@localhost>"
    first = mail("ann@example.org", subject="Printer jams", message_id=reused)
    second = mail("ann@example.org", subject="Invoice", text="Wrong VAT number", message_id=reused)
    other = mail("bob@example.org", subject="Hello", text="Refund please", message_id=reused)
    await dovecot.append([first, second, other])
    async with running(make_listener(mailroom, dovecot)):
        await eventually(lambda: cursor_at(mailroom, 3))
    async with mailroom.store.read() as session:
        texts = sorted((await session.scalars(select(TicketMessage.text))).all())
    assert texts == ["Refund please", "Where is my order?", "Wrong VAT number"]
    assert await count(mailroom.store, Ticket) == 3

    # Each of them again (a crash before the cursor was saved): nothing is stored twice.
    await dovecot.append([second, first, other])
    async with running(make_listener(mailroom, dovecot)):
        await eventually(lambda: cursor_at(mailroom, 6))
    assert await count(mailroom.store, TicketMessage) == 3


async def test_a_mail_missing_from_a_fetch_but_still_there_is_not_skipped(
    mailroom: Mailroom, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: any UID a FETCH answer lacked was taken for expunged and counted done, so
    the cursor moved past a mail the server still held, or the answer did not parse into
    (a server that sends a small body as a quoted string, not a literal): lost unread."""
    await dovecot.append([mail("first@example.org"), mail("second@example.org")])
    real = ImapSession.fetch
    short = [2]  # the next two fetches of UID 1 come back without it

    async def fetch(self: ImapSession, uids: list[int]) -> dict[int, bytes]:
        found = await real(self, uids)
        if 1 in found and short[0] > 0:
            short[0] -= 1
            del found[1]
        return found

    monkeypatch.setattr(ImapSession, "fetch", fetch)
    async with running(make_listener(mailroom, dovecot)):
        await eventually(lambda: cursor_at(mailroom, 2))
    assert short == [0]
    assert await count(mailroom.store, TicketMessage) == 2
    assert all("\\Seen" in f for f in (await dovecot.flags()).values())


async def test_a_mail_no_fetch_returns_is_parked_and_stays_unread(
    mailroom: Mailroom, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    await dovecot.append([mail("stuck@example.org"), mail("fine@example.org")])
    real = ImapSession.fetch

    async def fetch(self: ImapSession, uids: list[int]) -> dict[int, bytes]:
        found = await real(self, uids)
        found.pop(1, None)
        return found

    monkeypatch.setattr(ImapSession, "fetch", fetch)
    async with running(make_listener(mailroom, dovecot, max_attempts=2)):
        await eventually(lambda: cursor_at(mailroom, 2))
    async with mailroom.store.read() as session:
        [parked] = (await session.scalars(select(ParkedInbound))).all()
    assert (parked.external_id, parked.reason, parked.attempts) == (
        "support@example.test/INBOX/1",
        "fetch_failed",
        2,
    )
    flags = await dovecot.flags()
    assert "\\Seen" not in flags[1] and "\\Seen" in flags[2]


async def test_a_copy_whose_date_header_was_refolded_is_not_stored_twice(
    mailroom: Mailroom, dovecot: Dovecot
) -> None:
    """Regression: the reused-Message-ID digest hashed the Date header's raw text, so one mail
    whose copy a relay had re-folded or re-written (``+0000`` for ``GMT``, a ``(UTC)`` comment:
    RFC 5322 3.3, the same instant) looked like another mail and was stored a second time."""
    first = mail("ann@example.org", message_id="<same@client.example>")
    date = next(line for line in first.split(b"\r\n") if line.startswith(b"Date: "))
    day, _, rest = date.partition(b" 2026 ")
    refolded = first.replace(date, day + b" 2026\r\n " + rest.replace(b"+0000", b"GMT"))
    commented = first.replace(date, date + b" (UTC)")
    await dovecot.append([first, refolded, commented])
    async with running(make_listener(mailroom, dovecot)):
        await eventually(lambda: cursor_at(mailroom, 3))
    assert await count(mailroom.store, TicketMessage) == 1


async def test_two_failing_mails_under_one_message_id_are_both_parked_whole(
    mailroom: Mailroom, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a mail was parked under its Message-ID once, and a second, different mail
    under the same id (a client that mints one id for everything) only added its attempts to
    the first's row: its bytes were kept nowhere, the cursor moved past it, and the
    admin fed the first mail in again, never the second."""
    reused = "<poison@example.org>"
    first = mail("ann@example.org", subject="Printer jams", message_id=reused)
    second = mail("ann@example.org", subject="Invoice", text="Wrong VAT", message_id=reused)
    await dovecot.append([first, second])

    async def failing(parsed: Any, **lookup: Any) -> Any:
        raise RuntimeError("a bug their content meets")

    monkeypatch.setattr(mailroom.processor, "deliver", failing)
    async with running(make_listener(mailroom, dovecot, max_attempts=1)):
        await eventually(lambda: cursor_at(mailroom, 2))
    async with mailroom.store.read() as session:
        raws = (await session.scalars(select(ParkedInbound.raw))).all()
    assert sorted(raws) == sorted([first, second])
