#!/usr/bin/env python3
"""Tell the Motey node on this machine that a capability appeared or disappeared.

A hardware-event publisher for operators and tests, with the options of the original
Motey's script. It connects to the node's ZeroMQ IPC socket, waits until the node's
subscription has arrived (a PUB socket silently drops what it sends before that, so a
fixed sleep either wastes time or loses the message), sends one message and exits.

Exit codes: 0 the message was handed to the node, 1 no node subscribed within
``--timeout`` seconds (nothing was sent) or a ZeroMQ error, 2 wrong usage, 130 interrupted.

The script needs only pyzmq and the standard library, so it runs on a node where Motey
is installed as a package or in a container; the name rule below repeats the one of
``motey.schemas.capability`` for that reason.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

import zmq

DEFAULT_IPC_PATH = "/tmp/motey/capability_engine.ipc"
DEFAULT_TYPE = "capabilityevent"
TOPICS = ("add_capability", "remove_capability", "capabilityevent")
# The rule of motey/schemas/capability.py (this script needs only pyzmq, not motey).
NAME_PATTERN = re.compile(r"^(?=.{1,128}$)[A-Za-z0-9_.:/-]+(?: [A-Za-z0-9_.:/-]+)*$")
EXIT_OK, EXIT_NOT_DELIVERED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _version() -> str:
    try:
        from motey import __version__
    except ImportError:
        return "addcapability (Motey)"
    return f"addcapability (Motey {__version__})"


def _capability_name(text: str) -> str:
    if not NAME_PATTERN.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a capability name (letters, digits and _.:/- in words "
            "separated by single spaces, at most 128)"
        )
    return text


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="addcapability.py",
        description="Send a capability event to the Motey node on this machine.",
        epilog=(
            "examples: addcapability.py --capability=zigbee --type=hardware ; "
            "addcapability.py --capability=zigbee --action=remove ; "
            "exit codes: 0 delivered, 1 no node listening (nothing sent), 2 usage, "
            "130 interrupted"
        ),
    )
    parser.add_argument(
        "--capability", required=True, type=_capability_name, help="capability name, e.g. zigbee"
    )
    parser.add_argument(
        "--type",
        default=DEFAULT_TYPE,
        help=f"capability type, e.g. hardware (default: {DEFAULT_TYPE}, as the original)",
    )
    parser.add_argument(
        "--action",
        choices=("add", "remove"),
        help="add (default) or remove; implied by --topic add_capability/remove_capability",
    )
    parser.add_argument("--value", help="optional value, e.g. 2 for --capability=camera")
    parser.add_argument(
        "--topic",
        choices=TOPICS,
        help="message topic (default: add_capability or remove_capability by --action; "
        "capabilityevent sends the thesis' form with the action inside the entry)",
    )
    parser.add_argument(
        "--ipc-path",
        default=DEFAULT_IPC_PATH,
        help=f"the node's [ZEROMQ] capability_engine_ipc_path (default: {DEFAULT_IPC_PATH})",
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=5.0,
        help="seconds to wait for the node to be listening (default: 5)",
    )
    parser.add_argument("--version", action="version", version=_version())
    return parser


def build_message(args: argparse.Namespace) -> tuple[str, bytes]:
    """The topic and the one frame ``<topic>#<json>`` to send."""
    implied = {"add_capability": "add", "remove_capability": "remove"}.get(args.topic or "")
    if implied and args.action not in (None, implied):
        raise ValueError(f"--topic={args.topic} contradicts --action={args.action}")
    action = args.action or implied or "add"
    topic = args.topic or f"{action}_capability"
    entry: dict[str, Any] = {"capability": args.capability, "capability_type": args.type}
    if args.value is not None:
        entry["value"] = args.value
    if topic == "capabilityevent":
        entry["action"] = action
    return topic, f"{topic}#{json.dumps([entry])}".encode()


def send(endpoint: str, topic: str, message: bytes, timeout: float) -> bool:
    """Send ``message`` once a subscriber for ``topic`` is connected; ``False`` if none came.

    An XPUB socket is a PUB socket that also hands over the subscriptions it receives;
    seeing the node's subscription is proof that what follows will be delivered.
    """
    context = zmq.Context()
    sock = context.socket(zmq.XPUB)
    try:
        sock.setsockopt(zmq.LINGER, int(timeout * 1000))
        sock.connect(endpoint)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not dict(poller.poll(int(left * 1000) + 1)):
                continue
            frame = sock.recv()
            if frame[:1] == b"\x01" and message.startswith(frame[1:]):
                break
        sock.send(message)
        return True
    finally:
        sock.close()  # waits up to LINGER for the message to leave
        context.term()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        topic, message = build_message(args)
    except ValueError as exc:
        parser.error(str(exc))
    path = args.ipc_path
    endpoint = path if path.startswith("ipc://") else f"ipc://{path}"
    try:
        delivered = send(endpoint, topic, message, args.timeout)
    except zmq.ZMQError as exc:
        print(f"addcapability.py: error: {endpoint}: {exc}", file=sys.stderr)
        return EXIT_NOT_DELIVERED
    except KeyboardInterrupt:
        print("addcapability.py: interrupted; nothing sent", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not delivered:
        print(
            f"addcapability.py: error: no Motey node subscribed at {endpoint} within "
            f"{args.timeout:g}s; nothing sent (is the node running with this "
            "[ZEROMQ] capability_engine_ipc_path?)",
            file=sys.stderr,
        )
        return EXIT_NOT_DELIVERED
    print(f"sent {message.decode()} to {endpoint}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
