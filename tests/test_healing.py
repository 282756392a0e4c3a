"""Reschedule with fencing, with real nodes, Docker, Mosquitto and network namespaces.

* a node's machine is lost (kill -9 and its containers removed): the image runs
  elsewhere within reschedule_after + detection + placement, and the node, restarted,
  starts no copy;
* only the agent dies and is back before reschedule_after: nothing moves;
* a real partition (the node in its own network namespace, its veth cut for longer than
  reschedule_after): an ``on_disconnect: stop`` image never runs twice at any moment
  sampled every 200 ms; a ``keep`` image is left with one copy within seconds of the heal.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.cluster_helpers import wait_nodes
from tests.helpers import TEST_IMAGE, Mosquitto, MoteyNode, unique_name, wait_for

RESCHEDULE_AFTER = 5
STOP_AFTER = 2
HEALING = {
    "ORCHESTRATOR": {"reschedule_after": RESCHEDULE_AFTER, "stop_after_disconnect": STOP_AFTER}
}


def blueprint(capability: str, on_disconnect: str = "keep") -> str:
    return (
        f"service_name: {unique_name('heal')}\nimages:\n  - name: {TEST_IMAGE}\n"
        f'    parameters: {{command: "sleep 600"}}\n    capabilities: [{capability}]\n'
        f"    on_disconnect: {on_disconnect}\n"
    )


def running_of(client: docker.DockerClient, service_id: str) -> list[Any]:
    return client.containers.list(filters={"label": f"motey.service_id={service_id}"})


def remove_containers_of(client: docker.DockerClient, node_id: str | None) -> None:
    if node_id:
        for c in client.containers.list(all=True, filters={"label": f"motey.node_id={node_id}"}):
            c.remove(force=True)


def operating(owner: MoteyNode, *nodes: MoteyNode) -> None:
    ips = {n.ip for n in nodes}
    wait_nodes(
        owner,
        lambda seen: ips <= set(seen) and all(seen[ip]["lifecycle"] == "OPERATE" for ip in ips),
        what="peers operating",
    )


def test_a_lost_machine_s_image_runs_elsewhere_and_is_not_started_twice(
    mosquitto: Mosquitto, node_factory: Any, docker_client: docker.DockerClient
) -> None:
    mqtt = (mosquitto.ip, mosquitto.port)
    a = node_factory(name="lost-a", mqtt=mqtt, extra=HEALING)
    b = node_factory(name="lost-b", mqtt=mqtt, capabilities=["lidar"], extra=HEALING)
    operating(a, b)
    sid = a.post_yaml(blueprint("lidar")).json()["id"]
    assert a.wait_service_state(sid, "RUNNING")["images"][0]["node"] == b.ip
    c = node_factory(name="lost-c", mqtt=mqtt, capabilities=["lidar"], extra=HEALING)
    operating(a, c)

    killed = time.monotonic()
    b.kill()  # the machine is gone: its process and its containers
    remove_containers_of(docker_client, b.node_id)

    def moved() -> bool:
        image = a.service(sid)["images"][0]
        return image["node"] == c.ip and image["state"] == "RUNNING"

    wait_for(moved, timeout=RESCHEDULE_AFTER + 25, what="image running on c")
    took = time.monotonic() - killed
    # detection (last will, 1.5 x keepalive 2 s, lazily checked: 3-7 s) + reschedule_after
    # + the owner's status timeout and placement
    assert took < RESCHEDULE_AFTER + 15, took
    history = [h["message"] for h in a.service(sid)["history"]]
    assert any(f"moved from {b.ip} to {c.ip}" in m and "unreachable" in m for m in history)
    assert len(running_of(docker_client, sid)) == 1

    b.start()  # the machine boots again: it starts no copy of the moved image
    operating(a, b)
    time.sleep(2)  # two owner watch rounds and two fence rounds: a copy would show by now
    on_b = docker_client.containers.list(all=True, filters={"label": f"motey.node_id={b.node_id}"})
    assert on_b == []
    assert [c_.labels["motey.node_id"] for c_ in running_of(docker_client, sid)] == [c.node_id]


def test_an_agent_back_before_reschedule_after_readopts_and_nothing_moves(
    mosquitto: Mosquitto, node_factory: Any, docker_client: docker.DockerClient
) -> None:
    slow = {"ORCHESTRATOR": {"reschedule_after": 20, "stop_after_disconnect": 10}}
    mqtt = (mosquitto.ip, mosquitto.port)
    a = node_factory(name="agent-a", mqtt=mqtt, extra=slow)
    b = node_factory(name="agent-b", mqtt=mqtt, capabilities=["lidar"], extra=slow)
    operating(a, b)
    sid = a.post_yaml(blueprint("lidar", "stop")).json()["id"]
    assert a.wait_service_state(sid, "RUNNING")["images"][0]["node"] == b.ip
    c = node_factory(name="agent-c", mqtt=mqtt, capabilities=["lidar"], extra=slow)
    operating(a, c)
    (container,) = running_of(docker_client, sid)

    b.kill()  # only the agent: its container keeps running
    a.wait_service_state(sid, "ERROR", timeout=20)
    b.start()  # a service manager restarts it well within reschedule_after
    service = a.wait_service_state(sid, "RUNNING", timeout=20)
    assert service["images"][0]["node"] == b.ip
    assert [c_.id for c_ in running_of(docker_client, sid)] == [container.id]
    assert not any("moved" in h["message"] for h in service["history"])


# -- a real partition ----------------------------------------------------------------------


class Netns:
    """A network namespace joined to the host by a veth pair on its own /24."""

    def __init__(self) -> None:
        n = os.getpid() % 200 + 20
        self.name = f"motey-heal-{os.getpid()}"
        self.host_if, self.ns_if = f"mhh{os.getpid() % 100000}", f"mhn{os.getpid() % 100000}"
        self.prefix = f"10.213.{n}"
        self.inside = f"{self.prefix}.2"
        self.host_ips = [f"{self.prefix}.{i}" for i in (1, 3, 4)]

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def create(self) -> Netns:
        self._ip("netns", "add", self.name)
        self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        self._ip("link", "set", self.ns_if, "netns", self.name)
        for ip in self.host_ips:
            self._ip("addr", "add", f"{ip}/24", "dev", self.host_if)
        self._ip("link", "set", self.host_if, "up")
        self._ip("-n", self.name, "addr", "add", f"{self.inside}/24", "dev", self.ns_if)
        self._ip("-n", self.name, "link", "set", self.ns_if, "up")
        self._ip("-n", self.name, "link", "set", "lo", "up")
        return self

    def cut(self) -> None:
        self._ip("link", "set", self.host_if, "down")

    def heal(self) -> None:
        self._ip("link", "set", self.host_if, "up")

    def delete(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


class NetnsNode(MoteyNode):
    """A Motey node whose process runs inside a network namespace."""

    netns = ""

    def start(self, wait: bool = True) -> MoteyNode:
        env = dict(os.environ)
        env.pop("MOTEY_CONFIG", None)
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, sys.executable, "-m", "motey", "run"]
                + ["--config", str(self.config_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env=env,
            )
        if wait:
            self.wait_ready()
        return self


@pytest.fixture
def netns() -> Iterator[Netns]:
    made = Netns().create()
    yield made
    made.delete()


class Sampler:
    """Counts the running containers of a service every 200 ms; remembers the most."""

    def __init__(self, client: docker.DockerClient, service_id: str) -> None:
        self._client, self._sid = client, service_id
        self.most = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.most = max(self.most, len(running_of(self._client, self._sid)))
            self.samples += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def test_a_partition_never_runs_a_stop_image_twice_and_heals_keep_images(
    tmp_path: Path, netns: Netns, docker_client: docker.DockerClient
) -> None:
    broker = Mosquitto(tmp_path / "mosquitto", ip=netns.host_ips[0]).start()
    mqtt = (broker.ip, broker.port)
    a = MoteyNode(tmp_path, name="part-a", ip=netns.host_ips[1], mqtt=mqtt, extra=HEALING)
    c = MoteyNode(tmp_path, name="part-c", ip=netns.host_ips[2], mqtt=mqtt, extra=HEALING)
    b = NetnsNode(
        tmp_path, name="part-b", ip=netns.inside, mqtt=mqtt, capabilities=["lidar"], extra=HEALING
    )
    b.netns = netns.name
    nodes = [a, b, c]
    sampler: Sampler | None = None
    try:
        for node in nodes:
            node.start()
        operating(a, b, c)
        stop_sid = a.post_yaml(blueprint("lidar", "stop")).json()["id"]
        keep_sid = a.post_yaml(blueprint("lidar", "keep")).json()["id"]
        for sid in (stop_sid, keep_sid):
            assert a.wait_service_state(sid, "RUNNING")["images"][0]["node"] == b.ip
        lidar = [{"capability": "lidar", "capability_type": "hardware"}]
        assert c.put_json("/v1/capabilities", lidar).status_code == 201
        sampler = Sampler(docker_client, stop_sid)

        netns.cut()
        cut_at = time.monotonic()

        def moved(sid: str) -> bool:
            image = a.service(sid)["images"][0]
            return image["node"] == c.ip and image["state"] == "RUNNING"

        wait_for(lambda: moved(stop_sid) and moved(keep_sid), timeout=40, what="both moved")
        assert time.monotonic() - cut_at >= RESCHEDULE_AFTER
        # the keep image runs on both sides of the partition; the stop image only on c
        assert len(running_of(docker_client, keep_sid)) == 2
        assert len(running_of(docker_client, stop_sid)) == 1

        netns.heal()
        healed_at = time.monotonic()
        wait_for(
            lambda: len(running_of(docker_client, keep_sid)) == 1,
            timeout=15,
            what="one keep copy left after the heal",
        )
        heal_took = time.monotonic() - healed_at
        (left,) = running_of(docker_client, keep_sid)
        assert left.labels["motey.node_id"] == c.node_id
        sampler.stop()
        assert sampler.samples > 20
        assert sampler.most == 1, "the stop image ran twice at a sampled moment"
        assert heal_took < 10, heal_took
    finally:
        if sampler is not None:
            sampler.stop()
        netns.heal()
        for node in nodes:
            with contextlib.suppress(AssertionError):
                node.stop()
        for node in nodes:
            remove_containers_of(docker_client, node.node_id)
        broker.stop()
