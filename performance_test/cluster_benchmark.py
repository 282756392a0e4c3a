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
* join and crash are also timed without polling: every node's ``/v1/events`` stream is
  open around them, and the last node's own event time (``at``, this machine's clock)
  is compared with the moment of the SIGKILL (``crash_event_s``) or of the joiner's
  REST API answering (``join_event_s``);
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


class EventStreams:
    """Every node's ``GET /v1/events``, each read by a thread of its own.

    Polling ``GET /v1/nodes`` bounds a propagation time by the time one polling round
    takes (1.5 s over HTTPS at 100 nodes). A node's event carries ``at``, the node's own
    wall clock when it noticed the change (all nodes share this machine's clock), so
    "the last node noticed it at" is exact however slowly the streams are read. Open
    only around the action measured: a stream wakes its node 4 times a second.
    """

    def __init__(self, nodes: list[MoteyNode]) -> None:
        self._nodes = nodes
        self._lock = threading.Lock()
        self._events: dict[str, list[dict[str, Any]]] = {n.ip: [] for n in nodes}
        self._stop = threading.Event()
        self._connected = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> EventStreams:
        for node in self._nodes:
            thread = threading.Thread(target=self._read, args=(node,), daemon=True)
            thread.start()
            self._threads.append(thread)
        for _ in self._nodes:  # every subscription exists before the action
            if not self._connected.acquire(timeout=60):
                raise RuntimeError("an event stream did not open within 60 s")
        return self

    def __exit__(self, *exc: object) -> None:
        # Each reader closes its own stream at its next line (a keep-alive comes every
        # 5 s): closing a response from here blocks until its reader's read returns,
        # one stream after the other.
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _read(self, node: MoteyNode) -> None:
        try:
            response = node.get("/v1/events", stream=True, timeout=(10, 60))
        except Exception:
            return
        try:
            kind = ""
            for raw in response.iter_lines(decode_unicode=True):
                if self._stop.is_set():
                    return
                line = raw or ""
                if line == ": connected":
                    self._connected.release()
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "node":
                    with self._lock:
                        self._events[node.ip].append(json.loads(line[6:]))
        except Exception:  # the node went away
            return
        finally:
            response.close()

    def last_noticed(
        self, match: Any, since: float, timeout: float
    ) -> tuple[float | None, int, float | None]:
        """Seconds from ``since`` (wall clock) until the last node's first matching node
        event, how many nodes had one, and the first node's seconds (None: not all)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                firsts = [
                    next((e["at"] for e in events if match(e)), None)
                    for events in self._events.values()
                ]
            seen = [t for t in firsts if t is not None]
            if len(seen) == len(firsts) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if len(seen) < len(firsts):
            return None, len(seen), None
        return max(seen) - since, len(seen), min(seen) - since


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


def stop_all(nodes: list[MoteyNode]) -> None:
    """Stop every node by its PID, 8 at a time; one that will not stop does not stop the rest."""

    def stop(node: MoteyNode) -> None:
        with contextlib.suppress(AssertionError):
            node.stop(timeout=30)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(stop, nodes))


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
    joined: list[MoteyNode] = []  # the joiner, stopped with the others however this ends
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
        joined.append(joiner)

        def operating(event: dict[str, Any]) -> bool:
            return bool(
                event.get("ip") == joiner.ip
                and event.get("state") == "REACHABLE"
                and event.get("lifecycle") == "OPERATE"
            )

        with EventStreams(nodes) as streams:
            joiner.start(wait=False)
            joiner.wait_ready(timeout=120)
            ready = time.time()

            def sees_joiner(lst: dict[str, dict[str, Any]]) -> bool:
                entry = lst.get(joiner.ip)
                return bool(
                    entry and entry["state"] == "REACHABLE" and entry["lifecycle"] == "OPERATE"
                )

            result["join_s"], result["join_seen_by"] = until_all(nodes, sees_joiner, 30)
            # From the joiner's REST API answering OPERATE (itself found by polling, so
            # the first peers may be earlier: negative) to the last peer's own event.
            (
                result["join_event_s"],
                result["join_event_seen_by"],
                result["join_event_first_s"],
            ) = streams.last_noticed(operating, ready, 30)

        result["idle"] = idle(nodes, broker, args.idle)

        def lost(event: dict[str, Any]) -> bool:
            return bool(
                event.get("ip") == joiner.ip
                and (event.get("removed") or event.get("state") != "REACHABLE")
            )

        with EventStreams(nodes) as streams:
            killed = time.time()
            joiner.kill()

            def lost_joiner(lst: dict[str, dict[str, Any]]) -> bool:
                entry = lst.get(joiner.ip)
                return bool(lst) and (entry is None or entry["state"] != "REACHABLE")

            result["crash_s"], result["crash_seen_by"] = until_all(
                nodes, lost_joiner, 3 * args.keepalive + 20
            )
            # From the SIGKILL to the last node's own event: no polling in it.
            (
                result["crash_event_s"],
                result["crash_event_seen_by"],
                result["crash_event_first_s"],
            ) = streams.last_noticed(lost, killed, 3 * args.keepalive + 20)

        if args.services:
            result["placement"] = placement(nodes[0], nodes[1:6], args.services, 600)

        alarms = 0
        for node in nodes:
            alarms += len(SILENT.findall(node.log_file.read_text(errors="replace")))
        result["false_alarms"] = alarms

        idle_nodes = nodes[-args.stops :]
        result["shutdown_s"] = shutdown(idle_nodes)
        nodes = nodes[: -args.stops]
    finally:
        everyone = nodes + joined
        stop_all(everyone)
        remove_containers(client, everyone)
        broker.stop()
    return result


# -- a burst of images across the cell (issue 12: 1,000 images, 100 nodes) ----------------


def engine_ceiling(client: docker.DockerClient, count: int, parallel: int) -> dict[str, Any]:
    """The Docker engine alone: ``count`` containers of the same image and command,
    created and started (``containers.run(detach=True)``) by ``parallel`` threads — the
    parallelism the qualifying nodes get (each serves its deploy requests one at a
    time). Removed again afterwards (by label)."""
    label = f"motey-benchmark.ceiling={os.getpid()}-{time.time_ns()}"
    # The nodes' Docker client waits up to 60 s; on a loaded machine a start can take
    # longer than docker-py's default, and a request it gave up on still runs.
    patient = docker.from_env(timeout=600)

    def run(_i: int) -> None:
        patient.containers.run(
            TEST_IMAGE, ["sleep", "3600"], detach=True, labels=dict([label.split("=", 1)])
        )

    began = time.monotonic()
    errors = 0
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for outcome in [pool.submit(run, i) for i in range(count)]:
            try:
                outcome.result()
            except docker.errors.DockerException:
                errors += 1
    seconds = time.monotonic() - began
    while remove_labelled(patient, label):  # until none is left
        pass
    patient.close()
    return {
        "images": count,
        "parallel": parallel,
        "errors": errors,
        "seconds": seconds,
        "images_per_s": (count - errors) / seconds,
    }


def remove_labelled(client: docker.DockerClient, label: str) -> int:
    """Remove every container carrying ``label`` (8 at a time); how many there were."""
    found = client.containers.list(all=True, filters={"label": label}, sparse=True)

    def remove(container: Any) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(remove, found))
    return len(found)


def bulk_placement(
    submitter: MoteyNode, qualified: list[MoteyNode], images: int, timeout: float
) -> dict[str, Any]:
    """``images`` images in services of 4 (each image needs ``bench``) posted to a node
    without it by 8 threads; then, from the submitter's ``GET /v1/service`` every 0.5 s:

    * **placed**: images given a node (the placement decision, stored before any start);
    * **dispatched**: images the chosen node has accepted (its deploy answer, with the
      instance id, is stored);
    * **running**: images RUNNING;

    each as a rate (images / seconds from the first POST until the last one got there),
    and the spread over the qualifying nodes.
    """
    image = (
        f"  - name: {TEST_IMAGE}\n"
        '    parameters: {command: "sleep 3600"}\n    capabilities: [bench]\n'
    )
    services = images // 4

    def post(_i: int) -> str:
        text = f"service_name: {unique_name('bulk')}\nimages:\n" + image * 4
        response = submitter.post_yaml(text, timeout=120)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(post, range(services)))
    posted_s = time.monotonic() - began
    placed_at: dict[str, float] = {}
    dispatched_at: dict[str, float] = {}
    running_at: dict[str, float] = {}
    final: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            listing = submitter.get(
                "/v1/service?fields=id,state,images&limit=1000", timeout=30
            ).json()
        except Exception:
            time.sleep(0.5)
            continue
        now = time.monotonic() - began
        final = [s for s in listing if s["id"] in ids]
        for service in final:
            for img in service["images"]:
                if img.get("node"):
                    placed_at.setdefault(img["id"], now)
                if img.get("instance_id"):
                    dispatched_at.setdefault(img["id"], now)
                if img.get("state") == "RUNNING":
                    running_at.setdefault(img["id"], now)
        if len(final) == len(ids) and all(s["state"] in ("RUNNING", "ERROR") for s in final):
            break
        time.sleep(0.5)
    per_node: dict[str, int] = {n.ip: 0 for n in qualified}
    errors = 0
    for service in final:
        for img in service["images"]:
            if img.get("state") == "RUNNING" and img.get("node") in per_node:
                per_node[img["node"]] += 1
            elif img.get("state") != "RUNNING":
                errors += 1
    errors += 4 * (len(ids) - len(final))

    def rate(done: dict[str, float]) -> float | None:
        return len(done) / max(done.values()) if done else None

    running = sum(per_node.values())
    mean = running / len(per_node) if per_node else 0
    return {
        "images": 4 * services,
        "posted_s": posted_s,
        "placed": len(placed_at),
        "placed_per_s": rate(placed_at),
        "dispatched": len(dispatched_at),
        "dispatched_per_s": rate(dispatched_at),
        "running": running,
        "running_per_s": rate(running_at),
        "seconds": max(running_at.values()) if running_at else None,
        "errors": errors,
        "per_node": sorted(per_node.values(), reverse=True),
        "max_over_mean": (max(per_node.values()) / mean) if mean else None,
    }


def memory_gib() -> dict[str, float]:
    """Used and available memory of the machine (GiB)."""
    vm = psutil.virtual_memory()
    return {"used_gib": vm.used / 2**30, "available_gib": vm.available / 2**30}


def run_placement_cell(
    n: int, workdir: Path, client: docker.DockerClient, args: argparse.Namespace
) -> dict[str, Any]:
    """``--images`` mode: a cell of ``n`` nodes (5 with ``bench``), the engine's own
    ceiling, then the burst through Motey; every container removed, every node stopped."""
    broker = Mosquitto(workdir / "mosquitto", secure=args.secure).start()
    mqtt = (broker.ip, broker.port)
    extra = node_extra(args)
    extra["ORCHESTRATOR"] = {
        **extra["ORCHESTRATOR"],
        "workers": args.workers,
        "watch_interval": args.watch_interval,
    }
    extra["LOGGER"] = {"level": "WARNING"}  # a line per image on 100 nodes is load too
    nodes: list[MoteyNode] = []
    result: dict[str, Any] = {"nodes": n, "memory_before": memory_gib()}
    try:
        for i in range(n):
            caps = ["bench"] if 1 <= i <= 5 else []
            nodes.append(
                MoteyNode(workdir, name=f"n{n}-{i}", mqtt=mqtt, capabilities=caps, extra=extra)
            )
        start_all(nodes, args.batch)
        ips = {node.ip for node in nodes}
        result["settled_s"], _count = until_all(
            nodes, lambda lst: len(set(lst) & ips) >= n - 1, 120
        )
        result["load_before_placement"] = os.getloadavg()
        result["ceiling"] = engine_ceiling(client, args.images, args.ceiling_parallel)
        print(f"engine ceiling: {json.dumps(result['ceiling'])}", flush=True)
        result["load_before_motey"] = os.getloadavg()
        result["bulk"] = bulk_placement(nodes[0], nodes[1:6], args.images, 1200)
        result["memory_loaded"] = memory_gib()
    finally:
        stop_all(nodes)
        for node in nodes:
            if node.node_id:
                remove_labelled(client, f"motey.node_id={node.node_id}")
        broker.stop()
    # The machine's load moves (it is shared): the ceiling once more, with the same
    # number of containers present as the first time, and the ratio to the mean of both.
    result["ceiling_after"] = engine_ceiling(client, args.images, args.ceiling_parallel)
    ceiling = (result["ceiling"]["images_per_s"] + result["ceiling_after"]["images_per_s"]) / 2
    running = result["bulk"]["running_per_s"]
    result["running_over_ceiling"] = running / ceiling if running and ceiling else None
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
    parser.add_argument(
        "--images",
        type=int,
        default=0,
        help="placement burst mode: this many images (services of 4) instead of the "
        "join/idle/crash/placement/shutdown figures, with the engine's ceiling beside it",
    )
    parser.add_argument(
        "--workers", type=int, default=10, help="[ORCHESTRATOR] workers in --images mode"
    )
    parser.add_argument(
        "--watch-interval",
        type=float,
        default=2.0,
        help="[ORCHESTRATOR] watch_interval in --images mode (2, as in the other figures)",
    )
    parser.add_argument(
        "--ceiling-parallel",
        type=int,
        default=5,
        help="threads of the Docker-alone ceiling in --images mode (5: one per qualifying "
        "node, each of which starts one image at a time)",
    )
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
            run = run_placement_cell if args.images else run_cell
            cell = run(n, Path(tmp), client, args)
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
