"""Persistence of this node's capabilities, each with the source that asserted it."""

from __future__ import annotations

from tinydb import Query

from motey.models.capability import Capability
from motey.repositories.base import Database


class CapabilityRepository:
    """Stores (capability, source) pairs so one source never erases another's entry."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def add(self, capability: Capability) -> bool:
        """Add the entry; ``False`` when this source already asserted this capability."""
        q = Query()

        def op(db):  # type: ignore[no-untyped-def]
            table = db.table("capabilities")
            cond = (q.capability == capability.capability) & (q.source == capability.source)
            existing = table.get(cond)
            if (
                existing
                and existing.get("capability_type") == capability.capability_type
                and (existing.get("value") == capability.value)
            ):
                return False
            table.upsert(capability.to_dict() | {"value": capability.value}, cond)
            return True

        return bool(self._db.run(op))

    def remove(self, name: str, source: str) -> bool:
        """Remove what ``source`` asserted about ``name``; ``True`` when something went."""
        q = Query()
        removed = self._db.run(
            lambda db: db.table("capabilities").remove(
                (q.capability == name) & (q.source == source)
            )
        )
        return bool(removed)

    def remove_source(self, source: str) -> int:
        """Remove everything one source asserted (e.g. re-reading static config)."""
        q = Query()
        return len(self._db.run(lambda db: db.table("capabilities").remove(q.source == source)))

    def all(self) -> list[Capability]:
        """Every entry, sorted by name then source."""
        docs = self._db.run(lambda db: db.table("capabilities").all())
        caps = [
            Capability(
                capability=d["capability"],
                capability_type=d.get("capability_type", ""),
                source=d.get("source", "rest"),
                value=d.get("value"),
            )
            for d in docs
        ]
        return sorted(caps, key=lambda c: (c.capability, c.source))

    def has(self, name: str) -> bool:
        """Whether any source asserts ``name``."""
        q = Query()
        return bool(
            self._db.run(lambda db: db.table("capabilities").contains(q.capability == name))
        )
