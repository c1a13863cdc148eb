"""Which failures say something about the input itself, and which only about the moment.

A channel tries an input again after a failure; after a few failures of the input's own (a
bug its content meets) it parks it, whole, so it cannot hold back what comes after it. A
passing failure (the database or a disk away, a peer's network or flood control) says nothing
about the input: parked, the input would wait for a person over a blip of seconds, so it is
tried until it is stored.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from channels.base import TransientChannelError

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
40 (serialization failure, deadlock), 53 (insufficient resources), 57 (statement_timeout,
the server shutting down); 55P03, a lock not had within ``lock_timeout`` (a migration
holding the table)."""


def passing(exc: BaseException) -> bool:
    """Whether ``exc`` failed the input for a passing reason (never a reason to park it)."""
    if isinstance(exc, PASSING):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:  # the server ended the connection: the pool opens another
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_PASSING_SQLSTATES)
