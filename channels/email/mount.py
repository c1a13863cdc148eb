"""``MOUNTS[Channel.EMAIL]``: one background listener per configured mailbox."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

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
        tasks = []
        for mailbox in settings.email.imap_mailboxes:
            listener = MailboxListener(settings.email, store, processor, mailbox=mailbox)
            listeners.append(listener)
            tasks.append(asyncio.create_task(listener.run(), name=f"imap-{mailbox}"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app.cleanup_ctx.append(listen)
