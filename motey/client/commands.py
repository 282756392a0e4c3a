"""The client commands of ``motey``: deploy, services, service, terminate, nodes,
capabilities, logs. Each talks to one node's REST API (see :mod:`motey.client.rest`).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from motey.client.output import Progress, print_table, short
from motey.client.rest import (
    EXIT_FAILED,
    EXIT_INPUT,
    ClientError,
    NodeClient,
)

COMPOSE_TYPE = "application/compose+yaml"
BLUEPRINT_TYPE = "application/x-yaml"

EXAMPLES = {
    "deploy": """examples:
  motey deploy blueprint.yaml --wait           # follow placement until RUNNING
  motey deploy docker-compose.yml --wait -o json --timeout 120
  MOTEY_ADDR=https://10.0.0.5:5023 MOTEY_TOKEN=... MOTEY_CACERT=ca.pem motey deploy f.yaml

exit codes: 0 accepted (with --wait: RUNNING), 1 ERROR or timeout,
            2 invalid file, 3 node unreachable, 4 bad token or not allowed""",
    "services": """examples:
  motey services                 # the services this node owns
  motey services --cell          # every owner's services, each with its owner
  motey services -o json | jq '.[].state'""",
    "service": """examples:
  motey service 3f2a             # by id, id prefix or name
  motey service camera -o json""",
    "terminate": """examples:
  motey terminate camera --wait""",
    "nodes": """examples:
  motey nodes --node http://127.0.1.2:5023""",
    "capabilities": """examples:
  motey capabilities                     # list this node's capabilities
  motey capabilities add zigbee          # add one (source rest)
  motey capabilities remove zigbee""",
    "logs": """examples:
  motey logs camera                      # the output of its only image
  motey logs camera web --tail 20        # one image, by name, id or Compose service
  motey logs camera --follow             # keep printing new lines (Ctrl-C ends)""",
}

HELP = {
    "deploy": "deploy a blueprint or a Compose file (and follow it with --wait)",
    "services": "list services (this node's, or the whole cell's with --cell)",
    "service": "show one service with its images",
    "terminate": "terminate a service (and wait for it with --wait)",
    "nodes": "list the nodes the node knows",
    "capabilities": "list, add or remove the node's capabilities",
    "logs": "print (or follow) the output of a service's image",
}


