"""``MOUNTS[Channel.EMAIL]``: one background listener per configured mailbox.

Every gateway process mounts them; each listener reads its mailbox only while it holds the
mailbox's lease (:mod:`gateway.leases`), which ``gateway_email_mailbox_lease_held`` shows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from prometheus_client import Gauge

from channels.email.listener import MailboxListener
from channels.email.process import MailProcessor
from gateway.appkeys import METRICS, PIPELINE, STORE
from gateway.settings import Settings

LISTENERS = web.AppKey("email_listeners", list[MailboxListener])


def mount(app: web.Application, settings: Settings) -> None:
    """Add the email listeners to ``app``; they start after the core resources."""
    listeners: list[MailboxListener] = []
    app[LISTENERS] = listeners

    async def listen(app: web.Application) -> AsyncIterator[None]:
        store = app[STORE]
        processor = MailProcessor(settings, store, app[PIPELINE].on_message, metrics=app[METRICS])
        held = Gauge(
            "gateway_email_mailbox_lease_held",
            "1 while this process holds the mailbox's lease and reads it, else 0.",
            ["mailbox"],
            registry=app[METRICS].registry,
        )
        tasks = []
        for mailbox in settings.email.imap_mailboxes:
            listener = MailboxListener(settings.email, store, processor, mailbox=mailbox)
            listeners.append(listener)
            held.labels(mailbox=mailbox).set_function(_holds(listener))
            tasks.append(asyncio.create_task(listener.run(), name=f"imap-{mailbox}"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            processor.close()

    app.cleanup_ctx.append(listen)


def _holds(listener: MailboxListener) -> Callable[[], float]:
    return lambda: float(listener.holds_lease)
