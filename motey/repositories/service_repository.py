"""Persistence of services (with their images)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import logbook
from tinydb import Query

from motey.models.service import Service
from motey.repositories.base import Database, Health

log = logbook.Logger(__name__)


class ServiceRepository:
    """Stores services by id; all access serialised by the database lock."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._listeners: list[Callable[[dict[str, Any] | str], None]] = []

    def subscribe(self, listener: Callable[[dict[str, Any] | str], None]) -> None:
        """Be called after every write: with the stored service, or its id when removed.

        Listeners run outside the database lock on the writer's thread (the event bus).
        """
        self._listeners.append(listener)

    def _notify(self, change: dict[str, Any] | str) -> None:
        for listener in list(self._listeners):
            listener(change)

    def health(self) -> Health:
        """Whether the stored services can be trusted to name every service this node has.

        Clean only when the file loaded as written (not restored, not new) and every
        record reads as a service: only then may a node call a container nobody records
        an orphan and remove it.
        """
        health = self._db.health
        if not health.clean:
            return health
        docs = self._db.run(lambda db: db.table("services").all())
        for doc in docs:
            try:
                Service.from_dict(dict(doc))
            except (KeyError, TypeError, ValueError) as exc:
                return Health(False, f"database {self._db.path} holds an unreadable service: {exc}")
        return health

    def add(self, service: Service) -> None:
        """Store a new service (or replace one with the same id)."""
        self.update(service)

    def update(self, service: Service) -> None:
        """Insert or replace the service with this id."""
        doc = service.to_dict()
        self._db.run(lambda db: db.table("services").upsert(doc, Query().id == service.id))
        self._notify(doc)

    def get(self, service_id: str) -> Service | None:
        """The service with this id, or ``None``."""
        doc = self._db.run(lambda db: db.table("services").get(Query().id == service_id))
        return Service.from_dict(dict(doc)) if doc else None  # type: ignore[arg-type]

    def find_by_name(self, name: str) -> list[Service]:
        """Services with this ``service_name`` (the original deleted by name)."""
        docs = self._db.run(lambda db: db.table("services").search(Query().service_name == name))
        return [Service.from_dict(dict(d)) for d in docs]

    def find_by_idempotency_key(self, key: str) -> list[Service]:
        """Services created by a POST with this ``Idempotency-Key``."""
        docs = self._db.run(lambda db: db.table("services").search(Query().idempotency_key == key))
        return [Service.from_dict(dict(d)) for d in docs]

    def all(self) -> list[Service]:
        """Every stored service, oldest first."""
        docs = self._db.run(lambda db: db.table("services").all())
        services = []
        for doc in docs:
            try:
                services.append(Service.from_dict(dict(doc)))
            except (KeyError, TypeError, ValueError) as exc:  # see health(): kept, not lost
                log.error("skipping an unreadable service record {}: {}", doc.get("id"), exc)
        return sorted(services, key=lambda s: (s.created_at, s.id))

    def remove(self, service_id: str) -> bool:
        """Forget a service; ``True`` when one was removed."""
        removed = self._db.run(lambda db: db.table("services").remove(Query().id == service_id))
        if removed:
            self._notify(service_id)
        return bool(removed)
