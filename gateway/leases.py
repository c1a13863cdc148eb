"""Leases: exactly one gateway process does a given job at a time (reads a given mailbox,
polls Telegram's ``getUpdates``).

Every gateway process (``gateway up`` twice, ``serve`` next to ``serve``) starts a listener for
every configured mailbox, and in polling mode a Telegram poller. Dedupe keeps that correct, but
each process would fetch and parse every mail and hold its own IMAP connection; and Telegram
serves one ``getUpdates`` at a time, so two pollers cut each other off (409 Conflict) and may
each answer the same command. A lease makes one of them do the job; the others wait and take
over when it goes away.

The lease lives in the database the processes already share, never in Redis (mail keeps flowing
while Redis is down), and it is released by the operating system or the database server when its
holder dies, so there is no expiry to tune and no clock to trust:

* PostgreSQL: a session-level ``pg_try_advisory_lock`` on a dedicated connection, held for as
  long as the job runs. The server drops it when the process or the connection dies; the
  holder notices a lost connection at once (asyncpg's termination callback) or at the next
  periodic check (a ``SELECT 1`` with a deadline, for a silent network), and stops.
  The lease connection sets ``idle_session_timeout`` to three checks, so that the server also
  frees the lock of a holder that went silent (frozen, or cut off by the network) instead of
  keeping it until TCP gives up. Session locks need a real session: connect directly or through a
  session-pooling proxy, not a transaction-pooling one (PgBouncer ``pool_mode=transaction``).
* SQLite file: an exclusive non-blocking ``flock`` on a lock file beside the database file. The
  kernel drops it when the process dies. ``flock`` locks belong to an open file, not to a process,
  so two holders inside one process exclude each other too.
* SQLite ``:memory:``: one process by definition, so no lease (:class:`NoLease`).

A lease only saves work and conflicts: a short overlap at a takeover (the old holder finishing
a commit) is still harmless, because ingest dedupes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from gateway.tasks import running

log = logging.getLogger(__name__)

CHECK_SECONDS = 5.0
"""How often a held lease is checked; a PostgreSQL connection that is closed is noticed at once."""

CONNECT_SECONDS = 10.0
"""Deadline for opening the lease's PostgreSQL connection."""

APPLICATION_NAME = "gateway-lease"
"""What the lease connection is called in ``pg_stat_activity``."""


