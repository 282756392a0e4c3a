"""The CapabilityEngine: what this node can offer the images placed on it.

Capabilities come from several sources, each named on its entries:

``config``  static ones from ``[NODE] capabilities``;
``engine``  what the VAL plugins report (e.g. ``docker``);
``facts``   the node's facts (``arch``, ``cpu_count``, ``memory_mb``, ``os``);
``device``  device rules (``/dev/ttyUSB*=zigbee``) while a matching path exists;
``ipc``     local hardware-event publishers on the ZeroMQ IPC socket;
``rest``    ``PUT``/``DELETE /v1/capabilities``.

A source only ever adds or removes its own entries, so removing what one source said
never erases what another still asserts; a capability is present while any source
asserts it.

Facts are facts: a name that ``facts``, ``engine`` or ``device`` asserts, or that a
device rule names, cannot be added, changed or removed by ``rest`` or ``ipc``
(:class:`ProtectedCapabilityError`),
and a name has one value per node: a caller cannot add ``foo=2`` next to another
source's ``foo=1`` (:class:`ConflictError`; an entry without a value only says the
capability is present and contradicts none).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

import logbook

from motey.capabilityengine.requirements import unmet
from motey.errors import ConfigError, ConflictError, ProtectedCapabilityError
from motey.models.capability import Capability
from motey.repositories.capability_repository import CapabilityRepository
from motey.schemas.capability import (
    CAPABILITY_LIST_SCHEMA,
    CAPABILITY_NAME_PATTERN,
    CAPABILITY_NAME_RULE,
)
from motey.schemas.validation import validate

log = logbook.Logger(__name__)

Listener = Callable[[list[dict[str, Any]]], None]

#: What a change asks for: ``("add", entry)`` or ``("remove", entry)``.
Change = tuple[str, dict[str, Any]]

_NAME = re.compile(CAPABILITY_NAME_PATTERN)

#: Sources whose entries the node detects itself; no caller may change their names.
PROTECTED_SOURCES = frozenset({"facts", "engine", "device"})


def normalize_value(value: Any) -> str | None:
    """Values are stored as text; booleans as ``true``/``false`` so ``gpu=true`` matches."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_static_capabilities(entries: Iterable[str]) -> list[dict[str, Any]]:
    """``[NODE] capabilities`` items (``NAME`` or ``NAME=VALUE``) as capability entries."""
    result: list[dict[str, Any]] = []
    for raw in entries:
        text = raw.strip()
        if not text:
            continue
        name, sep, value = text.partition("=")
        name, value = name.strip(), value.strip()
        if not _NAME.match(name) or (sep and not value):
            raise ConfigError(
                f"[NODE] capabilities: {text!r} is not NAME or NAME=VALUE "
                f"(NAME: {CAPABILITY_NAME_RULE})"
            )
        entry: dict[str, Any] = {"capability": name, "capability_type": "static"}
        if value:
            entry["value"] = value
        result.append(entry)
    return result


