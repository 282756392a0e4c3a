"""Wait instead of fail, and peers that do not answer are dropped — with real nodes.

Before issue 10 an image no node could run failed for good at POST time, and a node
known only by bare IP that crashed stayed REACHABLE for ever, adding the request timeout
to every placement.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from tests.cluster_helpers import SilentNode, nodes_seen_by, wait_nodes
from tests.helpers import TEST_IMAGE, Mosquitto, next_loopback, unique_name, wait_for


def blueprint(capability: str) -> str:
    return (
        f"service_name: {unique_name('wait')}\nimages:\n  - name: {TEST_IMAGE}\n"
        f'    parameters: {{command: "sleep 600"}}\n    capabilities: [{capability}]\n'
    )


def test_an_image_waits_for_a_node_and_is_placed_when_one_joins(
    mosquitto: Mosquitto, node_factory: Any
) -> None:
    mqtt = (mosquitto.ip, mosquitto.port)
    a = node_factory(name="wait-a", mqtt=mqtt)
    b = node_factory(name="wait-b", mqtt=mqtt)
    wait_nodes(
        a,
        lambda seen: seen.get(b.ip, {}).get("lifecycle") == "OPERATE",
        what="a sees b operating",
    )
    sid = a.post_yaml(blueprint("camera")).json()["id"]

    def waiting() -> dict[str, Any] | None:
        service = a.service(sid)
        return service if service["images"][0]["awaiting_placement"] else None

    service = wait_for(waiting, what="image waiting for a node")
    assert service["state"] == "INSTANTIATING"
    message = service["images"][0]["state_message"]
    assert "no node has camera; 2 node(s) checked" in message, message
    assert "camera" in service["state_message"]

    c = node_factory(name="wait-c", mqtt=mqtt, capabilities=["camera"])
    running = a.wait_service_state(sid, "RUNNING", timeout=20)
    assert running["images"][0]["node"] == c.ip
    assert not running["images"][0]["awaiting_placement"]
    assert any(f"placed on {c.ip}" in h["message"] for h in running["history"])
    assert all(h["state"] != "ERROR" for h in running["history"])


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def test_a_bare_ip_peer_that_never_answers_is_marked_then_removed(
    plain_mosquitto: Mosquitto, node_factory: Any, ctx: zmq.Context
) -> None:
    mqtt = (plain_mosquitto.ip, plain_mosquitto.port)
    # a bare-IP register and raw pyzmq: the original Motey's wire format
    a = node_factory(
        name="drop-a",
        mqtt=mqtt,
        extra={
            "SECURITY": {"mode": "open"},
            "ORCHESTRATOR": {"peer_max_failures": 2, "peer_grace": 3},
        },
    )
    silent = SilentNode(ctx, next_loopback(), mqtt)
    try:
        wait_nodes(a, lambda seen: silent.ip in seen, what="silent node registered")
        sid = a.post_yaml(blueprint("nfc")).json()["id"]  # waits; every round asks peers
        seen = wait_nodes(
            a,
            lambda s: s.get(silent.ip, {}).get("state") == "UNREACHABLE",
            timeout=20,
            what="silent node marked unreachable",
        )
        assert seen[silent.ip]["state"] == "UNREACHABLE"
        asked = silent.received()
        other = a.post_yaml(blueprint("nfc")).json()["id"]
        wait_for(
            lambda: a.service(other)["images"][0]["awaiting_placement"],
            timeout=5,
            what="second image waiting",
        )
        # not asked any more, so placement no longer waits for it
        assert asked >= 2 and silent.received() == 0
        wait_for(lambda: silent.ip not in nodes_seen_by(a), timeout=15, what="silent node removed")
        for service_id in (sid, other):
            assert a.delete(f"/v1/service/{service_id}").status_code == 202
    finally:
        silent.close()
