"""``motey token create|list|revoke``: the API tokens of one node.

The commands edit the node's token file (``<[DATABASE] path>/tokens.json``) directly; a
running node re-reads it at its next request, so nothing needs restarting. The cell's
tokens (``<[SECURITY] credentials>/tokens.json``, written by ``motey cell``) are listed
too but not changed here: they are the same on every node of the cell.
"""

from __future__ import annotations

import argparse
import fcntl
import getpass
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from motey.errors import ConfigError
from motey.security.access import TOKEN_FILE
from motey.security.audit import AuditLog
from motey.security.tokens import ROLES, TokenRecord, read_token_file, write_token_file

EXIT_OK = 0
EXIT_FAILURE = 1

#: What a token name may look like: it appears in audit lines and in ``token list``.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")

HELP = "manage this node's API tokens (create, list, revoke)"


def add_token_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``motey token …`` on the ``motey`` command's subparsers."""
    token = sub.add_parser("token", help=HELP, description=HELP, parents=[common])
    actions = token.add_subparsers(dest="token_command", metavar="ACTION")
    actions.required = True
    create = actions.add_parser(
        "create",
        parents=[common],
        help="create a token and print it once",
        description="Create a token; it is printed once and stored only as a hash.",
    )
    create.add_argument("--name", required=True, help="who the token is for (unique)")
    create.add_argument("--role", required=True, choices=ROLES, help="what it may do")
    actions.add_parser("list", parents=[common], help="list the tokens this node accepts")
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a token of this node")
    revoke.add_argument("name", help="the token's name")


def run_token_command(config: dict[str, Any], args: argparse.Namespace) -> int:
    """Carry out ``motey token ACTION``; returns the exit code."""
    node_file = Path(config["DATABASE"]["path"]) / TOKEN_FILE
    credentials = config["SECURITY"]["credentials"]
    cell_file = Path(credentials) / TOKEN_FILE if credentials else None
    audit = AuditLog.in_folder(config["LOGGER"]["log_path"] or config["DATABASE"]["path"])
    try:
        if args.token_command == "create":
            return _create(node_file, cell_file, args.name, args.role, audit)
        if args.token_command == "list":
            return _list(node_file, cell_file)
        return _revoke(node_file, cell_file, args.name, audit)
    except (ConfigError, OSError) as exc:
        message = exc.message if isinstance(exc, ConfigError) else str(exc)
        print(f"motey: error: {message}", file=sys.stderr)
        return EXIT_FAILURE


@contextmanager
def _locked(node_file: Path) -> Iterator[None]:
    """One writer at a time (two ``motey token`` commands must not lose a token)."""
    node_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(node_file.with_name(f".{node_file.name}.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _cell_records(cell_file: Path | None) -> list[TokenRecord]:
    return read_token_file(cell_file) if cell_file else []


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _create(node_file: Path, cell_file: Path | None, name: str, role: str, audit: AuditLog) -> int:
    if not NAME_PATTERN.match(name):
        print(
            f"motey: error: token name {name!r} must be 1-64 letters, digits or _ . @ -,"
            " starting with a letter or digit",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    with _locked(node_file):
        records = read_token_file(node_file)
        taken = {r.name for r in records} | {r.name for r in _cell_records(cell_file)}
        if name in taken:
            print(f"motey: error: a token named {name!r} exists already", file=sys.stderr)
            return EXIT_FAILURE
        record, token = TokenRecord.issue(name, role)
        write_token_file(node_file, [*records, record])
    audit.record(who=_who(), what=f"token create {name}", result="ok", role=role)
    print(f"token {name!r} ({role}) created; it is shown only this once:", file=sys.stderr)
    print(token)
    return EXIT_OK


def _list(node_file: Path, cell_file: Path | None) -> int:
    rows = [("cell", r) for r in _cell_records(cell_file)]
    rows += [("node", r) for r in read_token_file(node_file)]
    if not rows:
        print("no tokens; create one with: motey token create --name NAME --role ROLE")
        return EXIT_OK
    width = max(4, *(len(r.name) for _, r in rows))
    print(f"{'NAME':<{width}}  {'ROLE':<8}  {'SOURCE':<6}  CREATED")
    for source, record in rows:
        print(f"{record.name:<{width}}  {record.role:<8}  {source:<6}  {record.created}")
    return EXIT_OK


def _revoke(node_file: Path, cell_file: Path | None, name: str, audit: AuditLog) -> int:
    with _locked(node_file):
        records = read_token_file(node_file)
        kept = [r for r in records if r.name != name]
        if len(kept) == len(records):
            if any(r.name == name for r in _cell_records(cell_file)):
                print(
                    f"motey: error: {name!r} is a cell token (from {cell_file}); it is the "
                    "same on every node and is replaced with the cell's credentials",
                    file=sys.stderr,
                )
            else:
                print(f"motey: error: no token named {name!r} on this node", file=sys.stderr)
            return EXIT_FAILURE
        write_token_file(node_file, kept)
    audit.record(who=_who(), what=f"token revoke {name}", result="ok")
    print(f"token {name!r} revoked")
    return EXIT_OK
