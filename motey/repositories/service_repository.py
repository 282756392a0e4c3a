"""Persistence of services (with their images): read from memory, written through.

Every write goes to the database file first (atomic, fsynced, previous generation kept:
see :mod:`motey.repositories.base`) and only then to the in-memory copy, so a failed
write changes neither. Reads never touch the file: the original re-read and re-parsed
``services.json`` on every request (see docs/scale.md).
"""

from __future__ import annotations

import json
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
        #: Service id -> its stored record as JSON text (parsed anew per read, so callers
        #: may change what they get); ``None`` until first loaded from the file.
        self._cache: dict[str, str] | None = None
        #: Counts writes: a reader that memoises something derived from the services
        #: (a serialised list) knows it is stale when this has moved.
        self.generation = 0

    def _docs(self) -> dict[str, str]:
        """The in-memory records; call with the database lock held (inside ``run``)."""
        if self._cache is None:
            docs = self._db.run(lambda db: db.table("services").all())
            self._cache = {str(d.get("id")): json.dumps(dict(d)) for d in docs}
        return self._cache

    def _read(self) -> list[dict[str, Any]]:
        return self._db.run(lambda _db: [json.loads(t) for t in self._docs().values()])

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
        for doc in self._read():
            try:
                Service.from_dict(doc)
            except (KeyError, TypeError, ValueError) as exc:
                return Health(False, f"database {self._db.path} holds an unreadable service: {exc}")
        return health

    def add(self, service: Service) -> None:
        """Store a new service (or replace one with the same id)."""
        self.update(service)

    def update(self, service: Service) -> None:
        """Insert or replace the service with this id."""
        doc = service.to_dict()

        def write(db: Any) -> None:
            docs = self._docs()
            db.table("services").upsert(doc, Query().id == service.id)
            docs[service.id] = json.dumps(doc)
            self.generation += 1

        self._db.run(write)
        self._notify(doc)

    def get(self, service_id: str) -> Service | None:
        """The service with this id, or ``None``."""
        text = self._db.run(lambda _db: self._docs().get(service_id))
        return Service.from_dict(json.loads(text)) if text else None

    def find_by_name(self, name: str) -> list[Service]:
        """Services with this ``service_name`` (the original deleted by name)."""
        return [Service.from_dict(d) for d in self._read() if d.get("service_name") == name]

    def find_by_idempotency_key(self, key: str) -> list[Service]:
        """Services created by a POST with this ``Idempotency-Key``."""
        return [Service.from_dict(d) for d in self._read() if d.get("idempotency_key") == key]

    def all(self) -> list[Service]:
        """Every stored service, oldest first."""
        services = []
        for doc in self._read():
            try:
                services.append(Service.from_dict(doc))
            except (KeyError, TypeError, ValueError) as exc:  # see health(): kept, not lost
                log.error("skipping an unreadable service record {}: {}", doc.get("id"), exc)
        return sorted(services, key=lambda s: (s.created_at, s.id))

    def remove(self, service_id: str) -> bool:
        """Forget a service; ``True`` when one was removed."""

        def write(db: Any) -> bool:
            docs = self._docs()
            removed = bool(db.table("services").remove(Query().id == service_id))
            if docs.pop(service_id, None) is not None or removed:
                self.generation += 1
            return removed

        removed = self._db.run(write)
        if removed:
            self._notify(service_id)
        return bool(removed)
