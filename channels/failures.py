"""Which failures say something about the input itself, and which only about the moment.

A channel tries an input again after a failure; after a few failures of the input's own (a
bug its content meets) it parks it, whole, so it cannot hold back what comes after it. A
passing failure (the database or a disk away, a peer's network or flood control) says nothing
about the input: parked, the input would wait for a person over a blip of seconds, so it is
tried until it is stored.
"""

from __future__ import annotations

from sqlalchemy.exc import InterfaceError, OperationalError

from channels.base import TransientChannelError

PASSING: tuple[type[BaseException], ...] = (
    TransientChannelError,
    OperationalError,  # the database: connection lost, locked, shutting down
    InterfaceError,
    OSError,  # ConnectionError, TimeoutError, a full disk
)
"""Failures that say nothing about the input: it is retried until it is stored."""


def passing(exc: BaseException) -> bool:
    """Whether ``exc`` failed the input for a passing reason (never a reason to park it)."""
    return isinstance(exc, PASSING)
