#!/usr/bin/env python3
"""A cell of N real nodes and one broker on loopback: what grows with N (issue 12).

For each N of ``--nodes`` (default 10 25 50 100) a Mosquitto broker and N ``motey run``
processes are started (the test suite's ``MoteyNode``; open mode, or with ``--secure`` a
secure cell with the test cell's CA and a TLS broker; ``[MQTT] keepalive``
and ``presence_interval`` as given, log level INFO), five of them with the capability
``bench``. Then, in this order:

* **join**: one more node starts; the time from its REST API answering ``OPERATE``
  until every other node lists it as reachable and operating (each node's
  ``GET /v1/nodes`` is polled by 8 threads), and how many nodes saw it by then;
* **idle**: for ``--idle`` seconds nothing happens; CPU % and RSS of every node process
  and of the broker (psutil), and the messages per second one subscriber of
  ``motey/#`` receives (what every node receives);
* **false alarms**: "... marked unreachable" lines of discovery in all node logs;
* **crash**: the joined node is killed with SIGKILL; the time until every node lists it
  unreachable or not at all (the bound is the broker's 1.5 × keepalive);
* **placement**: ``--services`` services of 4 images (each needs ``bench``, which 5
  nodes have) are posted to a node without it, all at once from 8 threads; images per
  second until all are RUNNING, and the spread over the 5 nodes (max / mean);
* **shutdown**: ``--stops`` idle nodes get SIGTERM; the time until each exits.

``--source DIR`` runs the nodes from another source tree (``git archive <commit> | tar
-x -C DIR``) to measure the code before a change. Every node and broker is stopped by
its PID; every container a node started is removed (by the node's label). ``--json``
writes the raw numbers; ``plot_cluster.py`` draws them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import docker  # noqa: E402
import psutil  # noqa: E402

from tests.cluster_helpers import RawMQTT  # noqa: E402
from tests.helpers import TEST_IMAGE, Mosquitto, MoteyNode, unique_name  # noqa: E402

#: False alarms: the stale sweep's line (before docs/scale.md's reconciliation) and the
#: reconciliation's own (after a broker reconnect; there is none in this benchmark).
SILENT = re.compile(r"silent for [0-9.]+ s: marked unreachable|came back: marked unreachable")


def node_extra(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return {
        "SECURITY": {} if args.secure else {"mode": "open"},
        "LOGGER": {"level": "INFO"},
        "MQTT": {"keepalive": args.keepalive, "presence_interval": args.presence},
        "ORCHESTRATOR": {"watch_interval": 2, "placement_timeout": 5},
        "ZEROMQ": {"request_timeout": 5},
    }


def listed(node: MoteyNode) -> dict[str, dict[str, Any]]:
    """The node's node list by address (empty when it does not answer)."""
    try:
        return {n["ip"]: n for n in node.get("/v1/nodes", timeout=5).json()}
    except Exception:
        return {}


def start_all(nodes: list[MoteyNode], batch: int) -> None:
    """Start in batches (each waits until its nodes operate): start-up is CPU-bound."""
    for i in range(0, len(nodes), batch):
        group = nodes[i : i + batch]
        for node in group:
            node.start(wait=False)
        for node in group:
            node.wait_ready(timeout=180)


def until_all(nodes: list[MoteyNode], seen: Any, timeout: float) -> tuple[float | None, int]:
    """Seconds until ``seen(list)`` holds on every node, polled in parallel; and how many."""
    began = time.monotonic()
    done: dict[str, float] = {}
    lock = threading.Lock()

    def watch(node: MoteyNode) -> None:
        while time.monotonic() - began < timeout:
            if seen(listed(node)):
                with lock:
                    done[node.ip] = time.monotonic() - began
                return
            time.sleep(0.05)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(watch, nodes))
    if len(done) < len(nodes):
        return None, len(done)
    return max(done.values()), len(done)


