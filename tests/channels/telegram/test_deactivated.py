"""A deleted Telegram account (403 "Forbidden: user is deactivated") told apart from a user who
blocked the bot: both are marked unreachable, but only a blocked user can come back, and the
reason an agent or admin reads was "the user blocked the bot" for both."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import insert

from gateway.appkeys import PIPELINE
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import ContactIdentity, OutboxRow
from tests.channels.telegram.conftest import (
    Gateway,
    identities,
    outbox,
    post_fixture,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from workers.jobs import deliver_async

DELETED = "failed: the user's Telegram account was deleted: Forbidden: user is deactivated"


async def first_notice(gateway: Gateway, db: Store) -> OutboxRow:
    """Li writes in: the acknowledgement notice is outbox row 1."""
    app, client = gateway
    assert await post_fixture(client, "private_text") == 200
    await app[PIPELINE].drain()
    return (await outbox(db))[0]


async def test_a_notice_to_a_deleted_account_fails_saying_the_account_was_deleted(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    row = await first_notice(gateway, db)
    fake.deactivated.add(888)
    assert await deliver_async(row.id, settings) == DELETED
    [identity] = await identities(db)
    assert identity.reachable is False
    failed = (await outbox(db))[0]
    assert failed.status == "failed"
    assert failed.last_error == DELETED.removeprefix("failed: ")
    assert "blocked" not in (failed.last_error or "")
    assert fake.sent == []


async def test_a_blocked_user_is_still_said_to_have_blocked_the_bot(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    row = await first_notice(gateway, db)
    fake.blocked.add(888)
    assert await deliver_async(row.id, settings) == (
        "failed: the user blocked the bot: Forbidden: bot was blocked by the user"
    )


async def test_a_deleted_accounts_notice_goes_to_their_email_with_the_reason(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    row = await first_notice(gateway, db)
    async with db.write() as session:
        await session.execute(
            insert(ContactIdentity).values(
                contact_id=row.contact_id,
                channel="email",
                external_user_id="li@example.com",
                reachable=True,
                created_at=row.created_at,
            )
        )
    fake.deactivated.add(888)
    result = await deliver_async(row.id, settings)
    assert result.startswith(DELETED) and "handed to email" in result
    assert [(r.channel, r.status) for r in await outbox(db)][-1] == ("email", "pending")


async def test_a_command_answer_refused_for_a_deleted_account_logs_why(
    gateway: Gateway, db: Store, fake: FakeBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """The answer to a command meets the deletion: the update is acknowledged, the identity
    marked unreachable, and the log says the account was deleted, not that it blocked us."""
    _, client = gateway
    fake.deactivated.add(777)
    with caplog.at_level(logging.INFO, logger="channels.telegram.commands"):
        assert await post_fixture(client, "command_with_entities") == 200  # /start
    [record] = [r for r in caplog.records if "command not answered" in r.getMessage()]
    assert record.getMessage() == "command not answered: the user's Telegram account was deleted"
    [identity] = await identities(db)
    assert identity.reachable is False
