"""Long polling (``GATEWAY_TELEGRAM__MODE=polling``), for a shop without a public URL.

``getUpdates`` returns every update from ``offset`` on; asking with a higher offset confirms
the ones before it (https://core.telegram.org/bots/api#getupdates). The offset lives in
``channel_state`` and moves past an update only after the update is committed, so a process
killed at any point resumes where its last commit left off: nothing lost, and what was committed
but not yet confirmed comes again and is deduplicated.

An update that fails for a reason of its own (a bug its content meets) is retried with backoff;
after ``MAX_ATTEMPTS`` it is parked (:mod:`channels.telegram.parked`) so one bad update cannot
stop the channel; one whose storing keeps hitting the database's statement timeout, after
:data:`channels.failures.STATEMENT_TIMEOUTS`. One that fails for a passing reason (Telegram's
file server or the database away, Telegram's flood control) is never parked: it is retried
until it is stored (after the wait a 429 asks for, at least), the offset waiting with it, as
Telegram redelivers a webhook update until it is answered 200.

Only one gateway process polls: the holder of the polling lease (:mod:`gateway.leases`); the
others wait and take over within ``LEASE_RETRY_SECONDS`` when it stops or dies. Telegram
serves one ``getUpdates`` at a time (a second one ends the first with 409 Conflict), and two
pollers could each carry out the same command before either saved its offset.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Callable
from datetime import datetime
from typing import Any

from telegram import Bot
from telegram.error import Conflict, NetworkError, RetryAfter, TimedOut
from telegram.warnings import PTBUserWarning

from channels.base import TransientChannelError
from channels.failures import Tally
from channels.telegram.bot import retry_seconds
from channels.telegram.inbound import TelegramInbound
from channels.telegram.parked import MAX_ATTEMPTS, classify, park
from channels.telegram.state import load_offset, save_offset
from gateway.backoff import Backoff
from gateway.leases import Lease, lease_for, run_leased
from gateway.store import Store
from gateway.store.types import utcnow
from gateway.tasks import running

log = logging.getLogger(__name__)

# ``do_api_request("getUpdates")`` is asked for on purpose (see ``Poller._get_updates``).
warnings.filterwarnings(
    "ignore", message="Please use 'Bot.getUpdates' instead", category=PTBUserWarning
)

LEASE_NAME = "telegram:getUpdates"
"""The polling lease's name (:mod:`gateway.leases`): one process polls at a time."""

LEASE_RETRY_SECONDS = 5.0
"""How often a process without the polling lease asks for it again."""


class Poller:
    """Feeds ``getUpdates`` into :class:`TelegramInbound`, one committed update at a time."""

    def __init__(
        self,
        bot: Bot,
        inbound: TelegramInbound,
        store: Store,
        *,
        timeout: int,
        allowed_updates: tuple[str, ...],
        clock: Callable[[], datetime] = utcnow,
        backoff: Backoff | None = None,
        lease: Lease | None = None,
        lease_retry: float | None = None,
    ) -> None:
        self.bot = bot
        self.inbound = inbound
        self.store = store
        self.timeout = timeout
        self.allowed_updates = list(allowed_updates)
        self.clock = clock
        self.backoff = backoff or Backoff(base=0.5, cap=30.0)
        self.lease = lease or lease_for(store.url, LEASE_NAME)
        self.lease_retry = LEASE_RETRY_SECONDS if lease_retry is None else lease_retry

    @property
    def holds_lease(self) -> bool:
        """True while this process holds the polling lease (it polls, or is about to)."""
        return self.lease.held

    async def run(self) -> None:
        """Take the polling lease, then poll until cancelled or the lease is lost; without
        it, ask again every ``lease_retry`` seconds (another process polls meanwhile). An
        update cut short by the loss has not moved the offset: the next holder gets it."""
        await run_leased(
            self.lease, self._poll_until_cancelled, retry=self.lease_retry, job="telegram-polling"
        )

    async def _poll_until_cancelled(self) -> None:
        """Poll; a failure (the database away, say) is logged and polling restarts."""
        while running():
            try:
                await self._poll()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("telegram polling failed, restarting")
                await asyncio.sleep(self.backoff.next())

    async def _poll(self) -> None:
        # getUpdates is refused (409 Conflict) while a webhook is set.
        await self._until_done(self.bot.delete_webhook)
        offset = await load_offset(self.store)
        while running():
            try:
                updates = await self._get_updates(offset)
            except TimedOut:
                continue
            except RetryAfter as exc:
                await self._flood_control(exc)
                continue
            except (NetworkError, Conflict) as exc:
                log.warning("getUpdates failed", extra={"error": type(exc).__name__})
                await asyncio.sleep(self.backoff.next())
                continue
            self.backoff.reset()
            for update in updates:
                await self._process(update)
                offset = int(update["update_id"]) + 1
                await save_offset(self.store, offset, self.clock())

    async def _get_updates(self, offset: int) -> list[dict[str, Any]]:
        """The updates from ``offset`` on, as Telegram's JSON. Not ``Bot.get_updates``: it
        parses the whole batch into ``Update`` objects, and one update it cannot parse (a
        string where an object belongs) failed every poll, holding back every later update of
        every chat. ``parse_update`` refuses that one update alone, as for the webhook."""
        api_kwargs: dict[str, Any] = {
            "timeout": self.timeout,
            "allowed_updates": self.allowed_updates,
        }
        if offset:
            api_kwargs["offset"] = offset
        updates: list[dict[str, Any]] = await self.bot.do_api_request(
            "getUpdates", api_kwargs=api_kwargs
        )
        return updates

    async def _process(self, update: dict[str, Any]) -> None:
        """Handle one update until it is committed, or park it after ``MAX_ATTEMPTS`` failures
        of its own or ``STATEMENT_TIMEOUTS`` statement timeouts (see the module's doc)."""
        backoff = Backoff(base=0.2, cap=30.0)
        tally = Tally()
        error: Exception
        while True:
            try:
                await self.inbound.handle(update)
                return
            except Exception as exc:
                error = exc
                tally = tally.add(classify(exc))
                if tally.spent(MAX_ATTEMPTS):
                    await park(
                        self.store,
                        update,
                        exc,
                        attempts=tally.attempts,
                        now=self.clock(),
                        timed_out=tally.timed_out(MAX_ATTEMPTS),
                    )
                    return
            log.warning(
                "telegram update failed, retrying",
                extra={"update_id": update.get("update_id"), "error": type(error).__name__},
            )
            await asyncio.sleep(max(backoff.next(), _asked_to_wait(error)))

    async def _until_done(self, call: Callable[[], Any]) -> None:
        while running():
            try:
                await call()
                return
            except NetworkError as exc:
                log.warning("Telegram unreachable", extra={"error": type(exc).__name__})
                await asyncio.sleep(self.backoff.next())
            except RetryAfter as exc:
                await self._flood_control(exc)

    async def _flood_control(self, exc: RetryAfter) -> None:
        """Wait as long as a 429 asks, at least: asking sooner only lengthens the ban."""
        wait = retry_seconds(exc)
        log.warning("Telegram flood control", extra={"retry_after": wait})
        await asyncio.sleep(max(self.backoff.next(), wait))


def _asked_to_wait(error: Exception) -> float:
    """The wait Telegram's flood control asked for, if that is what failed (else 0)."""
    if isinstance(error, RetryAfter):
        return retry_seconds(error)
    if isinstance(error, TransientChannelError) and error.retry_after is not None:
        return error.retry_after
    return 0.0
