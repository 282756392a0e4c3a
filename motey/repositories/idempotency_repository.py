"""The first answers to POSTs that carried an ``Idempotency-Key``.

Kept in the services database, next to the services they created, so they survive a
restart exactly as long as the services do.
"""

from __future__ import annotations

from typing import Any

from tinydb import Query

from motey.repositories.base import Database


class IdempotencyRepository:
    """One record per key: the answer (status and body) and when it was given."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def get(self, key: str) -> dict[str, Any] | None:
        """The record for ``key``, or ``None``."""
        doc = self._db.run(lambda db: db.table("idempotency").get(Query().key == key))
        return dict(doc) if doc else None  # type: ignore[arg-type]

    def put(self, record: dict[str, Any]) -> None:
        """Store (or replace) the record for ``record["key"]``."""
        self._db.run(
            lambda db: db.table("idempotency").upsert(record, Query().key == record["key"])
        )

    def remove_older_than(self, at: float) -> int:
        """Forget answers given before ``at``; how many went."""
        return len(self._db.run(lambda db: db.table("idempotency").remove(Query().at < at)))
