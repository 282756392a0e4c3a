"""``motey token create|list|revoke``: the API tokens of one node.

The commands edit the node's token file (``<[DATABASE] path>/tokens.json``) through
:class:`TokenAdmin`; a running node re-reads it at its next request, so nothing needs
restarting. The cell's tokens (``<[SECURITY] credentials>/tokens.json``, written by
``motey cell``) are listed too but not changed here.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from motey.errors import MoteyError
from motey.security.access import TOKEN_FILE
from motey.security.audit import AuditLog
from motey.security.token_admin import TokenAdmin
from motey.security.tokens import ROLES

EXIT_OK = 0
EXIT_FAILURE = 1

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
    credentials = config["SECURITY"]["credentials"]
    admin = TokenAdmin(
        Path(config["DATABASE"]["path"]) / TOKEN_FILE,
        Path(credentials) / TOKEN_FILE if credentials else None,
    )
    audit = AuditLog.in_folder(config["LOGGER"]["log_path"] or config["DATABASE"]["path"])
    if config["SECURITY"]["mode"] == "open" and args.token_command != "list":
        print(
            "motey: note: this node runs with [SECURITY] mode = open and asks for no token;"
            " its tokens count once mode = secure",
            file=sys.stderr,
        )
    try:
        if args.token_command == "create":
            record, token = admin.create(args.name, args.role)
            audit.record(
                who=_who(), what=f"token create {record.name}", result="ok", role=record.role
            )
            print(
                f"token {record.name!r} ({record.role}) created; it is shown only this once:",
                file=sys.stderr,
            )
            print(token)
        elif args.token_command == "list":
            _print_list(admin.all())
        else:
            admin.revoke(args.name)
            audit.record(who=_who(), what=f"token revoke {args.name}", result="ok")
            print(f"token {args.name!r} revoked")
    except (MoteyError, OSError) as exc:
        message = exc.message if isinstance(exc, MoteyError) else str(exc)
        print(f"motey: error: {message}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _print_list(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no tokens; create one with: motey token create --name NAME --role ROLE")
        return
    width = max(4, *(len(r["name"]) for r in rows))
    print(f"{'NAME':<{width}}  {'ROLE':<8}  {'SOURCE':<6}  CREATED")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['role']:<8}  {r['source']:<6}  {r['created']}")


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
