"""The channel-state sweep: removes the ``channel_state`` rows whose use has passed.

Only the Telegram channel leaves rows that pile up (a failure count per update that failed,
a row per chat's last command, a stopped delivery's progress): what each is for and how long
it is kept is :mod:`channels.telegram.retention`'s. Email keeps one cursor per mailbox there,
for good. ``gateway cron`` runs it every six hours.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from channels.telegram.retention import sweep_state
from gateway.models import OutboxKind
from gateway.outbox import QUEUE_BY_KIND
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.types import utcnow

EVERY = timedelta(hours=6)
"""How often ``gateway cron`` runs the sweep (rows are kept two days: hours late is fine)."""
QUEUE = QUEUE_BY_KIND[OutboxKind.SURVEY]
"""The last queue workers take, as the attachment sweep's: housekeeping waits for deliveries."""


def state_sweep_job() -> str:
    """The RQ job: one sweep with the settings of the worker's environment."""
    settings = Settings()

    async def run() -> int:
        store = Store(settings.database_url)
        try:
            return await sweep_state(store, utcnow())
        finally:
            await store.close()

    return f"removed {asyncio.run(run())}"