def register(sub: Any) -> None:
    """Add the client commands to the ``motey`` parser's subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--node",
        metavar="URL",
        default=None,
        help="the node's REST address (default: $MOTEY_ADDR or http://127.0.0.1:5023)",
    )
    common.add_argument(
        "--token", default=None, help="bearer token (default: $MOTEY_TOKEN); CA: $MOTEY_CACERT"
    )
    common.add_argument(
        "-o",
        "--output",
        choices=("table", "json"),
        default="table",
        help="table for people (default), json for scripts",
    )

    def add(name: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name,
            help=HELP[name],
            description=HELP[name],
            epilog=EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )
        parser.set_defaults(client=globals()[f"cmd_{name}"])
        return parser

    deploy = add("deploy")
    deploy.add_argument("file", help="blueprint or Compose file ('-' reads standard input)")
    deploy.add_argument("--wait", action="store_true", help="follow until RUNNING or ERROR")
    deploy.add_argument("--timeout", type=float, default=300.0, help="seconds (default: 300)")
    deploy.add_argument("--name", help="service name of a Compose file without name:")
    services = add("services")
    services.add_argument("--cell", action="store_true", help="every owner's services")
    add("service").add_argument("service", help="id, id prefix or name")
    terminate = add("terminate")
    terminate.add_argument("service", help="id, id prefix or name")
    terminate.add_argument("--wait", action="store_true", help="wait until TERMINATED")
    terminate.add_argument("--timeout", type=float, default=120.0, help="seconds (default: 120)")
    add("nodes")
    caps = add("capabilities")
    caps.add_argument("action", nargs="?", choices=("add", "remove"))
    caps.add_argument("name", nargs="?", help="capability name (NAME or NAME=VALUE)")
    caps.add_argument("--type", default="hardware", help="capability_type (default: hardware)")
    logs = add("logs")
    logs.add_argument("service", help="id, id prefix or name")
    logs.add_argument("image", nargs="?", help="image id, name or Compose service")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("--tail", default=None, help="only the last N lines")


def run(args: argparse.Namespace) -> int:
    """Run the client command chosen on the command line; one line on stderr on failure."""
    try:
        client = NodeClient(args.node, args.token)
        return int(args.client(client, args))
    except ClientError as exc:
        print(f"motey: error: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


# -- helpers ---------------------------------------------------------------------------


def _dump(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _find_service(client: NodeClient, ref: str) -> dict[str, Any]:
    """A service by exact id, then unique id prefix, then name (the newest active one)."""
    services = client.get_json("/v1/service")
    for service in services:
        if service["id"] == ref:
            return dict(service)
    prefixed = [s for s in services if s["id"].startswith(ref)]
    if len(prefixed) == 1:
        return dict(prefixed[0])
    named = [s for s in services if s.get("service_name") == ref]
    active = [s for s in named if s.get("state") != "TERMINATED"] or named
    if active:
        return dict(active[-1])
    raise ClientError(f"no service {ref!r} on {client.base}{_owner_hint(client, ref)}")


def _owner_hint(client: NodeClient, ref: str) -> str:
    """Where a service this node does not own lives, if another owner has it."""
    try:
        cell = client.get_json("/v1/service?scope=cell")
    except ClientError:
        return " (motey services lists them)"
    for service in cell.get("services") or []:
        if service["id"].startswith(ref) or service.get("service_name") == ref:
            owner = service.get("owner") or {}
            port = owner.get("api_port") or 5023
            return (
                f"; it is owned by {owner.get('name') or owner.get('ip')}: use "
                f"--node http://{owner.get('ip')}:{port}"
            )
    return " (motey services --cell lists every owner's)"


def _image_label(image: dict[str, Any]) -> str:
    labels = (image.get("parameters") or {}).get("labels") or {}
    return str(labels.get("com.docker.compose.service") or image.get("name"))


def _read_file(path: str) -> tuple[bytes, str, str | None]:
    """The file's bytes, its content type (blueprint or Compose) and a Compose name."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror or exc}", EXIT_INPUT) from exc
    try:
        parsed = yaml.safe_load(data.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClientError(f"invalid file {path}: not YAML ({first})", EXIT_INPUT) from exc
    if not isinstance(parsed, dict):
        raise ClientError(
            f"invalid file {path}: neither a blueprint (service_name, images) nor a Compose "
            "file (services)",
            EXIT_INPUT,
        )
    if "images" not in parsed and isinstance(parsed.get("services"), dict):
        project = Path(os.path.abspath(path)).parent.name if path != "-" else "compose"
        return data, COMPOSE_TYPE, project
    return data, BLUEPRINT_TYPE, None


class _EventFeed:
    """Events from ``/v1/events`` in a background thread; ``None`` when unavailable."""

    def __init__(self, client: NodeClient) -> None:
        self.queue: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.ok = threading.Event()
        self.failed = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(client,), daemon=True)
        self._thread.start()
        # Subscribe before the request, so no change is missed; a node without the
        # stream (an original one, or all streams busy) is polled instead.
        deadline = time.monotonic() + 3.0
        while not (self.ok.is_set() or self.failed.is_set()) and time.monotonic() < deadline:
            self.ok.wait(0.02)
        if not self.ok.is_set():
            self.failed.set()

    def _run(self, client: NodeClient) -> None:
        try:
            for kind, data in client.events(timeout=3600, opened=self.ok):
                self.queue.put((kind, data))
        except ClientError:
            pass
        self.failed.set()
        self.queue.put(("closed", {}))


