"""Inputs parked for statement timeouts come back by themselves once the database is well.

A statement timeout is most often the database slow for everyone a while (a vacuum, a lock held
long, a burst): every customer writing then may have their message parked
(:mod:`channels.failures`), and each one waited for an operator's ``gateway inbound replay ID``,
unseen until someone noticed. So ``gateway serve`` runs this sweep: every
``GATEWAY_PARKED_REPLAY_SECONDS`` (60 s) one process (it holds a lease, :mod:`gateway.leases`)
takes the inputs parked as :data:`channels.failures.TIMED_OUT` at least that long ago, oldest
first, :data:`BATCH` a pass; checks that the database answers a cheap query within
:data:`CHECK_SECONDS` (if not, the pass is skipped: a replay into a database still slow would
only time out again); and feeds each through its channel's own step on the running app's
pipeline and bot, as ``gateway inbound replay`` does (:func:`gateway.inbound_replay.feed`).

Stored, the input leaves the list (one stored since is a duplicate, which the dedupe makes
harmless). Failed, it stays, its ``auto_replays`` raised; after :data:`MAX_AUTO_REPLAYS` the
sweep leaves it for a person (``gateway inbound parked`` lists it, and the alert on
``gateway_inbound_parked`` fires as before). A failure saying the database is unwell again (a
statement timeout, a passing failure) ends the pass: the rest wait for the next. Input parked
for a fault of its own is never replayed by itself: it would fail the same way every time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from sqlalchemy import select, update
from telegram import Bot

from channels import failures
from channels.base import ChannelInputError
from channels.failures import Failure
from channels.telegram import parked as telegram_parked
from channels.telegram.inbound import TELEGRAM
from gateway.appkeys import METRICS, PIPELINE, STORE
from gateway.inbound_admin import drop_parked
from gateway.inbound_replay import NotReplayed, feed, parked_input
from gateway.leases import Lease, lease_for, run_leased
from gateway.metrics import Metrics
from gateway.models import Channel
from gateway.pipeline import Pipeline
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import ParkedInbound, TicketMessage
from gateway.store.types import utcnow
from gateway.tasks import running

log = logging.getLogger(__name__)

BATCH = 20
"""Inputs replayed at most in one pass: a backlog drains over a few minutes rather than in
one burst on a database just recovering."""

MAX_AUTO_REPLAYS = 3
"""Replays of one input, each a pass apart, before the sweep leaves it for a person: one that
times out on each is slow for its own content (a huge message), not for the database's."""

CHECK_SECONDS = 5.0
"""Deadline of the check that the database answers normally, besides its statement timeout."""

LEASE_NAME = "inbound-replay"


@dataclass(frozen=True, slots=True)
class Pass:
    """What one pass of the sweep did, by parked id."""

    replayed: tuple[int, ...] = ()
    failed: tuple[int, ...] = ()
    skipped: bool = False
    """The database did not answer normally: nothing was tried."""


