"""The CapabilityEngine: what this node can offer the images placed on it.

Capabilities come from several sources (static config, REST, local IPC publishers,
VAL plugins, detected facts and devices). Each entry remembers its source, so removing
what one source said never erases what another still asserts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import logbook

from motey.capabilityengine.requirements import unmet
from motey.models.capability import Capability
from motey.repositories.capability_repository import CapabilityRepository
from motey.schemas.capability import CAPABILITY_LIST_SCHEMA
from motey.schemas.validation import validate

log = logbook.Logger(__name__)

Listener = Callable[[list[dict[str, Any]]], None]


class CapabilityEngine:
    """Keeps this node's capability set and tells listeners when it changes."""

    def __init__(
        self,
        repository: CapabilityRepository,
        static_capabilities: Iterable[str] = (),
        engine_capabilities: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        self._repository = repository
        self._static = [c for c in static_capabilities if c]
        self._engine_capabilities = engine_capabilities
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Re-assert the static and engine capabilities (they may have changed)."""
        self._repository.remove_source("config")
        for entry in self._static:
            name, _, value = entry.partition("=")
            self._repository.add(
                Capability(name.strip(), "static", "config", value.strip() or None)
            )
        self._repository.remove_source("engine")
        if self._engine_capabilities is not None:
            for cap in self._engine_capabilities():
                self._repository.add(
                    Capability(
                        cap["capability"], cap["capability_type"], "engine", cap.get("value")
                    )
                )
        self._notify()

    def stop(self) -> None:
        """Nothing to release; kept for the uniform component lifecycle."""

    def subscribe(self, listener: Listener) -> None:
        """Be called with the full capability list after every change."""
        self._listeners.append(listener)

    def all(self) -> list[dict[str, Any]]:
        """Every capability entry with its source."""
        return [c.to_dict() for c in self._repository.all()]

    def add(self, entries: list[dict[str, Any]], source: str) -> bool:
        """Validate and add entries for ``source``; ``True`` when anything changed."""
        validate(entries, CAPABILITY_LIST_SCHEMA, "capability list")
        changed = False
        with self._lock:
            for entry in entries:
                value = entry.get("value")
                cap = Capability(
                    entry["capability"],
                    entry["capability_type"],
                    source,
                    None if value is None else str(value),
                )
                changed = self._repository.add(cap) or changed
        if changed:
            log.info("capabilities added by {}: {}", source, [e["capability"] for e in entries])
            self._notify()
        return changed

    def remove(self, entries: list[dict[str, Any]], source: str) -> bool:
        """Validate and remove ``source``'s entries; ``True`` when anything changed."""
        validate(entries, CAPABILITY_LIST_SCHEMA, "capability list")
        changed = False
        with self._lock:
            for entry in entries:
                changed = self._repository.remove(entry["capability"], source) or changed
        if changed:
            log.info("capabilities removed by {}: {}", source, [e["capability"] for e in entries])
            self._notify()
        return changed

    def replace_source(self, entries: list[dict[str, Any]], source: str) -> bool:
        """Make ``source``'s entries exactly ``entries`` (detectors report full sets)."""
        validate(entries, CAPABILITY_LIST_SCHEMA, "capability list")
        with self._lock:
            current = {
                (c.capability, c.capability_type, c.value)
                for c in self._repository.all()
                if c.source == source
            }
            wanted = {
                (
                    e["capability"],
                    e["capability_type"],
                    None if e.get("value") is None else str(e["value"]),
                )
                for e in entries
            }
            if current == wanted:
                return False
            self._repository.remove_source(source)
            for name, ctype, value in wanted:
                self._repository.add(Capability(name, ctype, source, value))
        log.info("capabilities from {} now: {}", source, sorted(n for n, _, _ in wanted))
        self._notify()
        return True

    def unmet(self, requirements: Iterable[str]) -> list[str]:
        """Requirements this node does not meet now."""
        return unmet(requirements, self.all())

    def _notify(self) -> None:
        snapshot = self.all()
        for listener in list(self._listeners):
            try:
                listener(snapshot)
            except Exception as exc:  # a listener must not break capability updates
                log.error("capability listener failed: {}", exc)
