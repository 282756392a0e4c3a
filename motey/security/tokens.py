"""API tokens as files hold them: only a hash of each token is ever stored.

Tokens are 256 random bits, so an unsalted SHA-256 is enough to make a stolen token
file useless (as with GitHub's or PyPI's API tokens); there is nothing to brute-force.
A token file is JSON ``{"tokens": [{"name", "role", "sha256", "created"}]}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from motey.errors import ConfigError

#: Every token starts with this, so a leaked one is easy to recognise in logs and scans.
TOKEN_PREFIX = "motey_"

#: The roles, weakest first: each may do what the ones before it may.
ROLES = ("viewer", "operator", "admin")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def new_token() -> str:
    """A fresh random token; shown to its user once, never stored in plain."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token, which is all a token file keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenRecord:
    """One stored token: who it is for, what it may do, and its hash."""

    name: str
    role: str
    sha256: str
    created: str

    @classmethod
    def issue(cls, name: str, role: str) -> tuple[TokenRecord, str]:
        """A new record and the plain token that matches it."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        token = new_token()
        created = datetime.now(UTC).isoformat(timespec="seconds")
        return cls(name=name, role=role, sha256=hash_token(token), created=created), token


def read_token_file(path: str | os.PathLike[str]) -> list[TokenRecord]:
    """The records of a token file; a missing file holds none."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read token file {file}: {exc}") from exc
    try:
        records = [TokenRecord(**entry) for entry in data["tokens"]]
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"token file {file} is not a Motey token file: {exc}") from exc
    for n, record in enumerate(records):
        problem = _record_problem(record)
        if problem:
            raise ConfigError(f"token file {file}: entry {n} {problem}")
    return records


def _record_problem(record: TokenRecord) -> str | None:
    """What is wrong with a record read from a file, or ``None``."""
    for field in ("name", "role", "sha256", "created"):
        if not isinstance(getattr(record, field), str):
            return f"has a {field} that is not a string"
    if record.role not in ROLES:
        return f"has the unknown role {record.role!r} (roles: {', '.join(ROLES)})"
    if not _SHA256.match(record.sha256):
        return "has a sha256 that is not 64 hex digits"
    return None


def write_token_file(path: str | os.PathLike[str], records: list[TokenRecord]) -> None:
    """Replace a token file atomically, readable by its owner only (0600)."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"tokens": [asdict(r) for r in records]}, indent=2)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
