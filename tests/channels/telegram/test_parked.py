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
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import TicketMessage
from tests.channels.telegram.conftest import Gateway, count, load_fixture, post_update
from tests.cli_runner import environment
from tests.cli_runner import gateway as run_gateway


def parked_metric(text: str) -> str:
    [line] = [
        x for x in text.splitlines() if x.startswith('gateway_inbound_parked{channel="telegram"}')
    ]
    return line.rsplit(" ", 1)[1]


async def cli(settings: Settings, tmp_path: Path, *args: str) -> tuple[int, str]:
    env = environment(GATEWAY_DATABASE_URL=settings.database_url)
    done = await asyncio.to_thread(run_gateway, "inbound", *args, env=env, cwd=tmp_path)
    return done.returncode, done.stdout


async def test_a_parked_update_is_listed_fed_in_again_and_dropped(
    gateway: Gateway,
    db: Store,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Parked, an update waited for a person nobody told: no command listed it, no metric
    counted it, and its bytes were only in the database."""
    monkeypatch.setattr(webhook, "MAX_ATTEMPTS", 2)
    real_handle = TelegramInbound.handle
    poison = load_fixture("private_text")

    async def fails(self: TelegramInbound, update: Mapping[str, Any]) -> None:
        raise RuntimeError("a bug this update meets\nsecond line")

    monkeypatch.setattr(TelegramInbound, "handle", fails)
    app, client = gateway
    assert [await post_update(client, poison) for _ in range(2)] == [500, 200]
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

    monkeypatch.setattr(TelegramInbound, "handle", real_handle)  # the cause fixed
    assert await post_update(client, json.loads(raw)) == 200  # fed in again, as an admin would
    await app[PIPELINE].drain()
    assert await count(db, TicketMessage) == 1
    assert await post_update(client, json.loads(raw)) == 200  # twice: still one message
    assert await count(db, TicketMessage) == 1

    assert (await cli(settings, tmp_path, "drop", parked_id))[0] == 0
    assert await cli(settings, tmp_path, "parked") == (0, "")
    assert parked_metric(await (await client.get("/metrics")).text()) == "0.0"
    assert (await cli(settings, tmp_path, "drop", parked_id))[0] == 1  # nothing left to drop