class CapabilityEngine:
    """Keeps this node's capability set and tells listeners when it changes."""

    #: Seconds :meth:`stop` may take (nothing to release); see motey/lifecycle.py.
    STOP_WAIT = 0.5

    def __init__(
        self,
        repository: CapabilityRepository,
        static_capabilities: Iterable[str] = (),
        engine_capabilities: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        self._repository = repository
        self._static = parse_static_capabilities(static_capabilities)
        self._engine_capabilities = engine_capabilities
        self._listeners: list[Listener] = []
        #: Names a detector owns even while it asserts nothing (device rules' capabilities).
        self._reserved: dict[str, str] = {}
        self._lock = threading.Lock()
        # Notifications are delivered one at a time, each with a snapshot taken while
        # holding this lock, so the last list a listener sees is never older than a write.
        self._notify_lock = threading.RLock()

    def start(self) -> None:
        """Re-assert the static and engine capabilities (they may have changed)."""
        self.replace_source(self._static, "config")
        if self._engine_capabilities is not None:
            self.replace_source(list(self._engine_capabilities()), "engine")

    def stop(self) -> None:
        """Nothing to release; kept for the uniform component lifecycle."""

    def reserve(self, names: Iterable[str], source: str) -> None:
        """Keep ``names`` for ``source`` (a detector) even while it asserts none of them.

        A device rule's capability means "this device is plugged in"; a caller asserting
        it over REST or IPC would make a node without the dongle look like one with it.
        """
        with self._lock:
            for name in names:
                self._reserved[name] = source

    def subscribe(self, listener: Listener) -> None:
        """Be called with the full capability list after every change.

        Listeners run on the thread that made the change (a REST worker, the IPC loop,
        the device watcher); a listener with slow work hands it to its own thread.
        """
        self._listeners.append(listener)

    def all(self) -> list[dict[str, Any]]:
        """Every capability entry with its source."""
        return [c.to_dict() for c in self._repository.all()]

    def add(self, entries: list[dict[str, Any]], source: str) -> bool:
        """Validate and add entries for ``source``; ``True`` when anything changed."""
        validate(entries, CAPABILITY_LIST_SCHEMA, "capability list")
        return self.update([("add", e) for e in entries], source)

    def remove(self, entries: list[dict[str, Any]], source: str) -> bool:
        """Validate and remove ``source``'s entries; ``True`` when anything changed."""
        validate(entries, CAPABILITY_LIST_SCHEMA, "capability list")
        return self.update([("remove", e) for e in entries], source)

    def update(self, changes: list[Change], source: str) -> bool:
        """Apply adds and removes of one source in order; listeners hear of it once."""
        validate([entry for _, entry in changes], CAPABILITY_LIST_SCHEMA, "capability list")
        added: list[str] = []
        removed: list[str] = []
        kept: list[str] = []
        with self._lock:
            if source not in PROTECTED_SOURCES:
                self._check_callers_changes(changes, source)
            for action, entry in changes:
                name = entry["capability"]
                if action == "add":
                    cap = Capability(
                        name,
                        entry["capability_type"],
                        source,
                        normalize_value(entry.get("value")),
                    )
                    if self._repository.add(cap):
                        added.append(name)
                elif action == "remove":
                    if self._repository.remove(name, source):
                        removed.append(name)
                    elif self._repository.has(name):
                        kept.append(name)
                else:
                    raise ValueError(f"unknown capability change {action!r}")
        if kept:
            log.info(
                "{} asked to remove {}, which {} never added; other sources still assert it",
                source,
                kept,
                source,
            )
        if added:
            log.info("capabilities added by {}: {}", source, added)
        if removed:
            log.info("capabilities removed by {}: {}", source, removed)
        if added or removed:
            self._notify()
        return bool(added or removed)

    def _check_callers_changes(self, changes: list[Change], source: str) -> None:
        """Refuse the whole batch if one entry touches a fact or gives a second value."""
        current = self._repository.all()
        protected = dict(self._reserved)
        protected.update({c.capability: c.source for c in current if c.source in PROTECTED_SOURCES})
        values: dict[str, tuple[str | None, str]] = {
            c.capability: (c.value, c.source) for c in current if c.source != source
        }
        for index, (action, entry) in enumerate(changes):
            name = entry["capability"]
            if name in protected:
                raise ProtectedCapabilityError(
                    f"capability {name!r} is detected by this node (source "
                    f"{protected[name]!r}); it cannot be {action}ed over {source}",
                    field=f"[{index}].capability",
                )
            if action != "add" or name not in values:
                continue
            value = normalize_value(entry.get("value"))
            other, other_source = values[name]
            if value is not None and other is not None and value != other:
                raise ConflictError(
                    f"capability {name!r} already has the value {other!r} (source "
                    f"{other_source!r}); a capability has one value per node",
                    field=f"[{index}].value",
                )

    def replace_source(self, entries: list[dict[str, Any]], source: str) -> bool:
        """Make ``source``'s entries exactly ``entries`` (detectors report full sets).

        Only the difference is written, so a reader never sees an entry that stays
        briefly missing. A name listed twice keeps its last entry.
        """
        validate(entries, CAPABILITY_LIST_SCHEMA, "capability list")
        wanted = {
            e["capability"]: Capability(
                e["capability"], e["capability_type"], source, normalize_value(e.get("value"))
            )
            for e in entries
        }
        with self._lock:
            everything = self._repository.all()
            if source in PROTECTED_SOURCES:
                self._drop_contradictions(everything, wanted, source)
            current = {c.capability: c for c in everything if c.source == source}
            if current == wanted:
                return False
            for name in current.keys() - wanted.keys():
                self._repository.remove(name, source)
            for name, cap in wanted.items():
                if current.get(name) != cap:
                    self._repository.add(cap)
        log.info("capabilities from {} now: {}", source, sorted(wanted))
        self._notify()
        return True

    def _drop_contradictions(
        self, everything: list[Capability], wanted: dict[str, Capability], source: str
    ) -> None:
        """A detected value wins over what a caller stored for the same name earlier."""
        for cap in everything:
            if cap.source in PROTECTED_SOURCES or cap.capability not in wanted:
                continue
            detected = wanted[cap.capability].value
            if cap.value is not None and detected is not None and cap.value != detected:
                self._repository.remove(cap.capability, cap.source)
                log.warning(
                    "dropped {}={} from source {}: {} detects {}={}",
                    cap.capability,
                    cap.value,
                    cap.source,
                    source,
                    cap.capability,
                    wanted[cap.capability].value,
                )

    def unmet(self, requirements: Iterable[str]) -> list[str]:
        """Requirements this node does not meet now."""
        return unmet(requirements, self.all())

    def _notify(self) -> None:
        with self._notify_lock:
            snapshot = self.all()
            for listener in list(self._listeners):
                try:
                    listener(snapshot)
                except Exception as exc:  # a listener must not break capability updates
                    log.error("capability listener failed: {}", exc)
