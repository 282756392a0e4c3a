"""Creating, listing and revoking a node's API tokens: what ``motey token`` and the
admin's ``/v1/tokens`` endpoints both do, on the files :class:`TokenStore` reads.

Only the node file (``<[DATABASE] path>/tokens.json``) is changed. The cell file is the
same on every node and comes from the operator's cell folder; its tokens are listed
(source ``cell``) but cannot be revoked here. A name is unique across both files.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from motey.errors import ConflictError, NotFoundError, ValidationError
from motey.security.tokens import ROLES, TokenRecord, read_token_file, write_token_file

#: What a token name may look like: it appears in audit lines, lists and URLs.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class TokenAdmin:
    """Edits a node's token file; one writer at a time (a lock file beside it)."""

    def __init__(self, node_file: str | os.PathLike[str], cell_file: str | os.PathLike[str] | None):
        self.node_file = Path(node_file)
        self.cell_file = Path(cell_file) if cell_file else None

    def all(self) -> list[dict[str, Any]]:
        """Every token the node accepts: name, role, source, created (never a hash)."""
        rows = [("cell", r) for r in self._cell_records()]
        rows += [("node", r) for r in read_token_file(self.node_file)]
        return [
            {"name": r.name, "role": r.role, "source": source, "created": r.created}
            for source, r in rows
        ]

    def create(self, name: Any, role: Any) -> tuple[TokenRecord, str]:
        """A new node token; returns its record and the plain token (shown once)."""
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ValidationError(
                "a token name is 1-64 letters, digits or _ . @ -, starting with a letter or digit",
                field="name",
            )
        if role not in ROLES:
            raise ValidationError(f"role must be one of {', '.join(ROLES)}", field="role")
        with self._locked():
            records = read_token_file(self.node_file)
            taken = {r.name for r in records} | {r.name for r in self._cell_records()}
            if name in taken:
                raise ConflictError(f"a token named {name!r} exists already", field="name")
            record, token = TokenRecord.issue(name, role)
            self._write([*records, record])
        return record, token

    def revoke(self, name: str) -> TokenRecord:
        """Remove a node token; the node refuses it from its next request on."""
        with self._locked():
            records = read_token_file(self.node_file)
            kept = [r for r in records if r.name != name]
            if len(kept) == len(records):
                if any(r.name == name for r in self._cell_records()):
                    raise ConflictError(
                        f"{name!r} is a cell token (from {self.cell_file}); it is the same on "
                        "every node and is changed with the cell's credentials",
                        field="name",
                    )
                raise NotFoundError(f"no token named {name!r} on this node", field="name")
            self._write(kept)
        return next(r for r in records if r.name == name)

    def _write(self, records: list[TokenRecord]) -> None:
        """Replace the node file; run as root, hand it to the owner of its folder.

        ``motey token`` is often run with sudo while the node runs as its own user, who
        must still be able to read the file (0600).
        """
        write_token_file(self.node_file, records)
        if os.geteuid() == 0:
            folder = self.node_file.parent.stat()
            if folder.st_uid != 0:
                os.chown(self.node_file, folder.st_uid, folder.st_gid)

    def _cell_records(self) -> list[TokenRecord]:
        return read_token_file(self.cell_file) if self.cell_file else []

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.node_file.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.node_file.with_name(f".{self.node_file.name}.lock")
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