def remove_containers(client: docker.DockerClient, nodes: list[MoteyNode]) -> None:
    for node in nodes:
        if node.node_id:
            for c in client.containers.list(
                all=True, filters={"label": f"motey.node_id={node.node_id}"}
            ):
                c.remove(force=True)


def idle(nodes: list[MoteyNode], broker: Mosquitto, seconds: float) -> dict[str, Any]:
    procs = [psutil.Process(n.process.pid) for n in nodes if n.process is not None]
    broker_proc = psutil.Process(broker.process.pid) if broker.process else None
    raw = RawMQTT(broker.ip, broker.port)
    try:
        # The retained presences a new subscriber gets are not traffic: wait them out.
        deadline = time.monotonic() + 10
        while len(raw.messages) < len(nodes) and time.monotonic() < deadline:
            time.sleep(0.05)
        before = [p.cpu_times() for p in procs]
        broker_before = broker_proc.cpu_times() if broker_proc else None
        raw.drain()
        began = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - began
        received = len(raw.messages)
        after = [p.cpu_times() for p in procs]
        cpu = [
            100 * ((a.user + a.system) - (b.user + b.system)) / wall
            for a, b in zip(after, before, strict=True)
        ]
        rss = [p.memory_info().rss / 2**20 for p in procs]
        broker_cpu = None
        if broker_proc and broker_before:
            a = broker_proc.cpu_times()
            broker_cpu = 100 * ((a.user + a.system) - (broker_before.user + broker_before.system))
            broker_cpu /= wall
    finally:
        raw.close()
    return {
        "cpu_per_node_mean": statistics.mean(cpu),
        "cpu_per_node_max": max(cpu),
        "cpu_all_nodes": sum(cpu),
        "rss_mib_mean": statistics.mean(rss),
        "broker_cpu": broker_cpu,
        "messages_per_s_per_subscriber": received / wall,
    }


def placement(
    submitter: MoteyNode, qualified: list[MoteyNode], services: int, timeout: float
) -> dict[str, Any]:
    image = (
        f"  - name: {TEST_IMAGE}\n"
        '    parameters: {command: "sleep 3600"}\n    capabilities: [bench]\n'
    )

    def post(_i: int) -> str:
        text = f"service_name: {unique_name('scale')}\nimages:\n" + image * 4
        response = submitter.post_yaml(text)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(post, range(services)))
    states: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for sid in ids:
            if states.get(sid) not in ("RUNNING", "ERROR"):
                states[sid] = submitter.service(sid)["state"]
        if all(s in ("RUNNING", "ERROR") for s in states.values()) and len(states) == len(ids):
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - began
    per_node: dict[str, int] = {n.ip: 0 for n in qualified}
    errors = 0
    for sid in ids:
        for img in submitter.service(sid)["images"]:
            if img.get("state") == "RUNNING" and img.get("node") in per_node:
                per_node[img["node"]] += 1
            elif img.get("state") != "RUNNING":
                errors += 1
    placed = sum(per_node.values())
    mean = placed / len(per_node) if per_node else 0
    return {
        "images": 4 * services,
        "running": placed,
        "errors": errors,
        "seconds": elapsed,
        "images_per_s": placed / elapsed if elapsed else None,
        "per_node": sorted(per_node.values(), reverse=True),
        "max_over_mean": (max(per_node.values()) / mean) if mean else None,
    }


def shutdown(nodes: list[MoteyNode]) -> list[float]:
    times = []
    for node in nodes:
        assert node.process is not None
        began = time.monotonic()
        node.stop(timeout=30)
        times.append(time.monotonic() - began)
    return times


