"""``MOUNTS[Channel.EMAIL]`` in the real application: mail in Dovecot becomes a ticket."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from channels.email.mount import LISTENERS
from gateway.app import create_app
from gateway.appkeys import STORE
from gateway.store.tables import Ticket
from tests.channels.email.conftest import Dovecot, email_settings
from tests.channels.email.mailmaker import mail
from tests.channels.email.test_listener import eventually

pytestmark = pytest.mark.slow


async def test_app_listens_to_every_configured_mailbox(
    db_url: str, redis_url: str, dovecot: Dovecot, aiohttp_client: Any
) -> None:
    settings = email_settings(db_url, imap_port=dovecot.port, imap_mailboxes=("INBOX", "Sales"))
    settings = settings.model_copy(update={"redis_url": redis_url, "outbox_relay": False})
    await dovecot.append([mail("ann@example.org", subject="inbox")])
    client = await aiohttp_client(create_app(settings))
    app: web.Application = client.app
    assert [listener.mailbox for listener in app[LISTENERS]] == ["INBOX", "Sales"]

    async def subjects() -> list[str]:
        async with app[STORE].read() as session:
            return sorted(s or "" for s in (await session.scalars(select(Ticket.subject))).all())

    async def has_inbox() -> bool:
        return await subjects() == ["inbox"]

    await eventually(has_inbox)
