"""A user who blocks the bot: heard from a refused send (403) or Telegram's ``my_chat_member``,
their notices handed to email, and reachable again once they send the bot anything (a message,
a command, an edit, a button press, or /start from the app's "Restart")."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from gateway.appkeys import PIPELINE
from gateway.outbox_admin import HandedToEmail, failed_rows, retry_row
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import ContactIdentity, OutboxRow
from tests.channels.telegram.conftest import (
    Gateway,
    identities,
    load_fixture,
    outbox,
    post_fixture,
    post_update,
    sent_again,
    tickets,
)
from tests.channels.telegram.deliveries import add_identity, as_agent_reply, first_notice
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from workers.jobs import deliver_async


async def test_a_403_marks_the_identity_unreachable(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    row = await first_notice(gateway, db)
    fake.blocked.add(888)
    result = await deliver_async(row.id, settings)
    assert result.startswith("failed: the user blocked the bot")
    [identity] = await identities(db)
    assert identity.reachable is False
    failed = (await outbox(db))[0]
    assert failed.status == "failed"
    # The next notice has no reachable identity on Telegram: parked with that reason.
    later = (await outbox(db))[1]
    assert "no reachable identity" in await deliver_async(later.id, settings)
    assert fake.sent == []


async def test_blocking_the_bot_is_heard_at_once_and_unblocking_opens_the_way_again(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """Telegram says when a user blocks or unblocks the bot (``my_chat_member``): no send has
    to be refused first, and an agent's reply reaches them again before they write."""
    row = await first_notice(gateway, db)
    _, client = gateway
    fake.blocked.add(888)
    assert await post_fixture(client, "bot_blocked") == 200
    [identity] = await identities(db)
    assert identity.reachable is False
    assert "no reachable identity" in await deliver_async(row.id, settings)
    assert fake.calls_of("sendMessage") == []  # not even tried

    fake.blocked.clear()
    assert await post_fixture(client, "bot_unblocked") == 200
    [identity] = await identities(db)
    assert identity.reachable is True
    later = (await outbox(db))[1]
    await as_agent_reply(db, later, "您的订单已发货")
    assert await deliver_async(later.id, settings) == "sent"
    assert [s["text"] for s in fake.sent] == ["您的订单已发货"]


