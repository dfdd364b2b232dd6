"""Storage engines behind one contract (:mod:`cityos.hub.store.base`)."""

from __future__ import annotations

from cityos.hub.store.base import Store


def open_store(url: str, *, pg_synchronous_commit: str = "off") -> Store:
    """Open the store a ``CITYOS_DATABASE_URL`` names: ``sqlite:///path`` or ``postgresql://…``."""
    if url.startswith("sqlite:"):
        from cityos.hub.store.sqlite import SqliteStore

        return SqliteStore.from_url(url)
    if url.startswith(("postgresql:", "postgres:")):
        from cityos.hub.store.postgres import PostgresStore

        return PostgresStore(url, synchronous_commit=pg_synchronous_commit)
    raise ValueError(
        f"unsupported database URL {url!r}: use sqlite:///path/city.db or postgresql://user@host/db"
    )