def run_cell(n: int, workdir: Path, client: docker.DockerClient, args: argparse.Namespace) -> dict:
    broker = Mosquitto(workdir / "mosquitto", secure=args.secure).start()
    mqtt = (broker.ip, broker.port)
    extra = node_extra(args)
    nodes: list[MoteyNode] = []
    result: dict[str, Any] = {"nodes": n}
    try:
        for i in range(n):
            caps = ["bench"] if 1 <= i <= 5 else []
            nodes.append(
                MoteyNode(workdir, name=f"n{n}-{i}", mqtt=mqtt, capabilities=caps, extra=extra)
            )
        began = time.monotonic()
        start_all(nodes, args.batch)
        ips = {node.ip for node in nodes}
        settle, count = until_all(nodes, lambda lst: len(set(lst) & ips) >= n - 1, 120)
        result["start_all_s"] = time.monotonic() - began
        result["settled_s"] = settle
        result["settled_nodes"] = count

        joiner = MoteyNode(workdir, name=f"n{n}-join", mqtt=mqtt, extra=extra)
        joiner.start(wait=False)
        joiner.wait_ready(timeout=120)

        def sees_joiner(lst: dict[str, dict[str, Any]]) -> bool:
            entry = lst.get(joiner.ip)
            return bool(entry and entry["state"] == "REACHABLE" and entry["lifecycle"] == "OPERATE")

        result["join_s"], result["join_seen_by"] = until_all(nodes, sees_joiner, 30)

        result["idle"] = idle(nodes, broker, args.idle)

        joiner.kill()

        def lost_joiner(lst: dict[str, dict[str, Any]]) -> bool:
            entry = lst.get(joiner.ip)
            return bool(lst) and (entry is None or entry["state"] != "REACHABLE")

        result["crash_s"], result["crash_seen_by"] = until_all(
            nodes, lost_joiner, 3 * args.keepalive + 20
        )

        if args.services:
            result["placement"] = placement(nodes[0], nodes[1:6], args.services, 600)

        alarms = 0
        for node in nodes:
            alarms += len(SILENT.findall(node.log_file.read_text(errors="replace")))
        result["false_alarms"] = alarms

        idle_nodes = nodes[-args.stops :]
        result["shutdown_s"] = shutdown(idle_nodes)
        nodes = nodes[: -args.stops]
        nodes.append(joiner)
    finally:

        def stop(node: MoteyNode) -> None:
            with contextlib.suppress(AssertionError):
                node.stop(timeout=30)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(stop, nodes))
        remove_containers(client, nodes)
        broker.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 25, 50, 100])
    parser.add_argument("--source", help="run the nodes from this source tree")
    parser.add_argument("--label", default="after", help="name of this run in the JSON")
    parser.add_argument(
        "--secure", action="store_true", help="a secure cell (TLS broker, CURVE, tokens)"
    )
    parser.add_argument("--keepalive", type=int, default=10)
    parser.add_argument("--presence", type=float, default=10.0)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--services", type=int, default=10, help="services of 4 images")
    parser.add_argument("--stops", type=int, default=3, help="nodes whose shutdown is timed")
    parser.add_argument("--batch", type=int, default=10, help="nodes started at once")
    parser.add_argument("--json", help="append the results to this JSON file")
    args = parser.parse_args()
    if args.source:
        os.environ["PYTHONPATH"] = str(Path(args.source).resolve())
    client = docker.from_env()
    results: dict[str, Any] = {
        "label": args.label,
        "source": args.source or str(REPO),
        "load_before": os.getloadavg(),
        "cpus": os.cpu_count(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("json",)},
        "cells": [],
    }
    for n in args.nodes:
        with tempfile.TemporaryDirectory(prefix=f"motey-cell{n}-") as tmp:
            began = time.time()
            cell = run_cell(n, Path(tmp), client, args)
            cell["load"] = os.getloadavg()
            cell["wall_s"] = time.time() - began
            results["cells"].append(cell)
            print(json.dumps(cell), flush=True)
    results["load_after"] = os.getloadavg()
    if args.json:
        path = Path(args.json)
        existing = json.loads(path.read_text()) if path.exists() else []
        existing.append(results)
        path.write_text(json.dumps(existing, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
