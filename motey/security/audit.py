"""The audit log: one line per request that changes something, in its own file.

A line is a JSON object ``{"at", "who", "from", "what", "result", ...}`` so that it can
be read by people (one line, fixed key order) and by tools (``jq``). The file is kept
apart from the application log (which rotates with log levels and debug noise) and is
rotated by size, keeping ``backups`` old files (``audit.log.1`` … ``audit.log.N``).

The file is opened for each line and closed again: audited requests are rare (deploys,
terminations, capability and lifecycle changes), and several writers (the node, the
``motey token`` command) can then share it without holding it open.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import logbook

log = logbook.Logger(__name__)

#: The audit file's name inside ``[LOGGER] log_path``.
AUDIT_FILE = "audit.log"


class AuditLog:
    """Appends audit lines to ``path`` and rotates it at ``max_bytes``."""

    def __init__(
        self, path: str | os.PathLike[str], max_bytes: int = 1024 * 1024, backups: int = 5
    ):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()

    @classmethod
    def in_folder(cls, log_path: str) -> AuditLog:
        """The audit log of a node whose log folder is ``log_path``."""
        return cls(Path(log_path) / AUDIT_FILE)

    def record(self, who: str, what: str, result: Any, origin: str = "", **details: Any) -> None:
        """Write one line: when, who, from where, what, and how it ended.

        Never raises: an audit file that cannot be written is reported in the
        application log, and the request it describes has already happened.
        """
        entry: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "who": who,
            "from": origin,
            "what": what,
            "result": result,
        }
        entry.update({k: v for k, v in details.items() if v not in (None, "")})
        line = json.dumps(entry, ensure_ascii=True, default=str) + "\n"
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._rotate_if_full(len(line))
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
                with os.fdopen(fd, "a", encoding="ascii") as handle:
                    handle.write(line)
            except OSError as exc:
                log.error(
                    "cannot write the audit log {}: {} (lost: {})", self.path, exc, line.strip()
                )

    def _rotate_if_full(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size + incoming <= self.max_bytes:
            return
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.backups > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
