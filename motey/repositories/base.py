"""One TinyDB file with one lock, crash-safe writes and a previous good generation.

TinyDB is not thread-safe, and its default storage truncates the file before writing it
again, so a crash mid-write (or two writers at once) leaves a corrupt file — exactly what
broke the original under concurrent POSTs. Here every access holds the database's lock,
and every write goes to a temporary file that is fsynced and atomically renamed.

A file can still be damaged from outside (an operator's ``: > services.json``, a full
SD card, a file system repaired after a power cut). So every write first keeps the file
it replaces as ``<name>.prev``, and opening a file that is missing, empty or corrupt
restores that previous generation — or, if there is none, refuses with one clear
message. The database says how it loaded (:class:`Health`): a node removes containers
as orphans only on the word of a database that loaded cleanly.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import logbook
from tinydb import TinyDB
from tinydb.storages import Storage

from motey.errors import StorageError

log = logbook.Logger(__name__)
T = TypeVar("T")

PREVIOUS_SUFFIX = ".prev"


@dataclass(frozen=True)
class Health:
    """How a database file loaded: ``clean`` only when it was read as it was written."""

    clean: bool
    message: str = ""


CLEAN = Health(True, "")


def previous_generation(path: Path) -> Path:
    """Where the generation before the current one of ``path`` is kept."""
    return path.with_name(path.name + PREVIOUS_SUFFIX)


def restored_marker(path: Path) -> Path:
    """The file that says ``path`` was restored and may not name every container."""
    return path.with_name(path.name + ".restored")


def _load(path: Path) -> tuple[dict[str, Any] | None, str]:
    """The file's data, or ``None`` and what is wrong with it ("missing", "empty", ...)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, "missing"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"unreadable ({exc})"
    if not text.strip():
        return None, "empty"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"corrupt ({exc})"
    if not isinstance(data, dict) or not all(isinstance(t, dict) for t in data.values()):
        return None, "corrupt (not a JSON object of tables)"
    return data, ""


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (best effort: not every file system can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicJSONStorage(Storage):
    """A TinyDB storage that never leaves a half-written file and keeps the one before.

    The node owns its database files while it runs: the loaded data is kept in memory
    (as JSON text, so TinyDB's in-place changes never touch it before a write succeeded)
    and every write replaces the whole file, so damage done to the file from outside
    while the node runs is repaired by the next write instead of read back.
    """

    def __init__(self, path: str, owner_file: str | None = None) -> None:
        self._path = Path(path)
        self._prev = previous_generation(self._path)
        self._marker = restored_marker(self._path)
        self._owner_file = Path(owner_file) if owner_file else None
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._text: str | None = None
        self.health = self._open()
        if not self.health.clean and self._owner_file is not None:
            self._mark(self.health.message)

    def _open(self) -> Health:
        data, problem = _load(self._path)
        if data is not None:
            self._text = json.dumps(data, separators=(",", ":"))
            if _load(self._prev)[0] is None:
                self._keep_previous()  # a clean start always leaves a generation to go back to
            if self._owner_file is not None and self._marker.exists():
                return Health(False, self._marked())
            return CLEAN
        previous, prev_problem = _load(self._prev)
        if previous is not None:
            self._write_file(json.dumps(previous, separators=(",", ":")), rotate=False)
            message = (
                f"database {self._path} was {problem}; restored its previous generation "
                f"{self._prev.name} (the last change before the damage may be missing)"
            )
            log.warning(message)
            return Health(False, message)
        if problem == "missing" and prev_problem == "missing":
            self._write_file("{}", rotate=False)
            if self._owner_file is None or not self._owner_file.exists():
                return CLEAN  # records that decide nothing, or a node that never ran
            message = f"database {self._path} did not exist; started empty"
            log.warning(message)
            return Health(False, message)
        raise StorageError(
            f"database {self._path} is {problem} and its previous generation {self._prev.name} "
            f"is {prev_problem}; nothing was changed — move {self._path.name} away to start "
            "with an empty database (running containers are kept)"
        )

    def _mark(self, message: str) -> None:
        """Remember the damage across restarts: the records may still miss containers."""
        if not self._marker.exists():
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self._marker.write_text(f"{stamp}: {message}\n", encoding="utf-8")

    def _marked(self) -> str:
        try:
            text = self._marker.read_text(encoding="utf-8").strip()
        except OSError:
            text = "an earlier start restored this database"
        return f"{text} — containers no service records are kept until {self._marker} is deleted"

    def read(self) -> dict[str, dict[str, Any]] | None:
        if self._text is None:
            return None
        data: dict[str, dict[str, Any]] = json.loads(self._text)
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self._write_file(json.dumps(data, separators=(",", ":")), rotate=True)

    def _write_file(self, text: str, rotate: bool) -> None:
        """Write ``text`` to a temporary file, keep the current file as the previous
        generation (``rotate``), then rename the new one into place."""
        fd, tmp = tempfile.mkstemp(prefix=f".{self._path.name}.", dir=self._path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            if rotate and self._text is not None:
                self._keep_previous()
            os.replace(tmp, self._path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self._path.parent)
        self._text = text

    def _keep_previous(self) -> None:
        """Make the current file the previous generation (a hard link, else a copy)."""
        if not self._path.exists():
            return
        tmp = self._path.with_name(f".{self._prev.name}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(self._path, tmp)
        except OSError:  # a file system without hard links (e.g. FAT)
            shutil.copyfile(self._path, tmp)
        os.replace(tmp, self._prev)

    def close(self) -> None:
        """Nothing stays open between writes."""


class Database:
    """A TinyDB file plus the lock that every access must hold."""

    def __init__(
        self, path: str | os.PathLike[str], owner_file: str | os.PathLike[str] | None = None
    ) -> None:
        """``owner_file`` (the node id file) marks a database whose records decide which
        containers are orphans: its damage is remembered in ``<name>.restored`` until an
        operator deletes that file, and a missing file is only harmless on a node that
        has no id yet."""
        self.path = Path(path)
        self._owner_file = str(owner_file) if owner_file else None
        self._lock = threading.RLock()
        self._db: TinyDB | None = None
        self._closed = False
        self.health: Health = CLEAN

    def open(self) -> Database:
        """Open the file (creating folders); kept separate so construction has no I/O.

        A missing, empty or corrupt file is restored from its previous generation; a
        :class:`StorageError` with one sentence says when that is impossible.
        """
        with self._lock:
            if self._db is None:
                db = TinyDB(str(self.path), self._owner_file, storage=AtomicJSONStorage)
                storage = db.storage
                assert isinstance(storage, AtomicJSONStorage)
                self.health = storage.health
                self._db = db
                self._closed = False
                log.debug("opened database {}", self.path)
        return self

    def close(self) -> None:
        """Close the file; idempotent. Any later access is an error, never a reopen."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            self._closed = True

    def run(self, func: Callable[[TinyDB], T]) -> T:
        """Run ``func`` with the open database while holding the lock."""
        with self._lock:
            if self._db is None:
                if self._closed:
                    raise StorageError(f"database {self.path} is closed (the node is stopping)")
                self.open()
            assert self._db is not None
            try:
                return func(self._db)
            except StorageError:
                raise
            except OSError as exc:
                raise StorageError(f"cannot access database {self.path}: {exc}") from exc