class ReplaySweep:
    """Replays inputs parked for statement timeouts on ``pipeline`` (see the module's doc).

    ``bot``: the running Telegram channel's bot; without one, parked updates are left alone.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        pipeline: Pipeline,
        *,
        bot: Bot | None,
        metrics: Metrics,
        every: float,
        clock: Callable[[], datetime] = utcnow,
        lease: Lease | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.pipeline = pipeline
        self.bot = bot
        self.metrics = metrics
        self.every = every
        self.clock = clock
        self.lease = lease or lease_for(store.url, LEASE_NAME)
        self.check_seconds = CHECK_SECONDS

    async def run(self) -> None:
        """A pass every ``every`` seconds while this process holds the sweep's lease."""
        await run_leased(self.lease, self._passes, retry=self.every, job=LEASE_NAME)

    async def _passes(self) -> None:
        while running():
            await asyncio.sleep(self.every)
            try:
                await self.sweep()
            except Exception as exc:  # the database away mid-pass: the next pass tries again
                log.warning("parked-input sweep failed", extra={"error": type(exc).__name__})

    async def sweep(self) -> Pass:
        """One pass: replay the inputs due, if the database answers normally."""
        due = await self._due()
        if not due:
            return Pass()
        if not await self._answering():
            return Pass(skipped=True)
        replayed: list[int] = []
        failed: list[int] = []
        for parked_id, channel, seen in due:
            if not await self._claim(parked_id, seen):
                continue  # replayed or dropped meanwhile, by a person or another sweep
            try:
                _, raw = await parked_input(self.store, parked_id)
                outcome = await feed(
                    channel,
                    raw,
                    settings=self.settings,
                    store=self.store,
                    pipeline=self.pipeline,
                    bot=self.bot,
                )
            except NotReplayed as exc:
                failed.append(parked_id)
                failure = self._said(channel, exc)
                self.metrics.replayed.labels(channel=channel, outcome="failed").inc()
                # The error's type only: its text may quote the SQL's parameters (the message).
                cause = exc.__cause__ or exc
                log.warning(
                    "parked input replayed: failed again",
                    extra={
                        "parked_id": parked_id,
                        "channel": channel,
                        "outcome": "failed",
                        "error": type(cause).__name__,
                        "auto_replays": seen + 1,
                    },
                )
                if failure is not Failure.OWN:
                    break  # the database is unwell again: the rest wait for the next pass
                continue
            await drop_parked(self.store, parked_id)
            replayed.append(parked_id)
            self.metrics.replayed.labels(channel=channel, outcome="replayed").inc()
            log.info(
                "parked input replayed",
                extra={"parked_id": parked_id, "channel": channel, "outcome": outcome},
            )
        return Pass(tuple(replayed), tuple(failed))

    async def _due(self) -> list[tuple[int, str, int]]:
        """(id, channel, auto_replays) of the inputs to replay this pass, oldest first."""
        channels = [Channel.EMAIL.value]
        if self.bot is not None:
            channels.append(Channel.TELEGRAM.value)
        parked_before = self.clock() - timedelta(seconds=self.every)
        async with self.store.read() as session:
            rows = await session.execute(
                select(ParkedInbound.id, ParkedInbound.channel, ParkedInbound.auto_replays)
                .where(
                    ParkedInbound.reason == failures.TIMED_OUT,
                    ParkedInbound.auto_replays < MAX_AUTO_REPLAYS,
                    ParkedInbound.created_at <= parked_before,
                    ParkedInbound.channel.in_(channels),
                )
                .order_by(ParkedInbound.created_at, ParkedInbound.id)
                .limit(BATCH)
            )
            return [(row[0], row[1], row[2]) for row in rows.all()]

    async def _answering(self) -> bool:
        """Whether the database answers a cheap query on the table ingest writes to, in time.

        Not ``SELECT 1``: the slowness that parks everyone's input (a lock held on the
        messages, a vacuum of them) leaves that answering at once.
        """
        try:
            async with asyncio.timeout(self.check_seconds), self.store.read() as session:
                await session.execute(
                    select(TicketMessage.id).order_by(TicketMessage.id.desc()).limit(1)
                )
        except Exception as exc:
            log.warning(
                "database not answering normally: parked inputs wait for the next pass",
                extra={"error": type(exc).__name__},
            )
            return False
        return True

    async def _claim(self, parked_id: int, seen: int) -> bool:
        """Count the replay about to start, if nobody else counted one since: counted before
        it runs, an input that brings the process down cannot do so more than the cap allows,
        and two sweeps (a lease handed over mid-pass) never feed one input together."""
        async with self.store.write() as session:
            done = await session.execute(
                update(ParkedInbound)
                .where(ParkedInbound.id == parked_id, ParkedInbound.auto_replays == seen)
                .values(auto_replays=ParkedInbound.auto_replays + 1)
            )
            return bool(getattr(done, "rowcount", 0))

    @staticmethod
    def _said(channel: str, exc: NotReplayed) -> Failure:
        """What the replay's failure says: refused, or failing for its own reason, the input;
        a statement timeout or a passing failure, the database."""
        cause = exc.__cause__
        if not isinstance(cause, Exception) or isinstance(cause, ChannelInputError):
            return Failure.OWN
        if channel == Channel.TELEGRAM.value:
            return telegram_parked.classify(cause)
        return failures.classify(cause)


REPLAY_SWEEP = web.AppKey("replay_sweep", ReplaySweep)
"""The running gateway's sweep, set when the application starts."""


def replay_sweep(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    """The ``cleanup_ctx`` generator running the sweep; appended after the channels', so the
    Telegram bot is there to take, and the sweep stops before the channels close."""

    async def sweeping(app: web.Application) -> AsyncIterator[None]:
        pipeline = app[PIPELINE]
        telegram = app.get(TELEGRAM)
        sweep = ReplaySweep(
            settings,
            app[STORE],
            pipeline,
            bot=telegram.bot if telegram is not None else None,
            metrics=app[METRICS],
            every=settings.parked_replay_seconds,
            clock=pipeline.ingest.clock,
        )
        app[REPLAY_SWEEP] = sweep
        task = asyncio.create_task(sweep.run(), name="inbound-replay")
        try:
            yield
        finally:
            task.cancel()
            # Bounded, as the core's tasks are: a swallowed cancellation must not hang shutdown.
            _, stuck = await asyncio.wait({task}, timeout=10)
            if stuck:
                log.error("background tasks did not stop", extra={"tasks": [LEASE_NAME]})

    return sweeping
