"""One reader per mailbox: listeners in one or several processes share a mailbox through its
lease (an advisory lock on PostgreSQL, an ``flock`` beside the SQLite file), and another takes
over when the holder stops, dies, or loses its database connection."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import make_url

from channels.email.listener import MailboxListener
from channels.email.mount import LISTENERS
from channels.email.parse import ParsedMail, Rejected
from channels.email.process import MailProcessor, Outcome
from gateway.app import create_app
from gateway.appkeys import STORE
from gateway.backoff import Backoff
from gateway.leases import FileLease, Lease, NoLease, PgLease, lease_for, lock_key
from gateway.store import Store
from gateway.store.tables import Ticket, TicketMessage
from tests.channels.email.conftest import Dovecot, Mailroom, email_settings
from tests.channels.email.mailmaker import mail
from tests.channels.email.test_listener import count, cursor_at, eventually
from tests.factories import make_ingest

pytestmark = pytest.mark.slow

LOGIN = "imap-login: Info: Login: user=<support@example.test>"
LOGGED_OUT = "Disconnected: Logged out"
"""Dovecot's line for a session that ended with LOGOUT (a dropped socket says otherwise)."""

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Reader:
    """A listener with a processor of its own, which remembers what it delivered."""

    listener: MailboxListener
    delivered: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.listener.run())

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.listener.processor.close()


def reader(room: Mailroom, dovecot: Dovecot, **lease: float) -> Reader:
    processor = MailProcessor(room.settings, room.store, make_ingest(room.store, room.clock))
    settings = room.settings.email.model_copy(update={"imap_port": dovecot.port})
    listener = MailboxListener(
        settings,
        room.store,
        processor,
        backoff=Backoff(base=0.1, cap=0.5, jitter=0.1),
        lease_retry=lease.get("retry", 0.5),
        lease_check=lease.get("check", 0.5),
    )
    found = Reader(listener)
    deliver = processor.deliver

    async def counting(parsed: ParsedMail | Rejected, **lookup: Any) -> Outcome:
        outcome = await deliver(parsed, **lookup)
        found.delivered.append(parsed.external_id)
        return outcome

    processor.deliver = counting  # type: ignore[method-assign]
    return found


@asynccontextmanager
async def readers(*found: Reader) -> AsyncIterator[None]:
    for one in found:
        one.start()
    try:
        yield
    finally:
        for one in found:
            await one.stop()


async def holder_of(a: Reader, b: Reader) -> tuple[Reader, Reader]:
    """Wait until one of them reads the mailbox; (holder, the other)."""

    async def one_connected() -> bool:
        return a.listener.connected.is_set() or b.listener.connected.is_set()

    await eventually(one_connected, within=15)
    return (a, b) if a.listener.connected.is_set() else (b, a)


async def test_two_listeners_one_reader_each_mail_once(
    mailroom: Mailroom, dovecot: Dovecot
) -> None:
    # Seeded through the LDA, so that every login in Dovecot's log is a listener's.
    for n in range(3):
        await asyncio.to_thread(dovecot.lda, mail(f"c{n}@example.org", subject=f"Q{n}"))
    a, b = reader(mailroom, dovecot), reader(mailroom, dovecot)
    async with readers(a, b):
        holder, other = await holder_of(a, b)
        await eventually(lambda: cursor_at(mailroom, 3))
        await asyncio.sleep(1.5)  # three of the waiting one's retries
        assert holder.listener.holds_lease and not other.listener.holds_lease
        assert not other.listener.connected.is_set()
    assert dovecot.log.count(LOGIN) == 1  # the other never even connected
    assert len(holder.delivered) == 3 and other.delivered == []
    assert await count(mailroom.store, TicketMessage) == 3


async def test_cancelled_holder_hands_over_and_new_mail_flows(
    mailroom: Mailroom, dovecot: Dovecot
) -> None:
    a, b = reader(mailroom, dovecot), reader(mailroom, dovecot)
    async with readers(a, b):
        holder, other = await holder_of(a, b)
        await asyncio.to_thread(dovecot.lda, mail("first@example.org", message_id="<first@x>"))
        await eventually(lambda: cursor_at(mailroom, 1))
        assert holder.delivered == ["<first@x>"]

        await holder.stop()
        stopped = time.monotonic()
        await asyncio.wait_for(other.listener.connected.wait(), 5)
        # Within about one retry interval (0.5 s), plus a login.
        assert time.monotonic() - stopped < 3
        await asyncio.to_thread(dovecot.lda, mail("second@example.org", message_id="<second@x>"))
        await eventually(lambda: cursor_at(mailroom, 2))
    assert holder.delivered == ["<first@x>"] and other.delivered == ["<second@x>"]
    assert await count(mailroom.store, TicketMessage) == 2
    # The holder was idling when it was stopped: it ended IDLE and logged out properly.
    assert dovecot.log.count(LOGIN) == 2
    await clean_logouts(dovecot, 2)


async def clean_logouts(dovecot: Dovecot, expected: int) -> None:
    """Both sessions ended with LOGOUT (Dovecot may log it just after answering it)."""

    async def logged_out() -> bool:
        return dovecot.log.count(LOGGED_OUT) == expected

    await eventually(logged_out, within=3)


async def _lease_holder_pid(db_url: str, name: str) -> int | None:
    key = lock_key(name) & 0xFFFFFFFFFFFFFFFF  # pg_locks shows the key as two unsigned halves
    connection = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        pid: int | None = await connection.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = $1 AND objid = $2 AND objsubid = 1",
            key >> 32,
            key & 0xFFFFFFFF,
        )
        return pid
    finally:
        await connection.close()


