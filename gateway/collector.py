"""The cyclic garbage collector, set for a long-running server (``gateway serve``).

CPython's collector runs a young-generation pass every 700 net allocations of container
objects, and now and then a full pass over every object the process holds: SQLAlchemy's
mappers and compiled statements, pydantic's schemas, the Telegram library, all alive for the
process's whole life and scanned again on each full pass. Behind the Telegram webhook
(``bench/telegram.py``, SQLite, two updates per chat) the collector took 0.5 s of every 6 s of
the server's CPU: a young pass every ~20 updates, and full passes of 0.12-0.3 s each.

After start-up, :func:`settle_after_startup` moves everything alive to the permanent
generation (``gc.freeze``: never scanned again) and makes young passes ten times rarer.
Reference counting still frees almost everything at once; the collector is only for cycles.
Not for tests or other embedders, which create and drop many applications: frozen objects are
never collected.
"""

from __future__ import annotations

import gc

from aiohttp import web

YOUNG_THRESHOLD = 7_000
"""Net container allocations between young-generation passes (CPython's default: 700)."""


async def settle_after_startup(app: web.Application) -> None:
    """An ``on_startup`` hook, appended after the application's own: what start-up built stays."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