def _follow(
    client: NodeClient,
    service_id: str,
    until: tuple[str, ...],
    timeout: float,
    progress: Progress,
    feed: _EventFeed | None,
) -> dict[str, Any]:
    """Show the service's changes until its state is one of ``until``, ERROR, or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        service = client.get_json(f"/v1/service/{service_id}")
        progress.update(service)
        if service["state"] in until or service["state"] == "ERROR":
            return dict(service)
        if service["state"] == "TERMINATED":
            return dict(service)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ClientError(
                f"service {service['service_name']} ({service_id}) is still "
                f"{service['state']} after {timeout:g} s: {service.get('state_message') or ''}",
                EXIT_FAILED,
            )
        if feed is None or feed.failed.is_set():
            time.sleep(min(0.5, remaining))
            continue
        # Wait for an event about this service (or a second, as a safety net).
        end = time.monotonic() + min(1.0, remaining)
        while time.monotonic() < end:
            try:
                kind, data = feed.queue.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            if data.get("id") == service_id or data.get("service_id") == service_id:
                break
            if kind == "closed":
                break


# -- commands --------------------------------------------------------------------------


def cmd_deploy(client: NodeClient, args: argparse.Namespace) -> int:
    body, content_type, project = _read_file(args.file)
    path = "/v1/service"
    name = args.name or project
    if content_type == COMPOSE_TYPE and name:
        from urllib.parse import quote

        path += f"?name={quote(name)}"
    feed = _EventFeed(client) if args.wait else None
    created = client.request("POST", path, body=body, content_type=content_type).json()
    progress = Progress(sys.stderr if args.output == "json" else sys.stdout)
    progress.line(f"service {created['service_name']} ({created['id']}) accepted by {client.base}")
    if not args.wait:
        if args.output == "json":
            _dump(created)
        return 0
    service = _follow(client, created["id"], ("RUNNING",), args.timeout, progress, feed)
    progress.done()
    if args.output == "json":
        _dump(service)
    if service["state"] == "RUNNING":
        progress.line(f"service {service['service_name']} is RUNNING")
        return 0
    print(
        f"motey: error: service {service['service_name']} is {service['state']}: "
        f"{service.get('state_message') or 'no reason given'}",
        file=sys.stderr,
    )
    return EXIT_FAILED


def cmd_services(client: NodeClient, args: argparse.Namespace) -> int:
    if not args.cell:
        services = client.get_json("/v1/service")
        if args.output == "json":
            _dump(services)
            return 0
        rows = [
            [s["id"][:8], s["service_name"], s["state"], str(len(s["images"])), short(s)]
            for s in services
        ]
        print_table(["ID", "NAME", "STATE", "IMAGES", "MESSAGE"], rows)
        return 0
    cell = client.get_json("/v1/service?scope=cell")
    if args.output == "json":
        _dump(cell)
    else:
        rows = [
            [
                s["id"][:8],
                s["service_name"],
                s["state"],
                (s.get("owner") or {}).get("name") or (s.get("owner") or {}).get("ip") or "",
                short(s),
            ]
            for s in cell["services"]
        ]
        print_table(["ID", "NAME", "STATE", "OWNER", "MESSAGE"], rows)
    silent = [o for o in cell["owners"] if not o.get("answered")]
    for owner in silent:
        print(
            f"motey: warning: owner {owner.get('name') or owner.get('ip')} ({owner.get('ip')}) "
            f"did not answer: {owner.get('message')}",
            file=sys.stderr,
        )
    return EXIT_FAILED if silent else 0


def cmd_service(client: NodeClient, args: argparse.Namespace) -> int:
    service = _find_service(client, args.service)
    if args.output == "json":
        _dump(service)
        return 0
    print(f"{service['service_name']}  {service['id']}")
    print(f"state: {service['state']}  {service.get('state_message') or ''}".rstrip())
    rows = [
        [
            i["id"][:8],
            _image_label(i),
            i["name"],
            i.get("node") or "-",
            i["state"],
            i.get("state_message") or "",
        ]
        for i in service["images"]
    ]
    print_table(["IMAGE", "SERVICE", "REFERENCE", "NODE", "STATE", "MESSAGE"], rows)
    return 0


def cmd_terminate(client: NodeClient, args: argparse.Namespace) -> int:
    service = _find_service(client, args.service)
    feed = _EventFeed(client) if args.wait else None
    client.request("DELETE", f"/v1/service/{service['id']}")
    progress = Progress(sys.stderr if args.output == "json" else sys.stdout)
    progress.line(f"service {service['service_name']} ({service['id']}) is stopping")
    if not args.wait:
        return 0
    final = _follow(client, service["id"], ("TERMINATED",), args.timeout, progress, feed)
    progress.done()
    if args.output == "json":
        _dump(final)
    if final["state"] == "TERMINATED":
        return 0
    print(
        f"motey: error: service {final['service_name']} is {final['state']}: "
        f"{final.get('state_message') or ''}",
        file=sys.stderr,
    )
    return EXIT_FAILED


def cmd_nodes(client: NodeClient, args: argparse.Namespace) -> int:
    nodes = client.get_json("/v1/nodes")
    if args.output == "json":
        _dump(nodes)
        return 0
    rows = [
        [
            ("*" if n.get("self") else "") + str(n.get("name") or ""),
            n.get("ip") or "",
            n.get("state") or "",
            n.get("lifecycle") or "",
            "" if n.get("load") is None else f"{n['load']:.2f}",
            ", ".join(c.get("capability", "") for c in n.get("capabilities") or [])[:60],
        ]
        for n in nodes
    ]
    print_table(["NAME", "IP", "STATE", "LIFECYCLE", "LOAD", "CAPABILITIES"], rows)
    return 0


def cmd_capabilities(client: NodeClient, args: argparse.Namespace) -> int:
    if args.action:
        if not args.name:
            raise ClientError(f"capabilities {args.action} needs a NAME", EXIT_INPUT)
        method = "PUT" if args.action == "add" else "DELETE"
        entry = [{"capability": args.name, "capability_type": args.type}]
        client.request(method, "/v1/capabilities", json.dumps(entry).encode(), "application/json")
    caps = client.get_json("/v1/capabilities")
    if args.output == "json":
        _dump(caps)
        return 0
    rows = [
        [
            c["capability"],
            c.get("capability_type") or "",
            "" if c.get("value") is None else str(c["value"]),
            c.get("source") or "",
        ]
        for c in caps
    ]
    print_table(["CAPABILITY", "TYPE", "VALUE", "SOURCE"], rows)
    return 0


def cmd_logs(client: NodeClient, args: argparse.Namespace) -> int:
    service = _find_service(client, args.service)
    images = service["images"]
    if args.image:
        chosen = [
            i
            for i in images
            if args.image in (i["id"], i["name"], _image_label(i)) or i["id"].startswith(args.image)
        ]
        if not chosen:
            names = ", ".join(_image_label(i) for i in images)
            raise ClientError(
                f"service {service['service_name']} has no image {args.image!r} (it has: {names})",
                EXIT_INPUT,
            )
    else:
        chosen = images
    if args.tail is not None and not str(args.tail).isdigit():
        raise ClientError("--tail must be a number of lines", EXIT_INPUT)
    query = f"?tail={args.tail}" if args.tail is not None else "?tail=all"
    if args.follow:
        if len(chosen) != 1:
            names = ", ".join(_image_label(i) for i in chosen)
            raise ClientError(f"--follow needs one image; choose one of: {names}", EXIT_INPUT)
        path = f"/v1/service/{service['id']}/images/{chosen[0]['id']}/logs{query}&follow=1"
        for kind, data in client.sse(path, timeout=24 * 3600):
            if kind == "end":
                print(f"motey: log stream ended: {json.loads(data)}", file=sys.stderr)
                break
            print(data, flush=True)
        return 0
    collected = []
    for image in chosen:
        path = f"/v1/service/{service['id']}/images/{image['id']}/logs{query}"
        reply = client.request("GET", path)
        text = reply.body.decode("utf-8", errors="replace")
        truncated = reply.headers.get("X-Motey-Truncated") == "1"
        collected.append(
            {
                "image": image["id"],
                "name": _image_label(image),
                "truncated": truncated,
                "lines": text.splitlines(),
            }
        )
        if args.output == "json":
            continue
        prefix = f"{_image_label(image)} | " if len(chosen) > 1 else ""
        if truncated:
            print(f"{prefix}[motey: older lines left out]", file=sys.stderr)
        for line in text.splitlines():
            print(prefix + line)
    if args.output == "json":
        _dump(collected)
    return 0
