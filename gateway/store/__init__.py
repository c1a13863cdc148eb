"""The durable store: SQLAlchemy 2 async over SQLite (default) or PostgreSQL."""

from gateway.store.engine import Store, on_postgres

__all__ = ["Store", "on_postgres"]