async def test_a_blocked_users_notices_fall_back_to_their_email(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """The notice that meets the block and every one after it: the later ones used to fail
    with no reachable identity, though the customer's email was known."""
    row = await first_notice(gateway, db)
    await add_identity(db, row, "email", "li@example.com")
    fake.blocked.add(888)
    first = await deliver_async(row.id, settings)
    assert first.startswith("failed: the user blocked the bot") and "handed to email" in first
    later = (await outbox(db))[1]
    assert "handed to email" in await deliver_async(later.id, settings)
    # Delivered again (a retry after a crash): settled, nothing owed twice.
    assert await deliver_async(later.id, settings) == "already failed"
    rows = await outbox(db)
    assert [(r.channel, r.status) for r in rows[:2]] == [("telegram", "failed")] * 2
    handed = rows[2:]
    assert [(r.channel, r.kind, r.status) for r in handed] == [("email", "notice", "pending")] * 2
    assert [r.template for r in handed] == [row.template, later.template]
    assert [r.payload["fallback_from"] for r in handed] == [row.id, later.id]
    assert fake.sent == []


async def test_retrying_a_notice_that_was_handed_to_email_does_not_owe_the_email_again(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings, tmp_path: Path
) -> None:
    """A notice handed to email was listed by ``outbox failed`` as a failure, and ``outbox
    retry`` took it: the email was owed a second time, or, once the user had unblocked the
    bot, the notice went on Telegram as well. It is not listed, and its retry is refused."""
    from tests.cli_runner import environment
    from tests.cli_runner import gateway as run_gateway

    row = await first_notice(gateway, db)
    await add_identity(db, row, "email", "li@example.com")
    fake.blocked.add(888)
    assert "handed to email" in await deliver_async(row.id, settings)
    [email] = [r for r in await outbox(db) if r.channel == "email"]
    fake.blocked.clear()  # the user unblocked meanwhile
    assert await failed_rows(db) == []
    with pytest.raises(HandedToEmail, match=f"handed to email \\(outbox {email.id}\\)"):
        await retry_row(db, row.id)
    env = environment(
        GATEWAY_DATABASE_URL=settings.database_url, GATEWAY_REDIS_URL=settings.redis_url
    )
    listed = await asyncio.to_thread(run_gateway, "outbox", "failed", env=env, cwd=tmp_path)
    assert (listed.returncode, listed.stdout) == (0, "")
    retried = await asyncio.to_thread(
        run_gateway, "outbox", "retry", str(row.id), env=env, cwd=tmp_path
    )
    assert retried.returncode == 1
    assert f"retry outbox {email.id}" in retried.stderr
    assert await deliver_async(row.id, settings) == "already failed"
    assert [r.id for r in await outbox(db) if r.channel == "email"] == [email.id]
    assert fake.sent == []


async def test_a_notice_handed_to_email_twice_owes_the_email_once(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """However a handed-over row came to be delivered again, meeting the block once more
    owed its notice by email a second time."""
    row = await first_notice(gateway, db)
    await add_identity(db, row, "email", "li@example.com")
    fake.blocked.add(888)
    await deliver_async(row.id, settings)
    [email] = [r for r in await outbox(db) if r.channel == "email"]
    async with db.write() as session:
        await session.execute(
            update(OutboxRow).where(OutboxRow.id == row.id).values(status="pending")
        )
    again = await deliver_async(row.id, settings)
    assert again.endswith(f"handed to email (outbox {email.id})")  # the same email row
    emails = [r for r in await outbox(db) if r.channel == "email"]
    assert [r.payload["fallback_from"] for r in emails] == [row.id]


async def test_a_user_who_unblocks_and_writes_is_answered_again(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """Writing proves the bot is no longer blocked. Only /start used to say so: a user whose
    app unblocks without it stayed unreachable, every later notice and reply failing."""
    row = await first_notice(gateway, db)
    fake.blocked.add(888)
    assert (await deliver_async(row.id, settings)).startswith("failed: the user blocked")
    fake.blocked.clear()
    app, client = gateway
    assert await post_update(client, sent_again("private_text")) == 200
    await app[PIPELINE].drain()
    [identity] = await identities(db)
    assert identity.reachable is True
    later = (await outbox(db))[1]
    assert await deliver_async(later.id, settings) == "sent"
    assert len(fake.sent) == 1


def status_command() -> dict[str, Any]:
    """The private text's sender asks ``/status``."""
    update = load_fixture("command_with_entities")
    update["message"]["chat"] = load_fixture("private_text")["message"]["chat"]
    update["message"]["from"] = load_fixture("private_text")["message"]["from"]
    update["message"]["text"] = "/status"
    update["message"]["entities"][0]["length"] = 7
    return update


@pytest.mark.parametrize(
    "what",
    [
        pytest.param(status_command, id="command"),
        pytest.param(lambda: load_fixture("edited_message"), id="edit"),
        pytest.param(lambda: load_fixture("callback_query"), id="button_press"),
    ],
)
async def test_whatever_a_blocked_user_sends_makes_them_reachable_again(
    gateway: Gateway, db: Store, what: Callable[[], dict[str, Any]]
) -> None:
    """Nobody can send a bot they block anything. Only messages (ingest) used to say so: a
    user whose first act after unblocking was /status, an edit or a button press stayed
    unreachable, and the notices and replies of their open ticket kept failing."""
    _, client = gateway
    assert await post_fixture(client, "private_text") == 200
    async with db.write() as session:
        await session.execute(update(ContactIdentity).values(reachable=False))
    assert await post_update(client, what()) == 200
    [identity] = await identities(db)
    assert identity.reachable is True


async def test_a_user_who_blocked_the_bot_is_reachable_again_after_restart(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    _, client = gateway
    assert await post_fixture(client, "command_with_entities") == 200
    async with db.write() as session:
        await session.execute(update(ContactIdentity).values(reachable=False))
    again = sent_again("command_with_entities")  # the app's "Restart" button sends /start
    assert await post_update(client, again) == 200
    [identity] = await identities(db)
    assert identity.reachable is True
    assert await tickets(db) == []