def lock_key(name: str) -> int:
    """The signed 64-bit advisory-lock key of lease ``name`` (namespaced, so it cannot meet the
    ingest's per-sender keys by design, only by a 2**-64 chance)."""
    digest = hashlib.blake2b(f"gateway.mailbox-lease:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Lease(ABC):
    """The exclusive right to do one job (read one mailbox, poll Telegram), shared between
    processes.

    Use: ``if await lease.acquire(): ...`` and, while working, ``await lease.lost()`` in a
    task beside the work: it returns when the lease is gone, and the work must stop. Call
    :meth:`release` when done (also after it was lost); it never raises.
    """

    name: str

    @property
    @abstractmethod
    def held(self) -> bool:
        """True between a successful :meth:`acquire` and the loss or release."""

    @abstractmethod
    async def acquire(self) -> bool:
        """Try once, without waiting: True if this holder now has the lease.

        Raises if the database cannot be asked (the caller retries later).
        """

    @abstractmethod
    async def lost(self) -> None:
        """Return once the held lease is lost (returns at once if it is not held)."""

    @abstractmethod
    async def release(self) -> None:
        """Give the lease up (a no-op if it is not held)."""


class NoLease(Lease):
    """Always granted, never lost: for a database only one process can see (``:memory:``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._held = False
        self._released = asyncio.Event()

    @property
    def held(self) -> bool:
        return self._held

    async def acquire(self) -> bool:
        self._held = True
        self._released.clear()
        return True

    async def lost(self) -> None:
        if self._held:
            await self._released.wait()

    async def release(self) -> None:
        self._held = False
        self._released.set()


class FileLease(Lease):
    """An exclusive ``flock`` on ``path``, which is created if missing and never deleted.

    Deleting a lock file would let a second process create and lock a new file under the same
    name while the first still holds the old one; so the file stays, and the periodic check
    treats a file replaced under the holder (another inode at ``path``) as a lost lease.
    """

    def __init__(self, name: str, path: Path, *, check_seconds: float = CHECK_SECONDS) -> None:
        self.name = name
        self.path = path
        self.check_seconds = check_seconds
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    async def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def _still_ours(self) -> bool:
        if self._fd is None:
            return False
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(self._fd)
        return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)

    async def lost(self) -> None:
        while running():
            if not self._still_ours():
                return
            await asyncio.sleep(self.check_seconds)

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the file drops the flock


class PgLease(Lease):
    """A session-level advisory lock on a connection of its own (not from the store's pool).

    The connection runs in autocommit, so it never sits "idle in transaction" for hours. While
    waiting for the lease it is kept open and the lock retried on it; if it breaks, the next
    :meth:`acquire` opens another.
    """

    def __init__(self, name: str, url: URL, *, check_seconds: float = CHECK_SECONDS) -> None:
        self.name = name
        self.key = lock_key(name)
        self.url = url
        self.check_seconds = check_seconds
        self._engine: AsyncEngine | None = None
        self._connection: AsyncConnection | None = None
        self._held = False
        self._closed = asyncio.Event()

    @property
    def held(self) -> bool:
        return self._held and not self._closed.is_set()

    async def _connect(self) -> AsyncConnection:
        if self._connection is not None and not self._closed.is_set():
            return self._connection
        await self._drop_connection()
        if self._engine is None:
            self._engine = create_async_engine(
                self.url,
                poolclass=NullPool,
                connect_args={
                    "server_settings": {"application_name": APPLICATION_NAME},
                    "timeout": CONNECT_SECONDS,  # asyncpg's own default is a minute
                },
            )
        connection = await self._engine.connect()
        try:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            raw = await connection.get_raw_connection()
            await self._limit_idleness(connection)
        except BaseException:
            await connection.close()
            raise
        self._closed = asyncio.Event()
        closed = self._closed
        driver: Any = raw.driver_connection
        # asyncpg calls this as soon as the socket closes (pg_terminate_backend, a restart,
        # a reset): the holder stops reading at once instead of at the next check.
        driver.add_termination_listener(lambda _connection: closed.set())
        self._connection = connection
        return connection

    async def _limit_idleness(self, connection: AsyncConnection) -> None:
        """Have the server end this session when it has been silent for three checks.

        A holder cut off by the network (or frozen) stops reading after a failed check, but the
        server would keep its lock until TCP gives up on the socket, which takes hours. With
        ``idle_session_timeout`` (PostgreSQL 14+) the lock is freed soon after the pings stop.
        """
        milliseconds = int(self.check_seconds * 3 * 1000)
        try:
            await connection.execute(text(f"SET idle_session_timeout = {milliseconds}"))
        except DBAPIError as exc:  # PostgreSQL 13 and older: the lease works, without this
            log.info("no idle_session_timeout on this server", extra={"error": repr(exc)})

    async def acquire(self) -> bool:
        if self.held:
            return True
        connection = await self._connect()
        try:
            got = await asyncio.wait_for(
                connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}),
                self.check_seconds,
            )
        except BaseException:
            await self._drop_connection()
            raise
        self._held = bool(got)
        return self._held

    async def _alive(self) -> bool:
        connection = self._connection
        if connection is None or self._closed.is_set():
            return False
        try:
            await asyncio.wait_for(connection.scalar(text("SELECT 1")), self.check_seconds)
        except Exception as exc:  # any failure: we can no longer prove we hold the lock
            log.warning("lease connection failed", extra={"lease": self.name, "error": repr(exc)})
            return False
        return True

    async def lost(self) -> None:
        while running() and self._held:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), self.check_seconds)
            if not await self._alive():
                self._held = False
                await self._drop_connection()
                return

    async def release(self) -> None:
        held, self._held = self._held, False
        if held and self._connection is not None and not self._closed.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._connection.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": self.key}
                    ),
                    self.check_seconds,
                )
        await self._drop_connection()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        self._closed.set()
        if connection is not None:
            # Closing a connection the server already dropped may raise; it is gone either way.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), self.check_seconds)


def lease_for(url: URL, name: str, *, check_seconds: float = CHECK_SECONDS) -> Lease:
    """The lease for job ``name`` (a mailbox's cursor key, say) that fits the database at
    ``url`` (the store's: ``store.url``)."""
    if url.get_backend_name() != "sqlite":
        return PgLease(name, url, check_seconds=check_seconds)
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return NoLease(name)
    digest = hashlib.blake2b(name.encode(), digest_size=6).hexdigest()
    path = Path(database)
    return FileLease(
        name, path.with_name(f"{path.name}.lease-{digest}"), check_seconds=check_seconds
    )


async def run_leased(
    lease: Lease,
    work: Callable[[], Coroutine[Any, Any, None]],
    *,
    retry: float,
    job: str,
    stopped: Callable[[], None] | None = None,
) -> None:
    """Take ``lease``, then run ``work`` until cancelled or the lease is lost; without the
    lease, ask for it again every ``retry`` seconds. ``work`` runs until cancelled (it
    retries its own failures); ``stopped`` is called each time it stops. ``job`` names the
    job in the log."""
    waiting_logged = False
    try:
        while running():
            taken = await _take(lease, job)
            if not taken:
                if taken is False and not waiting_logged:
                    log.info("another process holds the lease; waiting for it", extra={"job": job})
                    waiting_logged = True
                await asyncio.sleep(retry)
                continue
            waiting_logged = False
            log.info("lease taken", extra={"job": job})
            await _work_while_held(lease, work, job, stopped)
            if running():
                # Lost (our database connection broke): give the processes that were
                # waiting one round to take over before competing again.
                await asyncio.sleep(retry * 1.5)
    finally:
        if stopped is not None:
            stopped()
        await lease.release()


async def _take(lease: Lease, job: str) -> bool | None:
    """True: taken; False: another process holds it; None: the database did not answer."""
    try:
        return await lease.acquire()
    except Exception as exc:  # the database is down: nobody can do the job; ask again later
        log.warning("lease unavailable", extra={"job": job, "error": repr(exc)})
        return None


async def _work_while_held(
    lease: Lease,
    work: Callable[[], Coroutine[Any, Any, None]],
    job: str,
    stopped: Callable[[], None] | None,
) -> None:
    """Run ``work`` until the lease is lost; then stop it and release the lease."""
    worker = asyncio.create_task(work(), name=job)
    watcher = asyncio.create_task(lease.lost(), name=f"{job}-lease")
    try:
        await asyncio.wait({worker, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        worker.cancel()
        watcher.cancel()
        await asyncio.gather(worker, watcher, return_exceptions=True)
        if stopped is not None:
            stopped()
        await lease.release()
    if worker.done() and not worker.cancelled():
        error = worker.exception()
        if error is not None:
            raise error  # not an Exception (those the work retries): e.g. a SystemExit
    if watcher.done() and not watcher.cancelled():
        log.warning("lease lost; stopped", extra={"job": job})
