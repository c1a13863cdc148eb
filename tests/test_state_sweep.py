"""The channel-state sweep as ``gateway cron`` runs it: registered with the other periodic
jobs on a queue workers take, and run as an RQ job configured by ``GATEWAY_*``."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from channels.telegram.state import count_failure
from gateway.outbox import QUEUES
from gateway.store import Store
from gateway.store.types import utcnow
from tests.conftest import SECRET, make_settings
from workers.cron import cron_scheduler
from workers.state_sweep import state_sweep_job


def test_cron_runs_the_state_sweep_every_six_hours_on_a_queue_workers_take() -> None:
    scheduler = cron_scheduler(make_settings())
    [job] = [job for job in scheduler.get_jobs() if job.func is state_sweep_job]
    assert job.interval == 6 * 3600
    assert job.queue_name in QUEUES


async def test_the_cron_job_reads_its_settings_from_the_environment(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(db_url)
    try:
        await count_failure(store, 1, utcnow() - timedelta(days=3))  # failed, then succeeded
        await count_failure(store, 2, utcnow())  # may come again
    finally:
        await store.close()
    monkeypatch.setenv("GATEWAY_DATABASE_URL", db_url)
    monkeypatch.setenv("GATEWAY_SECRET_KEY", SECRET)
    assert await asyncio.to_thread(state_sweep_job) == "removed 1"
