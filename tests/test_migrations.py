"""Migrations build the schema from empty on both databases, and match the models."""

from __future__ import annotations

import asyncio

from sqlalchemy import inspect

from gateway.migrate import check, upgrade
from gateway.store import Store
from gateway.store.tables import Base


async def test_migrations_run_from_empty_and_alembic_check_finds_no_drift(db_url: str) -> None:
    # db_url is already migrated from its template; run them again to prove idempotence, then
    # compare the live schema with the models the way `alembic check` does.
    await asyncio.to_thread(upgrade, db_url)
    await asyncio.to_thread(check, db_url)
    store = Store(db_url)
    try:
        async with store.read_engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await store.close()
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


async def test_downgrade_to_base_and_up_again(db_url: str) -> None:
    await asyncio.to_thread(upgrade, db_url, "head")
    from alembic import command

    from gateway.migrate import alembic_config

    await asyncio.to_thread(command.downgrade, alembic_config(db_url), "base")
    await asyncio.to_thread(upgrade, db_url)
    await asyncio.to_thread(check, db_url)
