"""Which failures say something about the input itself, and which only about the moment.

A channel tries an input again after a failure; after a few failures of the input's own (a
bug its content meets) it parks it, whole, so it cannot hold back what comes after it. A
passing failure (the database or a disk away, a peer's network or flood control) says nothing
about the input: parked, the input would wait for a person over a blip of seconds, so it is
tried until it is stored. A statement timeout is either: the database slow for everyone a
while, or a query the input's own content makes slow (a huge message) that times out on
every try. It counts toward parking the input, with a larger allowance
(:data:`STATEMENT_TIMEOUTS`). Every channel keeps its inputs' failures in a :class:`Tally`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from channels.base import TransientChannelError


class Failure(StrEnum):
    """What a failure says about the input that met it."""

    PASSING = "passing"
    """Nothing: it is tried until it is stored."""
    OWN = "own"
    """A fault of its own: parked after the channel's ``max_attempts``."""
    STATEMENT_TIMEOUT = "statement_timeout"
    """Maybe its own, maybe the database's: parked after :data:`STATEMENT_TIMEOUTS`."""


PASSING: tuple[type[BaseException], ...] = (
    TransientChannelError,
    OperationalError,  # the database: connection lost, locked, shutting down
    InterfaceError,
    OSError,  # ConnectionError, TimeoutError, a full disk
    PoolTimeout,  # every pooled connection busy (a burst)
)
"""Failures that say nothing about the input: it is retried until it is stored."""

_PASSING_SQLSTATES = ("08", "40", "53", "57", "55P03")
"""PostgreSQL's passing failures, which asyncpg's errors reach us as, a plain ``DBAPIError``
(https://www.postgresql.org/docs/current/errcodes-appendix.html): classes 08 (connection),
40 (serialization failure, deadlock), 53 (insufficient resources), 57 (the server shutting
down, an admin ending the connection); 55P03, a lock not had within ``lock_timeout`` (a
migration holding the table). But not :data:`_STATEMENT_TIMEOUT`, though of class 57."""

_STATEMENT_TIMEOUT = "57014"
"""``query_canceled``: ``statement_timeout`` (or an admin's ``pg_cancel_backend``) ended a
query that ran too long."""

STATEMENT_TIMEOUTS = 10
"""Statement timeouts of one input before it is parked.

More than the few failures of an input's own (``max_attempts``, 5 by default), because a
timeout may be the database's, not the input's: slow for everyone a while (a vacuum, a burst,
a lock held longer than ``statement_timeout``). Each try waits out the timeout itself, and the
channels back off between tries, so ten take well over a minute on top of the timeouts:
polling's backoff (0.2 s doubling to 30 s) sums to 81 s over the nine waits, the email
listener's (1 s doubling to 60 s) to 4 minutes; the webhook's tries are Telegram's
redeliveries, at a pace it does not document. And not many more, because while an input is
tried again a polled bot's every chat, a webhook's chat, or a mailbox waits behind it."""

TIMED_OUT = "statement_timeout"
"""The ``reason`` an input parked for its statement timeouts (not for faults of its own) is kept
with in ``parked_inbound``. Most often the database was slow for everyone a while, so the
running gateway replays such inputs by itself once it answers normally again
(:mod:`gateway.replay_sweep`); an operator need not notice them first."""


def classify(exc: BaseException) -> Failure:
    """What ``exc``, failing an input, says about that input."""
    if isinstance(exc, PASSING):
        return Failure.PASSING
    if not isinstance(exc, DBAPIError):
        return Failure.OWN
    if exc.connection_invalidated:  # the server ended the connection: the pool opens another
        return Failure.PASSING
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if not isinstance(sqlstate, str):
        return Failure.OWN
    if sqlstate == _STATEMENT_TIMEOUT:
        return Failure.STATEMENT_TIMEOUT
    return Failure.PASSING if sqlstate.startswith(_PASSING_SQLSTATES) else Failure.OWN


@dataclass(frozen=True, slots=True)
class Tally:
    """One input's failures that count toward parking it (passing ones do not)."""

    own: int = 0
    statement_timeouts: int = 0

    def add(self, failure: Failure) -> Tally:
        """The tally after one more ``failure``."""
        if failure is Failure.OWN:
            return Tally(self.own + 1, self.statement_timeouts)
        if failure is Failure.STATEMENT_TIMEOUT:
            return Tally(self.own, self.statement_timeouts + 1)
        return self

    def spent(self, max_attempts: int) -> bool:
        """Whether the input is to be parked: ``max_attempts`` failures of its own, or
        :data:`STATEMENT_TIMEOUTS` statement timeouts."""
        return self.own >= max_attempts or self.statement_timeouts >= STATEMENT_TIMEOUTS

    def timed_out(self, max_attempts: int) -> bool:
        """Whether the input is parked for its statement timeouts alone: spent, with fewer than
        ``max_attempts`` failures of its own (parked as :data:`TIMED_OUT`)."""
        return self.statement_timeouts >= STATEMENT_TIMEOUTS and self.own < max_attempts

    @property
    def attempts(self) -> int:
        """The failed attempts counted (the number a parked input is kept with)."""
        return self.own + self.statement_timeouts
