"""One TinyDB file with one lock and crash-safe writes.

TinyDB is not thread-safe, and its default storage truncates the file before writing it
again, so a crash mid-write (or two writers at once) leaves a corrupt file — exactly what
broke the original under concurrent POSTs. Here every access holds the database's lock,
and every write goes to a temporary file that is fsynced and atomically renamed.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import logbook
from tinydb import TinyDB
from tinydb.storages import Storage

from motey.errors import StorageError

log = logbook.Logger(__name__)
T = TypeVar("T")


class AtomicJSONStorage(Storage):
    """A TinyDB storage that never leaves a half-written file behind."""

    def __init__(self, path: str) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            text = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        if not text.strip():
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StorageError(f"database file {self._path} is corrupt: {exc}") from exc
        if not isinstance(data, dict):
            raise StorageError(f"database file {self._path} does not hold a JSON object")
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self._path.name}.", dir=self._path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def close(self) -> None:
        """Nothing stays open between writes."""


class Database:
    """A TinyDB file plus the lock that every access must hold."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db: TinyDB | None = None

    def open(self) -> Database:
        """Open the file (creating folders); kept separate so construction has no I/O."""
        with self._lock:
            if self._db is None:
                self._db = TinyDB(str(self.path), storage=AtomicJSONStorage)
                # Reading once here surfaces a corrupt file at start-up, not mid-request.
                self._db.tables()
                log.debug("opened database {}", self.path)
        return self

    def close(self) -> None:
        """Close the file; idempotent."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def run(self, func: Callable[[TinyDB], T]) -> T:
        """Run ``func`` with the open database while holding the lock."""
        with self._lock:
            if self._db is None:
                self.open()
            assert self._db is not None
            try:
                return func(self._db)
            except StorageError:
                raise
            except OSError as exc:
                raise StorageError(f"cannot access database {self.path}: {exc}") from exc
