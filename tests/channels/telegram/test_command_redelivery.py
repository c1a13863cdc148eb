"""A command is carried out and answered once: redelivered updates, update ids numbered
afresh, and answers Telegram refuses (400, 403) are not retried."""

from __future__ import annotations

import logging

import pytest

from gateway.store import Store
from tests.channels.telegram.conftest import Gateway, identities, post_update
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.channels.telegram.private_chat import say, text_from


async def test_a_command_delivered_again_is_answered_once(
    gateway: Gateway, fake: FakeBotAPI
) -> None:
    """Telegram delivers an update again when its 200 was lost (the gateway stopped after the
    answer went): the command is not carried out and answered twice. One whose answer failed
    is answered when it comes again, and the chat's next command as usual."""
    _, client = gateway
    status = text_from(777, "/status")
    assert await post_update(client, status) == 200
    assert await post_update(client, status) == 200
    assert len(fake.sent) == 1

    failing = text_from(777, "/status")
    fake.fail_next("sendMessage", 502, "Bad Gateway")
    assert await post_update(client, failing) != 200  # Telegram will deliver it again
    assert len(fake.sent) == 1
    assert await post_update(client, failing) == 200
    assert len(fake.sent) == 2

    await say(client, 777, "/status")
    assert len(fake.sent) == 3


async def test_commands_are_answered_after_telegram_numbers_updates_afresh(
    gateway: Gateway, fake: FakeBotAPI
) -> None:
    """After a week without updates Telegram numbers the next from a random id, maybe lower:
    a chat's commands were taken for answered while their ids stayed below the recorded one."""
    _, client = gateway
    before = text_from(777, "/start")
    before["update_id"] = 900_000
    assert await post_update(client, before) == 200
    after = text_from(777, "/status")
    after["update_id"] = 12_345
    assert await post_update(client, after) == 200
    assert await post_update(client, after) == 200  # delivered again: answered once
    assert [s["text"] for s in fake.sent][1:] == ["You have no open tickets."]


async def test_a_command_whose_answer_telegram_refuses_is_not_retried(
    gateway: Gateway, fake: FakeBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """A 400 is final: the same answer would be refused on every redelivery while the chat's
    next updates wait behind it. The update is acknowledged, the refusal logged, the command
    not run again; the chat's next command is answered."""
    _, client = gateway
    status = text_from(779, "/status")
    fake.fail_next("sendMessage", 400, "Bad Request: chat not found")
    with caplog.at_level(logging.WARNING, logger="channels.telegram.commands"):
        assert await post_update(client, status) == 200
    [record] = [r for r in caplog.records if "refused the answer" in r.getMessage()]
    assert record.error == "Chat not found"  # type: ignore[attr-defined]
    assert await post_update(client, status) == 200  # delivered again: already handled
    assert len(fake.calls_of("sendMessage")) == 1
    await say(client, 779, "/status")
    assert len(fake.sent) == 1


async def test_a_command_from_a_user_who_then_blocked_the_bot_is_not_retried(
    gateway: Gateway, db: Store, fake: FakeBotAPI
) -> None:
    """The answer is refused with 403: the update is acknowledged (a redelivery would be
    refused the same way), the identity marked unreachable, and the command not run again."""
    _, client = gateway
    await say(client, 778, "/start")
    fake.blocked.add(778)
    status = text_from(778, "/status")
    assert await post_update(client, status) == 200
    [identity] = await identities(db)
    assert identity.reachable is False
    assert await post_update(client, status) == 200  # delivered again: already handled
    assert [s["chat_id"] for s in fake.sent] == [778]  # the welcome only
    fake.blocked.discard(778)
    await say(client, 778, "/start")  # the app's "Restart": reachable again
    [identity] = await identities(db)
    assert identity.reachable is True
