"""A user who blocked the bot: reachable again once they send it anything (a command, an
edit, a button press, or /start from the app's "Restart")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import update

from gateway.store import Store
from gateway.store.tables import ContactIdentity
from tests.channels.telegram.conftest import (
    Gateway,
    identities,
    load_fixture,
    post_fixture,
    post_update,
    sent_again,
    tickets,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI


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
