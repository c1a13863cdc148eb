"""Real PostgreSQL failures met while a message is stored, for the tests of what is parked.

Each is caused on the test's own database (``db_url``) from an admin connection, so the
gateway meets it through its real driver path (asyncpg, then SQLAlchemy):

- a statement timeout (SQLSTATE 57014) for one input only: a trigger on ``ticket_messages``
  sleeps for a message whose text holds :data:`SLOW`, past the database's
  ``statement_timeout``, as a huge message would make a query slow;
- a lock not had within ``lock_timeout`` (55P03): the table locked by the admin connection;
- the server ending the connection (57P01, a restart or an admin's ``pg_terminate_backend``):
  a trigger terminating its own backend (asyncpg reports the connection closed, 08003);
- failures PostgreSQL raises on its own only under races a test cannot stage reliably (a
  deadlock, 40P01; a serialization failure, 40001; a connection failure, 08006; 57P01 itself):
  a trigger raising that SQLSTATE, a real server error on the real path, its cause staged.

The trigger-made faults hold while their context is entered, and are dropped on leaving it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import asyncpg

SLOW = "SLOW-TO-STORE"
"""A message whose text holds this takes longer to store than the statement timeout allows."""

STATEMENT_TIMEOUT = "300ms"
LOCK_TIMEOUT = "100ms"

Fault = Callable[[asyncpg.Connection], AbstractAsyncContextManager[None]]
"""Within it, storing a message fails (every message, or some)."""


@asynccontextmanager
async def admin(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to the test's database, whose sessions opened from now on time
    out as :data:`STATEMENT_TIMEOUT` and :data:`LOCK_TIMEOUT` say (open it before the gateway
    opens its own: the settings apply to new sessions only)."""
    connection = await asyncpg.connect("postgresql://" + db_url.split("://", 1)[1])
    try:
        name = await connection.fetchval("SELECT current_database()")
        await connection.execute(
            f"ALTER DATABASE {name} SET statement_timeout = '{STATEMENT_TIMEOUT}'"
        )
        await connection.execute(f"ALTER DATABASE {name} SET lock_timeout = '{LOCK_TIMEOUT}'")
        yield connection
    finally:
        await connection.close()


@asynccontextmanager
async def _on_insert(connection: asyncpg.Connection, body: str) -> AsyncIterator[None]:
    """A trigger running ``body`` before each message is stored, dropped on leaving."""
    await connection.execute(
        "CREATE FUNCTION storing_fails() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN {body} RETURN NEW; END $$"
    )
    await connection.execute(
        "CREATE TRIGGER storing_fails BEFORE INSERT ON ticket_messages"
        " FOR EACH ROW EXECUTE FUNCTION storing_fails()"
    )
    try:
        yield
    finally:
        await connection.execute("DROP TRIGGER storing_fails ON ticket_messages")
        await connection.execute("DROP FUNCTION storing_fails()")


def slow_for_its_content(connection: asyncpg.Connection) -> AbstractAsyncContextManager[None]:
    """Storing a message whose text holds :data:`SLOW` times out; any other is stored."""
    return _on_insert(
        connection, f"IF strpos(NEW.text, '{SLOW}') > 0 THEN PERFORM pg_sleep(30); END IF;"
    )


def raising(sqlstate: str) -> Fault:
    """Storing any message fails with ``sqlstate``, raised by PostgreSQL."""

    def fault(connection: asyncpg.Connection) -> AbstractAsyncContextManager[None]:
        return _on_insert(
            connection,
            f"RAISE EXCEPTION 'staged failure %', '{sqlstate}' USING ERRCODE = '{sqlstate}';",
        )

    return fault


def connection_ended(connection: asyncpg.Connection) -> AbstractAsyncContextManager[None]:
    """Storing any message ends the storing connection, as a server restart does (57P01)."""
    return _on_insert(connection, "PERFORM pg_terminate_backend(pg_backend_pid());")


@asynccontextmanager
async def table_locked(connection: asyncpg.Connection) -> AsyncIterator[None]:
    """``ticket_messages`` locked (a migration holding it): storing waits past ``lock_timeout``."""
    async with connection.transaction():
        await connection.execute("LOCK TABLE ticket_messages IN ACCESS EXCLUSIVE MODE")
        yield
