"""An update parked after failing on every delivery is seen by an admin, fed in again once the
cause is fixed, and dropped from the list: ``gateway inbound``, ``/metrics``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from channels.telegram import webhook
from channels.telegram.inbound import TelegramInbound
from gateway.appkeys import PIPELINE
from gateway.inbound_admin import parked_inputs
from gateway.inbound_replay import NotReplayed, replay
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import TicketMessage
from tests.channels.telegram.conftest import (
    Gateway,
    count,
    load_fixture,
    messages,
    post_update,
    tickets,
)
from tests.cli_runner import environment
from tests.cli_runner import gateway as run_gateway


def parked_metric(text: str) -> str:
    [line] = [
        x for x in text.splitlines() if x.startswith('gateway_inbound_parked{channel="telegram"}')
    ]
    return line.rsplit(" ", 1)[1]


async def cli(settings: Settings, tmp_path: Path, *args: str) -> tuple[int, str]:
    code, out, _ = await cli_run(settings, tmp_path, *args)
    return code, out


async def cli_run(settings: Settings, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    assert settings.telegram.token is not None and settings.telegram.base_url is not None
    env = environment(
        GATEWAY_DATABASE_URL=settings.database_url,
        GATEWAY_TELEGRAM__TOKEN=settings.telegram.token.get_secret_value(),
        GATEWAY_TELEGRAM__BASE_URL=settings.telegram.base_url,
    )
    done = await asyncio.to_thread(run_gateway, "inbound", *args, env=env, cwd=tmp_path)
    return done.returncode, done.stdout, done.stderr


async def park_failing(
    client: Any, update: dict[str, Any], monkeypatch: pytest.MonkeyPatch, error: str
) -> None:
    """Post ``update`` until it is parked, every try failing with ``error``."""
    monkeypatch.setattr(webhook, "MAX_ATTEMPTS", 2)
    real_handle = TelegramInbound.handle

    async def fails(self: TelegramInbound, update: Mapping[str, Any]) -> None:
        raise RuntimeError(error)

    monkeypatch.setattr(TelegramInbound, "handle", fails)
    assert [await post_update(client, update) for _ in range(2)] == [500, 200]
    monkeypatch.setattr(TelegramInbound, "handle", real_handle)


async def test_a_parked_update_is_listed_replayed_and_taken_off_the_list(
    gateway: Gateway,
    db: Store,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Parked, an update waited for a person nobody told: no command listed it, no metric
    counted it, and its bytes were only in the database; and feeding it in again meant posting
    it to the webhook with the secret header by hand."""
    poison = load_fixture("private_text")
    app, client = gateway
    await park_failing(client, poison, monkeypatch, "a bug this update meets\nsecond line")
    assert parked_metric(await (await client.get("/metrics")).text()) == "1.0"

    code, out = await cli(settings, tmp_path, "parked")
    assert code == 0
    [line] = out.splitlines()
    parked_id, channel, external_id, reason, attempts, _, error = line.split("\t")
    assert (channel, external_id, reason, attempts) == (
        "telegram",
        f"update:{poison['update_id']}",
        "failed",
        "2",
    )
    assert error == "RuntimeError: a bug this update meets"
    code, raw = await cli(settings, tmp_path, "raw", parked_id)
    assert code == 0 and json.loads(raw) == poison

    # The cause fixed: replayed by another process, as the running gateway would have handled it.
    code, _, said = await cli_run(settings, tmp_path, "replay", parked_id)
    assert (code, said.strip()) == (0, f"parked input {parked_id} replayed (telegram: handled)")
    [message] = await messages(db)
    assert message.text == poison["message"]["text"]
    assert message.routed_at is not None  # routed too: no knowledge base, so escalated
    assert [t.escalated_at is not None for t in await tickets(db)] == [True]
    assert await cli(settings, tmp_path, "parked") == (0, "")
    assert parked_metric(await (await client.get("/metrics")).text()) == "0.0"

    code, _, said = await cli_run(settings, tmp_path, "replay", parked_id)
    assert (code, said.strip()) == (1, f"error: no parked input {parked_id}")
    assert await post_update(client, json.loads(raw)) == 200  # Telegram sending it again
    await app[PIPELINE].drain()
    assert await count(db, TicketMessage) == 1


async def test_an_update_failing_again_stays_parked(
    gateway: Gateway,
    db: Store,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Replayed before its cause is fixed, the update is kept, and the error said; an error
    quoting a Bot API URL does not print the token."""
    _, client = gateway
    update = load_fixture("private_text")
    await park_failing(client, update, monkeypatch, "first")
    [parked] = await parked_inputs(db)
    assert settings.telegram.token is not None
    token = settings.telegram.token.get_secret_value()

    async def fails(self: TelegramInbound, update: Mapping[str, Any]) -> None:
        raise RuntimeError(f"POST https://api.telegram.org/bot{token}/getMe failed")

    monkeypatch.setattr(TelegramInbound, "handle", fails)
    with pytest.raises(NotReplayed) as refused:
        await replay(settings, db, parked.id)
    said = str(refused.value)
    assert token not in said
    assert said == (
        "the update failed again: RuntimeError: POST https://api.telegram.org/bot<token>/getMe"
        f" failed (parked input {parked.id} stays parked)"
    )
    assert [p.id for p in await parked_inputs(db)] == [parked.id]
    assert await count(db, TicketMessage) == 0


async def test_a_dropped_update_leaves_the_list(
    gateway: Gateway,
    db: Store,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, client = gateway
    await park_failing(client, load_fixture("private_text"), monkeypatch, "a bug")
    [parked] = await parked_inputs(db)
    assert (await cli(settings, tmp_path, "drop", str(parked.id)))[0] == 0
    assert await cli(settings, tmp_path, "parked") == (0, "")
    assert (await cli(settings, tmp_path, "drop", str(parked.id)))[0] == 1  # nothing left
    assert await count(db, TicketMessage) == 0


async def test_an_update_the_channel_refuses_stays_parked(
    gateway: Gateway,
    db: Store,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``handle`` refuses a group's message without raising: replayed, it was said to be
    handled and its bytes went, though nothing took it."""
    _, client = gateway
    await park_failing(client, load_fixture("group_message"), monkeypatch, "a bug")
    [parked] = await parked_inputs(db)
    with pytest.raises(NotReplayed, match=r"^the update is refused: group \(parked input"):
        await replay(settings, db, parked.id)
    assert [p.id for p in await parked_inputs(db)] == [parked.id]
