"""The durable store: SQLAlchemy 2 async over SQLite (default) or PostgreSQL."""

from gateway.store.engine import Store

__all__ = ["Store"]
