"""Capabilities a node finds out by itself: its facts and the devices plugged into it.

Facts (``arch``, ``cpu_count``, ``memory_mb``, ``os``; source ``facts``) are read once at
start. Device rules (``[NODE] device_rules``, e.g. ``/dev/ttyUSB*=zigbee``; source
``device``) are polled by a watcher thread, so a capability follows its dongle within
one poll interval of it being plugged in or pulled out.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import logbook
import psutil

from motey.errors import ConfigError
from motey.schemas.capability import CAPABILITY_NAME_PATTERN, CAPABILITY_NAME_RULE

log = logbook.Logger(__name__)

FACTS_SOURCE = "facts"
DEVICE_SOURCE = "device"

_NAME = re.compile(CAPABILITY_NAME_PATTERN)

#: ``platform.machine()`` spellings mapped to the names Docker and OCI images use, so
#: that ``arch=arm64`` means the same on a Raspberry Pi (``aarch64``) as in a manifest.
_ARCH_ALIASES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv8l": "arm",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i486": "386",
    "i586": "386",
    "i686": "386",
}


class CapabilitySink(Protocol):
    """The part of the CapabilityEngine a detector needs."""

    def replace_source(self, entries: list[dict[str, Any]], source: str) -> bool: ...

    def reserve(self, names: Iterable[str], source: str) -> None: ...


def normalized_arch(machine: str | None = None) -> str:
    """The OCI architecture name of this machine (``amd64``, ``arm64``, ``arm``, ...)."""
    raw = (machine if machine is not None else platform.machine()).lower()
    return _ARCH_ALIASES.get(raw, raw or "unknown")


def node_facts() -> list[dict[str, Any]]:
    """This node's facts as capability entries with values."""
    memory_mb = psutil.virtual_memory().total // (1024 * 1024)
    facts = {
        "arch": normalized_arch(),
        "cpu_count": os.cpu_count() or 1,
        "memory_mb": memory_mb,
        "os": platform.system().lower() or "unknown",
    }
    return [
        {"capability": name, "capability_type": "fact", "value": str(value)}
        for name, value in facts.items()
    ]


@dataclass(frozen=True)
class DeviceRule:
    """A path glob whose matches mean the node has ``capability``."""

    pattern: str
    capability: str

    def matches(self) -> list[str]:
        """The paths that match now (sorted, so log lines and values are stable)."""
        return sorted(glob.glob(self.pattern))


def parse_device_rules(text: str) -> list[DeviceRule]:
    """``GLOB=CAPABILITY`` pairs separated by commas or new lines (``[NODE] device_rules``)."""
    rules: list[DeviceRule] = []
    for raw in re.split(r"[,\n]", text or ""):
        item = raw.strip()
        if not item:
            continue
        pattern, sep, capability = item.rpartition("=")
        pattern, capability = os.path.expanduser(pattern.strip()), capability.strip()
        if not sep or not pattern or not _NAME.match(capability):
            raise ConfigError(
                f"[NODE] device_rules: {item!r} is not GLOB=CAPABILITY "
                f"(e.g. /dev/ttyUSB*=zigbee; CAPABILITY: {CAPABILITY_NAME_RULE})"
            )
        if not os.path.isabs(pattern):
            raise ConfigError(
                f"[NODE] device_rules: {pattern!r} must be an absolute path glob "
                "(a daemon's working directory is /)"
            )
        rules.append(DeviceRule(pattern, capability))
    return rules


def scan_devices(rules: list[DeviceRule]) -> dict[str, list[str]]:
    """Capability → matching paths, for the capabilities with at least one match.

    Several rules may name one capability (``/dev/ttyUSB*`` and ``/dev/ttyACM*`` both
    mean ``zigbee``); their matches add up.
    """
    found: dict[str, list[str]] = {}
    for rule in rules:
        paths = rule.matches()
        if paths:
            found.setdefault(rule.capability, []).extend(paths)
    return {name: sorted(set(paths)) for name, paths in found.items()}


def device_entries(found: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Capability entries for a scan; the value is how many devices matched."""
    return [
        {"capability": name, "capability_type": "hardware", "value": str(len(paths))}
        for name, paths in sorted(found.items())
    ]


class CapabilityDetector:
    """Publishes the node's facts at start and keeps device capabilities current.

    The watcher thread only runs when there are device rules; it polls every
    ``poll_interval`` seconds and writes to the engine only when the set changed.
    """

    #: Seconds :meth:`stop` may take (the watcher waits on the stop event); see motey/lifecycle.py.
    STOP_WAIT = 1.0

    def __init__(
        self,
        engine: CapabilitySink,
        device_rules: str = "",
        poll_interval: float = 1.0,
        detect_facts: bool = True,
    ) -> None:
        self._engine = engine
        self._rules = parse_device_rules(device_rules)
        self._interval = poll_interval
        self._detect_facts = detect_facts
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: dict[str, list[str]] | None = None

    @property
    def rules(self) -> list[DeviceRule]:
        return list(self._rules)

    def devices(self) -> dict[str, list[str]]:
        """Capability → paths its device rules matched at the last scan.

        The executor grants these paths to images that require the capability; the
        rules only ever match what the operator configured, nothing else of ``/dev``.
        """
        last = self._last or {}
        return {name: list(paths) for name, paths in last.items()}

    def start(self) -> None:
        """Publish facts, scan devices once (so they count before OPERATE), then watch."""
        if self._thread is not None:
            return
        self._engine.replace_source(node_facts() if self._detect_facts else [], FACTS_SOURCE)
        self._engine.reserve({r.capability for r in self._rules}, DEVICE_SOURCE)
        self._last = None
        self.scan_once()
        if not self._rules:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="motey-device-watcher", daemon=True)
        self._thread.start()
        log.info(
            "watching {} device rule(s) every {}s: {}",
            len(self._rules),
            self._interval,
            ", ".join(f"{r.pattern}={r.capability}" for r in self._rules),
        )

    def stop(self) -> None:
        """Stop the watcher; idempotent. Entries stay: the next start scans again."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.STOP_WAIT)
            self._thread = None

    def scan_once(self) -> bool:
        """Scan the rules and update the engine; ``True`` when the device set changed."""
        found = scan_devices(self._rules)
        if found == self._last:
            return False
        previous = self._last or {}
        for name in sorted(found.keys() - previous.keys()):
            log.info("device capability {} appeared: {}", name, ", ".join(found[name]))
        for name in sorted(previous.keys() - found.keys()):
            log.info("device capability {} disappeared: {}", name, ", ".join(previous[name]))
        self._engine.replace_source(device_entries(found), DEVICE_SOURCE)
        self._last = found
        return True

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.scan_once()
            except Exception as exc:  # one failed scan (e.g. a storage error) is not fatal
                log.error("device scan failed: {}", exc)
