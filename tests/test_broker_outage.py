"""A broker outage: nodes keep serving and deploying locally, and rejoin when it returns."""

from __future__ import annotations

from typing import Any

from tests.cluster_helpers import wait_nodes
from tests.helpers import TEST_IMAGE, Mosquitto, unique_name


def test_nodes_survive_a_broker_outage(mosquitto: Mosquitto, node_factory: Any) -> None:
    mqtt = (mosquitto.ip, mosquitto.port)
    a = node_factory(name="out-a", mqtt=mqtt)
    b = node_factory(name="out-b", mqtt=mqtt)
    wait_nodes(a, lambda seen: b.ip in seen, what="a to see b")

    mosquitto.stop()
    text = (
        f"service_name: {unique_name('offline')}\nimages:\n  - name: {TEST_IMAGE}\n"
        '    parameters: {command: "sleep 300"}\n'
    )
    sid = a.post_yaml(text).json()["id"]
    assert a.wait_service_state(sid, "RUNNING")["images"][0]["node"] == a.ip

    # A node that restarts while the broker is away still comes up and serves.
    assert b.stop() == 0
    b.start()
    assert b.get("/v1/node").json()["lifecycle"] == "OPERATE"

    mosquitto.start()
    wait_nodes(
        a,
        lambda seen: b.ip in seen and seen[b.ip]["state"] == "REACHABLE",
        timeout=45,
        what="a to see b again after the broker returned",
    )
    wait_nodes(b, lambda seen: a.ip in seen, timeout=45, what="b to see a again")
    assert a.service(sid)["state"] == "RUNNING"