async def _terminate(db_url: str, pid: int) -> None:
    connection = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        assert await connection.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await connection.close()


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_holder_whose_lease_connection_is_terminated_stops_and_the_other_takes_over(
    mailroom: Mailroom, dovecot: Dovecot, db_url: str
) -> None:
    # Checks every 30 s only: stopping at once must come from noticing the closed connection.
    a = reader(mailroom, dovecot, retry=0.5, check=30)
    b = reader(mailroom, dovecot, retry=0.5, check=30)
    async with readers(a, b):
        holder, other = await holder_of(a, b)
        await asyncio.to_thread(dovecot.lda, mail("first@example.org", message_id="<first@x>"))
        await eventually(lambda: cursor_at(mailroom, 1))
        pid = await _lease_holder_pid(db_url, holder.listener.key)
        assert pid is not None

        await _terminate(db_url, pid)
        terminated = time.monotonic()

        async def holder_stopped() -> bool:
            return not holder.listener.connected.is_set() and not holder.listener.holds_lease

        await eventually(holder_stopped, within=2)
        await asyncio.wait_for(other.listener.connected.wait(), 5)
        assert time.monotonic() - terminated < 3
        assert await _lease_holder_pid(db_url, holder.listener.key) not in (None, pid)
        await asyncio.to_thread(dovecot.lda, mail("second@example.org", message_id="<second@x>"))
        await eventually(lambda: cursor_at(mailroom, 2))
        await asyncio.sleep(1)  # the old holder keeps asking, and keeps being told no
        assert not holder.listener.connected.is_set()
    assert holder.delivered == ["<first@x>"] and other.delivered == ["<second@x>"]
    assert dovecot.log.count(LOGIN) == 2
    await clean_logouts(dovecot, 2)


_HOLD = """
import asyncio, sys
from sqlalchemy.engine import make_url
from gateway.leases import lease_for

async def main() -> None:
    lease = lease_for(make_url(sys.argv[1]), sys.argv[2], check_seconds=1)
    assert await lease.acquire()
    print("held", flush=True)
    await lease.lost()  # checks it every second, as a listener does while it reads
    print("lost", flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


@asynccontextmanager
async def released(*leases: Lease) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for lease in leases:
            await lease.release()


@asynccontextmanager
async def lease_in_another_process(db_url: str, name: str) -> AsyncIterator[Process]:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLD, db_url, name, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 20) == b"held\n"
        yield child
    finally:
        if child.returncode is None:
            child.kill()  # SIGKILL ends a stopped process too
            await child.wait()


async def test_lease_of_a_killed_process_passes_on(store: Store, db_url: str) -> None:
    name = "support@example.test/INBOX"
    async with lease_in_another_process(db_url, name) as child:
        mine = lease_for(store.url, name, check_seconds=1)
        other = lease_for(store.url, name)
        async with released(mine, other):
            assert not await mine.acquire()
            child.kill()  # SIGKILL: no cleanup of its own runs
            await child.wait()

            async def taken() -> bool:
                return await mine.acquire()

            await eventually(taken, within=5)
            assert mine.held
            assert not await other.acquire()  # still exclusive after the takeover
            await mine.release()
            assert await other.acquire()


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_lease_of_a_frozen_process_passes_on(store: Store, db_url: str) -> None:
    """A holder that stops answering (SIGSTOP here; a cut network looks the same to the server)
    loses its lock once its session has been idle for three checks, not when TCP gives up."""
    name = "support@example.test/INBOX"
    async with lease_in_another_process(db_url, name) as child:
        mine = lease_for(store.url, name, check_seconds=1)
        async with released(mine):
            await asyncio.sleep(3.5)  # longer than the idle limit: the holder's checks keep it
            assert not await mine.acquire()
            child.send_signal(signal.SIGSTOP)
            frozen = time.monotonic()

            async def taken() -> bool:
                return await mine.acquire()

            await eventually(taken, within=10)
            assert 1.5 < time.monotonic() - frozen < 8  # the 3 s idle limit, and its timer


async def test_lease_kind_follows_the_database(store: Store) -> None:
    lease = lease_for(store.url, "support@example.test/INBOX")
    if store.is_sqlite:
        assert isinstance(lease, FileLease)
        database = Path(store.url.database or "")
        assert lease.path.parent == database.parent and lease.path.name.startswith(database.name)
    else:
        assert isinstance(lease, PgLease)
    memory = make_url("sqlite+aiosqlite:///:memory:")
    assert isinstance(lease_for(memory, "x"), NoLease)


async def test_two_gateways_on_one_database_one_reads_and_says_so(
    db_url: str, redis_url: str, dovecot: Dovecot, aiohttp_client: Any
) -> None:
    """``serve`` twice against one database: the mail becomes one ticket, read by one of them,
    and ``/metrics`` of each tells which."""
    settings = email_settings(db_url, imap_port=dovecot.port)
    settings = settings.model_copy(update={"redis_url": redis_url, "outbox_relay": False})
    first = await aiohttp_client(create_app(settings))
    second = await aiohttp_client(create_app(settings))
    await asyncio.to_thread(dovecot.lda, mail("ann@example.org", subject="once"))
    app: web.Application = first.app

    async def one_ticket() -> bool:
        async with app[STORE].read() as session:
            return (await session.scalars(select(Ticket.subject))).all() == ["once"]

    await eventually(one_ticket)
    held = []
    for client in (first, second):
        [listener] = client.app[LISTENERS]
        metrics = await (await client.get("/metrics")).text()
        line = next(x for x in metrics.splitlines() if x.startswith("gateway_email_mailbox_lease"))
        held.append((listener.holds_lease, line.split()[-1]))
    assert sorted(held) == [(False, "0.0"), (True, "1.0")]
    assert dovecot.log.count(LOGIN) == 1
