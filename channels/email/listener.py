"""The IMAP listener: one task per mailbox that turns new mail into ticket messages.

Per mailbox it keeps a cursor (UIDVALIDITY, last UID done) in ``channel_state``, so a restart
resumes exactly where it stopped (RFC 3501 2.3.1.1: UIDs are stable while UIDVALIDITY is).
Each mail is fetched with ``BODY.PEEK[]``, handed to the pipeline, and flagged ``\\Seen`` only
after the pipeline returned (committed): a crash in between makes the next run fetch it again,
and ingest's dedupe on the Message-ID turns that into a no-op (invariants 1 and 2). Mail is never
deleted or moved. A mail that keeps failing is retried with backoff and, after
``max_attempts`` failures of its own (or :data:`channels.failures.STATEMENT_TIMEOUTS` of the
database's statement timeout: then with the reason ``statement_timeout``, which the gateway
replays by itself, :mod:`gateway.replay_sweep`), parked with its raw bytes (``gateway inbound
parked``); one failing for a passing reason (:mod:`channels.failures`: the database or a disk
away) is tried until it is stored. New mail is awaited with IDLE (re-issued every
``imap_idle_seconds``, under RFC 2177's 29 minutes), or by polling when the server lacks IDLE.

Only the holder of the mailbox's lease (:mod:`gateway.leases`) reads it: a listener first
takes the lease, retrying every ``lease_retry`` seconds while another process holds it, and stops
reading (logging out cleanly) the moment the lease is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from channels.base import ChannelInputError
from channels.email.cursor import Cursor, load_cursor, park, save_cursor
from channels.email.imap import ImapSession
from channels.email.parse import ParsedMail, Rejected
from channels.email.parse_pool import Parsed
from channels.email.process import MailProcessor
from channels.failures import TIMED_OUT, Failure, Tally, classify
from gateway.backoff import Backoff
from gateway.leases import CHECK_SECONDS, Lease, lease_for, run_leased
from gateway.settings import EmailSettings
from gateway.store import Store
from gateway.store.types import utcnow
from gateway.tasks import running

log = logging.getLogger(__name__)

FETCH_BATCH = 200
"""Most mails fetched at once: ingest commits a batch's mails in groups, and bigger groups cost
less per mail (bench/email.py: gateway CPU per mail 3.1 ms at 50, 1.9 ms at 150, PostgreSQL)."""

FETCH_BYTES = 16 * 1024 * 1024
"""Most bytes fetched at once (by ``RFC822.SIZE``; a larger mail comes alone): with the batch
fetched ahead, the listener holds at most two batches."""

LEASE_RETRY_SECONDS = 5.0
"""How often a listener without the mailbox's lease asks for it again."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """One batch: the UIDs asked for (ascending), the bytes of those still there, parsed, and
    those the server no longer has (expunged meanwhile)."""

    uids: list[int]
    raws: dict[int, bytes]
    parsed: dict[int, Parsed]
    gone: frozenset[int] = frozenset()


def within(uids: list[int], sizes: dict[int, int], budget: int) -> list[int]:
    """The longest run of ``uids`` whose sizes fit ``budget``; at least the first."""
    total = 0
    for count, uid in enumerate(uids):
        total += sizes.get(uid, 0)  # no size: expunged meanwhile, the fetch will skip it
        if total > budget:
            return uids[: max(count, 1)]
    return uids


class MailboxListener:
    """Watches one mailbox; ``await listener.run()`` until cancelled."""

    def __init__(
        self,
        settings: EmailSettings,
        store: Store,
        processor: MailProcessor,
        *,
        mailbox: str = "INBOX",
        clock: Callable[[], datetime] = utcnow,
        backoff: Backoff | None = None,
        lease: Lease | None = None,
        lease_retry: float = LEASE_RETRY_SECONDS,
        lease_check: float = CHECK_SECONDS,
    ) -> None:
        self.settings = settings
        self.store = store
        self.processor = processor
        self.mailbox = mailbox
        self.clock = clock
        self.backoff = backoff or Backoff(base=1.0, cap=60.0, jitter=0.3)
        self.key = f"{settings.imap_user}/{mailbox}"
        # The lease is named like the cursor: one reader per cursor.
        self.lease = lease or lease_for(store.url, self.key, check_seconds=lease_check)
        self.lease_retry = lease_retry
        self.attempts: dict[int, Tally] = defaultdict(Tally)
        self.connected = asyncio.Event()
        """Set while logged in and selected (tests wait on it)."""
        self.drained = 0
        """How many drain passes ran (tests wait on it)."""

    @property
    def holds_lease(self) -> bool:
        """True while this listener holds the mailbox's lease (it reads, or is about to)."""
        return self.lease.held

    async def run(self) -> None:
        """Take the mailbox's lease, then read the mailbox until cancelled or the lease is lost;
        without the lease, ask for it again every ``lease_retry`` seconds."""
        await run_leased(
            self.lease,
            self._read_leased,
            retry=self.lease_retry,
            job=f"imap-{self.mailbox}",
            # Cancelling the reader logs out of IMAP; a cancel in the middle of a batch is
            # safe (\Seen comes after the commit; ingest dedupes what is fetched again).
            stopped=self.connected.clear,
        )

    async def _read_leased(self) -> None:
        self.processor.pool.warm()
        await self._read()

    async def _read(self) -> None:
        """Connect, catch up, wait for mail; reconnect with capped jittered backoff on errors."""
        while running():
            session = ImapSession(self.settings)
            try:
                await session.connect()
                await self._serve(session)
            except Exception as exc:
                # The server went away, refused us, or the database did: never give up on the
                # mailbox, come back later (mail waits safely in it, unacknowledged).
                delay = self.backoff.next()
                log.warning(
                    "email listener failed; reconnecting",
                    extra={"mailbox": self.mailbox, "error": repr(exc), "delay": round(delay, 2)},
                )
                self.connected.clear()
                await session.close()
                await asyncio.sleep(delay)
            except BaseException:
                self.connected.clear()
                await session.close()
                raise
            else:
                # Asked to stop, the cancel swallowed on the way (see gateway.tasks): still
                # end the session with a LOGOUT, not a dropped connection.
                self.connected.clear()
                await session.close()

    async def _serve(self, session: ImapSession) -> None:
        selected = await session.select(self.mailbox)
        cursor = await load_cursor(self.store, self.key)
        if cursor is not None and cursor.uidvalidity != selected.uidvalidity:
            # The mailbox was recreated: old UIDs mean nothing. Start over; dedupe on the
            # Message-ID keeps mail already stored from being stored twice.
            log.warning("UIDVALIDITY changed; rescanning", extra={"mailbox": self.mailbox})
            cursor = Cursor(selected.uidvalidity, 0)
        self.connected.set()
        self.backoff.reset()
        while running():
            cursor = await self._drain(session, cursor, selected.uidvalidity)
            self.drained += 1
            if session.has_idle:
                await session.idle(self.settings.imap_idle_seconds)
            else:
                await asyncio.sleep(self.settings.imap_poll_seconds)
                await session.noop()

    async def _drain(self, session: ImapSession, cursor: Cursor | None, uidvalidity: int) -> Cursor:
        """Process every mail after the cursor; returns the advanced cursor.

        Pipelined: while one batch is delivered (committed, flagged, the cursor saved), the next
        is fetched and parsed (in the parser process), so at most two batches are in memory.
        Nothing of a batch is delivered before the batch ahead of it is done; when a mail of a
        batch fails, the batch fetched ahead is dropped unused and reading starts again at the
        cursor (the failed mail), exactly as without the pipeline.
        """
        if cursor is None:
            # First run on this mailbox: start at the oldest unread mail, not its archive.
            # ALL before UNSEEN: a mail arriving between the two searches is then either unseen
            # (and read) or above everything ALL saw (and read); the other order skipped it.
            everything = await session.uids("ALL")
            unseen = await session.uids("UNSEEN")
            last = min(unseen) - 1 if unseen else max(everything, default=0)
            cursor = Cursor(uidvalidity, last)
            await save_cursor(self.store, self.key, cursor, self.clock())
        while running():
            ahead = asyncio.create_task(self._fetch(session, cursor.last_uid))
            try:
                while True:
                    batch = await ahead
                    if batch is None:
                        return cursor
                    ahead = asyncio.create_task(self._fetch(session, batch.uids[-1]))
                    done = await self._process_batch(session, batch)
                    if batch.uids[0] in done:
                        # Past the mail that failed: the next failure, another mail's or a
                        # passing one's, waits from the base delay again, not the grown one.
                        self.backoff.reset()
                    cursor = await self._advance(cursor, batch.uids, done)
                    if len(done) < len(batch.uids):
                        break
                # Something failed: what was fetched ahead is dropped (it has no side effects).
                await asyncio.gather(ahead, return_exceptions=True)
            finally:
                if not ahead.done():  # we are stopping, or the batch's delivery raised
                    ahead.cancel()
                    await asyncio.gather(ahead, return_exceptions=True)
            if batch.uids[0] not in done:
                # The oldest pending mail failed: wait before trying it again.
                await asyncio.sleep(self.backoff.next())
        raise asyncio.CancelledError  # asked to stop (a swallowed cancel: see gateway.tasks)

    async def _advance(self, cursor: Cursor, uids: list[int], done: set[int]) -> Cursor:
        """Move the cursor over the batch's leading run of done mail, and save it."""
        last = cursor.last_uid
        for uid in uids:
            if uid not in done:
                break
            last = uid
        if last == cursor.last_uid:
            return cursor
        cursor = Cursor(cursor.uidvalidity, last)
        await save_cursor(self.store, self.key, cursor, self.clock())
        return cursor

    async def _fetch(self, session: ImapSession, after: int) -> Fetched | None:
        """The next batch of mail above UID ``after``, fetched and parsed; ``None``: no more."""
        found = await session.uids(f"UID {after + 1}:*")
        # "n:*" always matches the last mail, even below n (RFC 3501 6.4.8).
        pending = [u for u in found if u > after]
        if not pending:
            return None
        uids = pending[:FETCH_BATCH]
        if len(uids) > 1:
            uids = within(uids, await session.sizes(uids), FETCH_BYTES)
        raws = await session.fetch(uids)
        missing = [uid for uid in uids if uid not in raws]
        gone: set[int] = set()
        if missing:
            # Expunged meanwhile, or an answer we could not read: only a search tells which.
            # A mail still there is not done (RFC 3501 6.4.8: UID SEARCH of a set of UIDs
            # names only those that exist).
            there = set(await session.uids("UID " + ",".join(map(str, missing))))
            gone = {uid for uid in missing if uid not in there}
        order = sorted(raws)
        parsed = await self.processor.parse_many([raws[uid] for uid in order])
        return Fetched(uids, raws, dict(zip(order, parsed, strict=True)), frozenset(gone))

    async def _process_batch(self, session: ImapSession, batch: Fetched) -> set[int]:
        """Deliver a fetched batch; the UIDs that are done (stored, dropped or parked)."""
        raws = batch.raws
        done: set[int] = set(batch.gone)
        for uid in batch.uids:
            if uid not in raws and uid not in done:
                # Still in the mailbox, yet not in the answer: tried again like a failure,
                # parked (without bytes: the mail stays in the mailbox, unread) at the last.
                tally = self.attempts[uid] = self.attempts[uid].add(Failure.OWN)
                log.warning("mail missing from fetch", extra={"uid": uid})
                if tally.spent(self.settings.max_attempts):
                    detail = "the server kept answering the fetch without it"
                    await self._park(uid, b"", "fetch_failed", detail, tally.attempts)
                    done.add(uid)
        parsed: dict[int, ParsedMail | Rejected] = {}
        for uid, item in sorted(batch.parsed.items()):
            if isinstance(item, ChannelInputError):
                # The sender's fault and the same on every try: park at once, leave it unread.
                self.processor.count(item.reason)
                await self._park(uid, raws[uid], item.reason, item.detail, attempts=1)
                done.add(uid)
            else:
                parsed[uid] = item
        # One sender's mails in order (a reply may thread onto the mail just before it);
        # different senders side by side, so ingest can commit them in one group.
        chains: dict[str, list[int]] = defaultdict(list)
        for uid in sorted(parsed):
            item = parsed[uid]
            chains[item.sender if isinstance(item, ParsedMail) else f"~{uid}"].append(uid)
        seen: list[int] = []
        refs = await self._first_refs([uids[0] for uids in chains.values()], parsed)

        async def run_chain(uids: list[int]) -> None:
            for uid in uids:
                try:
                    if uid in refs:
                        await self.processor.deliver(parsed[uid], ticket_ref=refs[uid])
                    else:
                        await self.processor.deliver(parsed[uid])
                except Exception as exc:  # retried; parked once its tally is spent
                    tally = self.attempts[uid] = self.attempts[uid].add(classify(exc))
                    log.warning(
                        "mail processing failed",
                        extra={"uid": uid, "attempt": tally.attempts, "error": repr(exc)},
                    )
                    if tally.spent(self.settings.max_attempts):
                        # Timed out alone: the sweep replays it (gateway.replay_sweep).
                        timed_out = tally.timed_out(self.settings.max_attempts)
                        reason = TIMED_OUT if timed_out else "processing_failed"
                        await self._park(uid, raws[uid], reason, repr(exc), tally.attempts)
                        done.add(uid)
                    continue
                self.attempts.pop(uid, None)
                seen.append(uid)
                done.add(uid)

        await asyncio.gather(*(run_chain(uids) for uids in chains.values()))
        # Committed: now, and only now, tell the mailbox (invariant 1).
        await session.mark_seen(sorted(seen))
        return done

    async def _first_refs(
        self, firsts: list[int], parsed: dict[int, ParsedMail | Rejected]
    ) -> dict[int, str | None]:
        """The ticket each sender's first mail in the batch answers, looked up in one session
        (the rest of a sender's mails are looked up after the one before them commits)."""
        uids = [uid for uid in firsts if isinstance(parsed[uid], ParsedMail)]
        mails = [item for uid in uids if isinstance(item := parsed[uid], ParsedMail)]
        try:
            found = await self.processor.find_tickets(mails)
        except Exception as exc:  # each mail looks itself up, and fails or retries alone
            log.warning("threading lookup failed", extra={"error": repr(exc)})
            return {}
        return dict(zip(uids, found, strict=True))

    async def _park(self, uid: int, raw: bytes, reason: str, detail: str, attempts: int) -> None:
        external_id = f"{self.key}/{uid}"
        try:
            parsed = self.processor.parse(raw)
            external_id = parsed.external_id
        except ChannelInputError:
            pass
        await park(
            self.store,
            external_id=external_id,
            reason=reason,
            detail=detail,
            raw=raw,
            attempts=attempts,
            now=self.clock(),
        )
        self.attempts.pop(uid, None)
        log.info("mail parked", extra={"uid": uid, "reason": reason})
