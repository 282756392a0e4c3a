"""``motey cell init|add-node|revoke``: the operator's commands for a secure cell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from motey.errors import MoteyError

EXIT_OK = 0
EXIT_FAILURE = 1


def register(sub: Any) -> None:
    """Add the ``cell`` command to the ``motey`` parser's subcommands."""
    cell = sub.add_parser(
        "cell",
        help="create a secure cell and issue or revoke node credentials",
        description="Create a cell (CA, broker config, admin token) and manage its nodes.",
    )
    cell.set_defaults(handler=lambda args: cell.print_help() or EXIT_FAILURE)
    actions = cell.add_subparsers(dest="cell_command", metavar="ACTION")
    init = actions.add_parser(
        "init", help="create the cell CA, the broker's TLS files and the admin token"
    )
    init.add_argument("--dir", required=True, type=Path, help="the cell folder to create")
    init.add_argument(
        "--broker",
        metavar="HOST[:PORT]",
        help="the MQTT broker's address (default: this machine's address, port 8883)",
    )
    init.set_defaults(handler=_init)
    add = actions.add_parser("add-node", help="issue one node's credentials folder")
    add.add_argument("--dir", required=True, type=Path, help="the cell folder")
    add.add_argument("--name", required=True, help="the node's name (its identity in the cell)")
    add.add_argument("--ip", required=True, help="the node's IPv4 address ([NODE] ip)")
    add.add_argument("--out", type=Path, help="credentials folder (default: DIR/nodes/NAME)")
    add.set_defaults(handler=_add_node)
    revoke = actions.add_parser(
        "revoke", help="revoke a node: its peers and the broker stop trusting it"
    )
    revoke.add_argument("--dir", required=True, type=Path, help="the cell folder")
    revoke.add_argument("--name", required=True, help="the node to revoke")
    revoke.add_argument(
        "--broker",
        metavar="HOST[:PORT]",
        help="where to publish the revocation list (default: the cell's broker)",
    )
    revoke.add_argument(
        "--no-publish",
        action="store_true",
        help="only write DIR/revocations.json and DIR/crl.pem, do not publish to the broker",
    )
    revoke.set_defaults(handler=_revoke)


def run(args: argparse.Namespace) -> int:
    """Run a ``cell`` action; errors are one line on stderr."""
    try:
        return int(args.handler(args))
    except MoteyError as exc:
        print(f"motey: error: {exc.message}", file=sys.stderr)
        return EXIT_FAILURE
    except (OSError, ValueError) as exc:
        print(f"motey: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _init(args: argparse.Namespace) -> int:
    from motey.security.cell import Cell

    cell, token = Cell.init(args.dir, args.broker)
    info = cell.info
    print(f"created cell {info['name']!r} in {cell.dir}")
    print(f"  CA certificate: {cell.dir / 'ca.crt'} (the CA key ca.key never leaves this folder)")
    print(f"  broker: {info['broker_host']}:{info['broker_port']}, start it with")
    print(f"    mosquitto -c {cell.dir / 'broker' / 'mosquitto.conf'}")
    print(f"  admin API token (shown once; also in {cell.dir / 'admin.token'}, mode 0600):")
    print(f"    {token}")
    print(f"next: motey cell add-node --dir {cell.dir} --name NAME --ip IP")
    return EXIT_OK


def _add_node(args: argparse.Namespace) -> int:
    from motey.security.cell import Cell

    cell = Cell(args.dir.resolve())
    folder = cell.add_node(args.name, args.ip, args.out)
    print(f"issued credentials of node {args.name!r} ({args.ip}) into {folder}")
    print("copy that folder to the node (it holds only the node's own keys) and put in its")
    print("config.ini:\n")
    print(cell.config_lines(args.name, args.ip, folder))
    return EXIT_OK


def _revoke(args: argparse.Namespace) -> int:
    from motey.communication.mqtt_tls import publish_retained
    from motey.security.cell import Cell, parse_broker
    from motey.security.revocation import TOPIC_REVOCATIONS

    cell = Cell(args.dir.resolve())
    document = cell.revoke(args.name)
    print(f"revoked node {args.name!r}: {cell.dir / 'revocations.json'}, {cell.dir / 'crl.pem'}")
    if args.no_publish:
        print("not published; running nodes learn it when it is published on the broker")
        return EXIT_OK
    info = cell.info
    host, port = (
        parse_broker(args.broker) if args.broker else (info["broker_host"], info["broker_port"])
    )
    publish_retained(
        host,
        int(port),
        str(cell.dir / "ca.crt"),
        str(cell.dir / "admin" / "admin.crt"),
        str(cell.dir / "admin" / "admin.key"),
        TOPIC_REVOCATIONS,
        document,
    )
    print(f"published on {host}:{port}: every node drops it now")
    print("restart the broker (or send it SIGHUP) so that it reloads crl.pem and refuses the")
    print("node's TLS connections too")
    return EXIT_OK
