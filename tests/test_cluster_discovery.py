"""Three real node processes and a real Mosquitto: join, leave, crash, freeze and return."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from tests.cluster_helpers import nodes_seen_by, wait_nodes
from tests.helpers import Mosquitto, MoteyNode

KEEPALIVE = 2  # what MoteyNode configures
PRESENCE_INTERVAL = 2
#: A killed node's socket closes at once: the broker publishes its will straight away.
KILLED_BOUND = 3.0
#: The MQTT spec lets the broker give up on a silent client after 1.5 x keepalive;
#: Mosquitto 2.0 checks lazily and was measured at 3-7 s for keepalive 2 s (the broker's
#: last will is the only liveness signal: presence is not republished on a timer).
#: 4 s slack for busy CI.
FROZEN_BOUND = 3 * KEEPALIVE + 4


def start_cluster(node_factory: Any, broker: Mosquitto) -> list[MoteyNode]:
    mqtt = (broker.ip, broker.port)
    nodes = [
        node_factory(
            name=f"cell-{i}",
            mqtt=mqtt,
            capabilities=[cap],
            extra={"MQTT": {"presence_interval": PRESENCE_INTERVAL}},
        )
        for i, cap in enumerate(("alpha", "beta", "gamma"))
    ]
    for node in nodes:
        others = {n.ip for n in nodes if n is not node}
        wait_nodes(
            node,
            lambda seen, o=others: (
                set(seen) == o and all(v["lifecycle"] == "OPERATE" for v in seen.values())
            ),
            what=f"{node.name} sees all operating",
        )
    return nodes


def test_join_shows_metadata_of_every_node(mosquitto: Mosquitto, node_factory: Any) -> None:
    a, b, c = start_cluster(node_factory, mosquitto)
    seen = nodes_seen_by(a)
    for peer in (b, c):
        entry = seen[peer.ip]
        assert entry["id"] == peer.node_id
        assert entry["name"] == peer.name
        assert entry["state"] == "REACHABLE"
        assert entry["lifecycle"] == "OPERATE"
        assert entry["ports"]["deploy_image_replier"] == 5092
        assert entry["ports"]["api"] == peer.port
        assert time.time() - entry["last_seen"] < 30
        assert entry["version"]
    assert {cap["capability"] for cap in seen[b.ip]["capabilities"]} >= {"beta"}
    me = [n for n in a.get("/v1/nodes").json() if n.get("self")]
    assert len(me) == 1 and me[0]["id"] == a.node_id


def test_clean_leave_crash_and_return(mosquitto: Mosquitto, node_factory: Any) -> None:
    a, b, c = start_cluster(node_factory, mosquitto)

    assert b.stop() == 0
    for node in (a, c):
        wait_nodes(node, lambda seen: b.ip not in seen, timeout=10, what="b removed")

    c_id = c.node_id
    c.kill()  # SIGKILL: no goodbye, the broker publishes the last will
    started = time.monotonic()
    wait_nodes(
        a,
        lambda seen: seen[c.ip]["state"] == "UNREACHABLE",
        timeout=KILLED_BOUND,
        interval=0.1,
        what="c unreachable after kill -9",
    )
    assert time.monotonic() - started < KILLED_BOUND

    c.start()
    seen = wait_nodes(a, lambda seen: seen[c.ip]["state"] == "REACHABLE", timeout=15, what="c back")
    assert seen[c.ip]["id"] == c_id
    # the returning node learns the cluster again (retained presence, no round of requests)
    wait_nodes(c, lambda seen: set(seen) == {a.ip}, timeout=10, what="c sees a")

    b.start()
    wait_nodes(a, lambda seen: seen.get(b.ip, {}).get("state") == "REACHABLE", what="b back")


def test_frozen_node_is_unreachable_within_the_keepalive_bound(
    mosquitto: Mosquitto, node_factory: Any
) -> None:
    """SIGSTOP stands in for a lost network: the socket stays open but falls silent."""
    a, b, _ = start_cluster(node_factory, mosquitto)
    assert b.process is not None
    pid = b.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        wait_nodes(
            a,
            lambda seen: seen[b.ip]["state"] == "UNREACHABLE",
            timeout=FROZEN_BOUND,
            interval=0.1,
            what="frozen b unreachable",
        )
        assert time.monotonic() - started < FROZEN_BOUND
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_nodes(a, lambda seen: seen[b.ip]["state"] == "REACHABLE", timeout=20, what="b thawed")


def test_lifecycle_phase_travels_in_discovery(mosquitto: Mosquitto, node_factory: Any) -> None:
    a, b, _ = start_cluster(node_factory, mosquitto)
    assert b.put_json("/v1/node", {"lifecycle": "RECOVER", "reason": "disk check"}).ok
    wait_nodes(a, lambda seen: seen[b.ip]["lifecycle"] == "RECOVER", timeout=10, what="recover")
    assert b.get("/v1/nodestatus").json()["lifecycle"] == "RECOVER"
    assert b.put_json("/v1/node", {"lifecycle": "OPERATE"}).ok
    wait_nodes(a, lambda seen: seen[b.ip]["lifecycle"] == "OPERATE", timeout=10, what="operate")
