"""The store's PostgreSQL pool survives the server ending its sessions."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import func, select, text

from gateway.store import Store
from gateway.store.tables import TicketMessage
from tests.conftest import PG_ADMIN
from tests.factories import inbound, make_ingest

pytestmark = pytest.mark.postgres


async def _end_the_pools_sessions(store: Store, *, settle: float = 0.2) -> int:
    """``pg_terminate_backend`` every session of the store's database but the caller's.

    ``settle``: how long to let the event loop read each socket's EOF (0: the next statement
    may find its connection dead only when it is sent).
    """
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        ended = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            store.url.database,
        )
    finally:
        await admin.close()
    await asyncio.sleep(settle)
    return int(ended)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_pooled_connection_the_server_ended_is_replaced_before_use(store: Store) -> None:
    # Several pooled connections, all idle in the pool afterwards.
    async def hold() -> None:
        async with store.read() as session:
            await session.execute(text("SELECT pg_sleep(0.05)"))

    await asyncio.gather(*(hold() for _ in range(3)))
    assert await _end_the_pools_sessions(store) >= 3

    # Without a check at checkout the first statement on a dead connection would fail.
    for _ in range(3):
        async with store.read() as session:
            assert (await session.execute(text("SELECT 1"))).scalar() == 1


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("settle", [0.0, 0.2])
async def test_ingest_stores_a_message_after_the_server_ended_the_pools_sessions(
    store: Store, settle: float
) -> None:
    ingest = make_ingest(store)
    await ingest(inbound(external_user_id="alice", thread_key="alice"))
    await _end_the_pools_sessions(store, settle=settle)

    # One message, so no batch fallback retries it alone: the checkout check or ingest's
    # retry of an invalidated connection must.
    result = await ingest(inbound(external_user_id="bob", thread_key="bob"))

    assert not result.duplicate
    async with store.read() as session:
        assert await session.scalar(select(func.count()).select_from(TicketMessage)) == 2
