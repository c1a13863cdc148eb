"""Alembic environment: runs migrations over the gateway's async engine.

The URL is ``sqlalchemy.url`` from the Alembic config when set (``gateway migrate`` sets it from
the settings), else ``GATEWAY_DATABASE_URL``, else the SQLite default.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from gateway.store import Store
from gateway.store.tables import Base

config = context.config
target_metadata = Base.metadata
DEFAULT_URL = "sqlite+aiosqlite:///var/gateway.db"


def _url() -> str:
    return (
        config.get_main_option("sqlalchemy.url")
        or os.environ.get("GATEWAY_DATABASE_URL")
        or DEFAULT_URL
    )


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    store = Store(_url())
    try:
        async with store.write_engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await store.close()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
