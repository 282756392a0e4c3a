"""Persistence of this node's capabilities, each with the source that asserted it."""

from __future__ import annotations

import dataclasses
from typing import Any

from tinydb import Query

from motey.models.capability import Capability
from motey.repositories.base import Database


class CapabilityRepository:
    """Stores (capability, source) pairs so one source never erases another's entry.

    Reads come from memory (every capability request and every presence reads them);
    a write goes to the file and drops the memory copy, which the next read rebuilds.
    """

    def __init__(self, database: Database) -> None:
        self._db = database
        self._cache: list[Capability] | None = None

    def _entries(self) -> list[Capability]:
        def load(db: Any) -> list[Capability]:
            if self._cache is None:
                docs = db.table("capabilities").all()
                self._cache = sorted(
                    (
                        Capability(
                            capability=d["capability"],
                            capability_type=d.get("capability_type", ""),
                            source=d.get("source", "rest"),
                            value=d.get("value"),
                        )
                        for d in docs
                    ),
                    key=lambda c: (c.capability, c.source),
                )
            return self._cache

        return list(self._db.run(load))

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
            self._cache = None
            table.upsert(capability.to_dict() | {"value": capability.value}, cond)
            return True

        return bool(self._db.run(op))

    def remove(self, name: str, source: str) -> bool:
        """Remove what ``source`` asserted about ``name``; ``True`` when something went."""
        q = Query()

        def op(db: Any) -> list[int]:
            self._cache = None
            return db.table("capabilities").remove((q.capability == name) & (q.source == source))

        return bool(self._db.run(op))

    def remove_source(self, source: str) -> int:
        """Remove everything one source asserted (e.g. re-reading static config)."""
        q = Query()

        def op(db: Any) -> list[int]:
            self._cache = None
            return db.table("capabilities").remove(q.source == source)

        return len(self._db.run(op))

    def all(self) -> list[Capability]:
        """Every entry, sorted by name then source."""
        return [dataclasses.replace(c) for c in self._entries()]

    def has(self, name: str) -> bool:
        """Whether any source asserts ``name``."""
        return any(c.capability == name for c in self._entries())
