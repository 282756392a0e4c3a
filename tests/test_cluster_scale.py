"""A join storm in a real cell: 10 nodes operate, 10 more start at once (issue 12).

Before, every presence rewrote and fsynced the node list on the MQTT network thread and
every join made every node re-announce itself (its presence and its bare-IP
``register``: 2N + 2 messages per join for each subscriber), so a storm kept the network
threads busy for longer than the stale limit and healthy nodes were marked "silent ...
unreachable". The re-announcing was an answer to ``nodes_request``, which exists in open
mode (the original's bare-IP topics), so the cell runs in open mode. The ``register``
messages on the wire are counted, and so are the presences of the steady state after
the storm: none (the presence is published on change; liveness is the last will).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from motey.communication.protocol import discovery as proto
from tests.cluster_helpers import RawMQTT
from tests.helpers import Mosquitto, MoteyNode, unique_name, wait_for

FAST_PRESENCE = {
    "MQTT": {"keepalive": 2, "presence_interval": 1},
    "LOGGER": {"level": "INFO"},
    "SECURITY": {"mode": "open"},
}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path / "mosquitto", secure=False).start()
    yield mosquitto
    mosquitto.stop()


def reachable_peers(node: MoteyNode) -> set[str]:
    return {
        n["ip"]
        for n in node.get("/v1/nodes").json()
        if not n["self"] and n["state"] == "REACHABLE" and n["lifecycle"] == "OPERATE"
    }


def test_a_join_storm_of_twenty_raises_no_false_alarms(tmp_path: Path, broker: Mosquitto) -> None:
    mqtt = (broker.ip, broker.port)
    nodes = [MoteyNode(tmp_path, mqtt=mqtt, extra=FAST_PRESENCE) for _ in range(20)]
    wire = RawMQTT(broker.ip, broker.port, (proto.TOPIC_REGISTER,))
    try:
        for node in nodes[:10]:
            node.start(wait=False)
        for node in nodes[:10]:
            node.wait_ready(timeout=60)
        for node in nodes[10:]:  # the storm: ten at once
            node.start(wait=False)
        for node in nodes[10:]:
            node.wait_ready(timeout=90)
        everyone = {n.ip for n in nodes}
        for node in nodes:
            wait_for(
                lambda n=node: reachable_peers(n) == everyone - {n.ip},
                timeout=30,
                what=f"{node.name} to see the other 19 operating",
            )
        # Then steady state: liveness is the broker session (the last will), so for
        # longer than the old stale window (3 s) nobody publishes anything, and nobody
        # raises an alarm (before: a presence every second from each node, N per
        # second to each, and a sweep that marked late ones "silent").
        presences = RawMQTT(broker.ip, broker.port, (proto.TOPIC_PRESENCE_FILTER,))
        try:
            wait_for(lambda: len(presences.messages) >= 20, what="the retained presences")
            presences.drain()
            time.sleep(4)
            published = [t for t, _p, retained in list(presences.messages) if not retained]
        finally:
            presences.close()
        assert published == [], published[:5]
        alarms = [
            line
            for n in nodes
            for line in n.log_file.read_text(errors="replace").splitlines()
            if "silent for" in line or "is unreachable" in line
        ]
        assert alarms == [], alarms[:5]
        # Each node registers once when it connects; nobody re-announces for a joiner
        # (before: every node answered every join, a few hundred here).
        registers = [p for _t, p, _r in list(wire.messages)]
        assert len(registers) <= 2 * len(nodes), f"{len(registers)} register messages"
    finally:
        wire.close()
        for node in nodes:
            node.stop()


def test_the_service_list_is_paged_trimmed_and_fresh_after_a_change(node: MoteyNode) -> None:
    """GET /v1/service serves a body encoded once per change; a POST must show at once."""

    def post() -> str:
        text = (
            f"service_name: {unique_name('page')}\nimages:\n  - name: busybox\n"
            "    capabilities: [nobody-has-this]\n"
        )
        response = node.post_yaml(text)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    first = post()
    assert [s["id"] for s in node.get("/v1/service").json()] == [first]
    second = post()  # the cached list of one must not be served again
    ids = [s["id"] for s in node.get("/v1/service").json()]
    assert ids == [first, second]
    page = node.get("/v1/service?offset=1&limit=1&fields=id,state").json()
    assert page == [{"id": second, "state": page[0]["state"]}]
    for bad in ("limit=-1", "limit=x", "offset=-2", "fields=a-b", "limit=100000"):
        response = node.get(f"/v1/service?{bad}")
        assert response.status_code == 400, bad
    nodes = node.get("/v1/nodes").json()
    assert nodes[0]["self"] and nodes[0]["images"] == 0
