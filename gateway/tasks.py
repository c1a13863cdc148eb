"""Long-running loops that stop when they are cancelled, even if a cancel gets swallowed.

On Python 3.11, a cancellation that lands while a library's own ``wait_for`` times out can be
swallowed (redis-py, aioimaplib), and a ``while True`` loop then runs forever and hangs shutdown.
``Task.cancelling()`` still counts the request, so loops ask :func:`running` instead.
"""

from __future__ import annotations

import asyncio


def running() -> bool:
    """False once the current task has been asked to cancel."""
    task = asyncio.current_task()
    return task is None or task.cancelling() == 0
