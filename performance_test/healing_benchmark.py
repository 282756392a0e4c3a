#!/usr/bin/env python3
"""Measure healing with real nodes: failover after kill -9, and terminating an 8-image service.

* **failover**: a Mosquitto broker and three nodes on loopback: ``a`` owns a service
  whose image requires ``lidar``; it runs on ``b``; ``c`` gains ``lidar`` afterwards.
  ``b`` is killed with SIGKILL and its containers removed (a lost machine). The time from
  the kill until ``a`` shows the image RUNNING on ``c`` is measured (``--give-up`` seconds
  at most: code without rescheduling never moves it).
* **terminate**: one node, a service of ``--images`` images whose processes ignore
  SIGTERM, ``[DOCKER] stop_timeout`` = ``--stop-timeout``; the time from ``DELETE`` until
  the service is TERMINATED.

``--source DIR`` runs the nodes from another source tree (``git archive <commit> | tar
-x -C DIR``) to measure code before a change. The nodes are the test suite's
(``tests/helpers.py``), so they run with the same settings (keepalive 2 s, request
timeout 2 s, watch interval 0.5 s); every node is stopped by its PID and every
container it started is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import docker  # noqa: E402

from tests.helpers import TEST_IMAGE, Mosquitto, MoteyNode, unique_name, wait_for  # noqa: E402


def _remove(client: docker.DockerClient, node: MoteyNode) -> None:
    if node.node_id:
        for c in client.containers.list(
            all=True, filters={"label": f"motey.node_id={node.node_id}"}
        ):
            c.remove(force=True)


def failover(workdir: Path, client: docker.DockerClient, args: argparse.Namespace) -> float | None:
    """Seconds from kill -9 of the node running the image until it runs elsewhere."""
    extra = {
        "ORCHESTRATOR": {
            "reschedule_after": args.reschedule_after,
            "stop_after_disconnect": args.reschedule_after / 2,
        }
    }
    broker = Mosquitto(workdir / "mosquitto").start()
    mqtt = (broker.ip, broker.port)
    nodes: list[MoteyNode] = []
    try:
        a = MoteyNode(workdir, name="bench-a", mqtt=mqtt, extra=extra)
        b = MoteyNode(workdir, name="bench-b", mqtt=mqtt, capabilities=["lidar"], extra=extra)
        c = MoteyNode(workdir, name="bench-c", mqtt=mqtt, extra=extra)
        nodes = [a, b, c]
        for node in nodes:
            node.start()
        wait_for(
            lambda: (
                {b.ip, c.ip}
                <= {n["ip"] for n in a.get("/v1/nodes").json() if n.get("lifecycle") == "OPERATE"}
            ),
            what="peers",
        )
        text = (
            f"service_name: {unique_name('bench')}\nimages:\n  - name: {TEST_IMAGE}\n"
            '    parameters: {command: "sleep 600"}\n    capabilities: [lidar]\n'
        )
        sid = a.post_yaml(text).json()["id"]
        a.wait_service_state(sid, "RUNNING")
        lidar = [{"capability": "lidar", "capability_type": "hardware"}]
        c.put_json("/v1/capabilities", lidar)
        time.sleep(1)  # c's presence with lidar reaches a
        killed = time.monotonic()
        b.kill()
        _remove(client, b)

        def moved() -> bool:
            image = a.service(sid)["images"][0]
            return image["node"] == c.ip and image["state"] == "RUNNING"

        try:
            wait_for(moved, timeout=args.give_up, interval=0.1, what="image on c")
        except AssertionError:
            return None
        return time.monotonic() - killed
    finally:
        for node in nodes:
            try:
                node.stop()
            except AssertionError as exc:
                print(f"warning: {exc}", file=sys.stderr)
            _remove(client, node)
        broker.stop()


def terminate(workdir: Path, client: docker.DockerClient, args: argparse.Namespace) -> float:
    """Seconds from DELETE to TERMINATED for a service of stubborn images."""
    node = MoteyNode(workdir, name="bench-t", extra={"DOCKER": {"stop_timeout": args.stop_timeout}})
    try:
        node.start()
        image = (
            f"  - name: {TEST_IMAGE}\n    parameters: {{command: [sh, -c, "
            "\"trap '' TERM; while true; do sleep 1; done\"]}\n"
        )
        text = f"service_name: {unique_name('stubborn')}\nimages:\n" + image * args.images
        sid = node.post_yaml(text).json()["id"]
        node.wait_service_state(sid, "RUNNING", timeout=120)
        started = time.monotonic()
        node.delete(f"/v1/service/{sid}")
        wait_for(lambda: node.service(sid)["state"] == "TERMINATED", timeout=300, interval=0.1)
        return time.monotonic() - started
    finally:
        node.stop()
        _remove(client, node)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="run the nodes from this source tree")
    parser.add_argument("--reschedule-after", type=float, default=5.0)
    parser.add_argument("--give-up", type=float, default=60.0)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--stop-timeout", type=int, default=2)
    parser.add_argument("--only", choices=["failover", "terminate"])
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    if args.source:
        os.environ["PYTHONPATH"] = str(Path(args.source).resolve())
    client = docker.from_env()
    results: dict[str, Any] = {"source": args.source or str(REPO)}
    with tempfile.TemporaryDirectory(prefix="motey-heal-bench-") as tmp:
        if args.only in (None, "failover"):
            took = failover(Path(tmp) / "failover", client, args)
            results["failover_s"] = took
            shown = (
                f"{took:.1f} s" if took is not None else f"never (gave up after {args.give_up:g} s)"
            )
            print(
                "kill -9 -> image RUNNING elsewhere "
                f"(reschedule_after {args.reschedule_after:g} s): {shown}"
            )
        if args.only in (None, "terminate"):
            took = terminate(Path(tmp) / "terminate", client, args)
            results["terminate_s"] = took
            print(
                f"terminate {args.images} images ignoring SIGTERM (stop_timeout "
                f"{args.stop_timeout} s): {took:.1f} s"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
