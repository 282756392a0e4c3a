"""Test doubles that speak the wire: a raw MQTT client and an original-Motey peer.

These stand in for things that cannot be made real here (an original 2017 Motey node)
or are needed to observe and inject raw messages; they use the real broker and real
ZeroMQ sockets.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from types import EllipsisType
from typing import Any

import paho.mqtt.client as mqtt
import zmq
from paho.mqtt.enums import CallbackAPIVersion

from motey.communication.mqtt_tls import use_tls
from motey.models.node import DEFAULT_PORTS
from tests.helpers import SECURE_BROKERS, client_tls, wait_for


class RawMQTT:
    """A plain paho client that records what it receives and publishes raw payloads."""

    def __init__(
        self,
        host: str,
        port: int,
        topics: tuple[str, ...] = ("motey/#",),
        tls: tuple[str, str, str] | None | EllipsisType = ...,
    ) -> None:
        """``tls`` = (CA, certificate, key); by default a valid cell client certificate
        when the broker is one of the tests' secure brokers, none otherwise."""
        self.messages: list[tuple[str, bytes, bool]] = []
        self._arrived = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"raw-{uuid.uuid4().hex[:8]}"
        )
        self._topics = topics
        self._subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        if tls is ...:
            tls = client_tls() if (host, port) in SECURE_BROKERS else None
        if tls is not None:
            use_tls(self.client, *tls)
        self.client.connect(host, port, keepalive=5)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError("raw MQTT client did not subscribe")

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: Any) -> None:
        with self._arrived:
            self.messages.append((message.topic, message.payload, message.retain))
            self._arrived.notify_all()

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([(t, 1) for t in self._topics])

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=5)

    def expect(
        self, predicate: Callable[[str, bytes, bool], bool], timeout: float = 10.0
    ) -> tuple[str, bytes, bool]:
        """The first message received since the last :meth:`drain` that matches."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            checked = 0
            while True:
                for message in self.messages[checked:]:
                    if predicate(*message):
                        return message
                checked = len(self.messages)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("expected MQTT message did not arrive")
                self._arrived.wait(remaining)

    def drain(self) -> None:
        """Forget what arrived so far."""
        with self._arrived:
            self.messages.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained_on(host: str, port: int, topic: str, wait: float = 1.0) -> list[bytes]:
    """Payloads a fresh subscriber gets as retained messages on ``topic``."""
    raw = RawMQTT(host, port, (topic,))
    try:
        time.sleep(wait)
        return [payload for _topic, payload, retained in list(raw.messages) if retained]
    finally:
        raw.close()


class OriginalPeer:
    """An original (2017) Motey node as it behaves on the wire, with real sockets.

    Formats (read from the original's ``zeromq_server.py``, ``mqttserver.py``,
    ``capability_repository.py`` and ``models/image.py``), nothing of the new node's:

    * MQTT: bare IPv4 payloads, QoS 0, not retained, no presence and no last will. On
      connect it publishes ``motey/v1/nodes_request``; it answers every
      ``nodes_request`` (its own too) with ``motey/v1/register``; it stores every
      registered address; on leaving it publishes ``motey/v1/remove``.
    * Capability replier: any request is answered with its TinyDB rows,
      ``[{"capability": ..., "type": ...}]``.
    * Deploy replier: the image JSON; without ``name`` or ``engine`` (or not JSON) the
      reply is ``""``, else the container id (64 hex digits). It starts nothing.
    * Status replier: dies on its first request without replying (the original calls
      its Docker plugin with a missing argument); the socket stays bound.
    * Terminate replier: the image JSON, reply ``""``. With ``terminate_dies`` it ends
      like the status replier, as the original's code reads with docker-py 2.2.1 (it
      calls ``client.containers.stop``, which that collection does not have).

    As a client it sends what the original sends: ``""`` for capabilities and the whole
    image (``id``, ``name``, ``engine``, ``parameters``, ``capabilities``, ``node``) for
    deploy, status and terminate, keeping the deploy reply as the image's ``id``.
    """

    ROUTES = ("motey/v1/register", "motey/v1/remove", "motey/v1/nodes_request")

    def __init__(
        self,
        ctx: zmq.Context,
        ip: str,
        capabilities: list[dict[str, str]],
        broker: tuple[str, int],
        terminate_dies: bool = False,
    ) -> None:
        self.ip = ip
        self.terminate_dies = terminate_dies
        self.rows = capabilities  # e.g. [{"capability": "docker", "type": "plugin"}]
        self.ctx = ctx
        self.deployed: dict[str, dict[str, Any]] = {}  # container id -> image as received
        self.requests: list[tuple[str, bytes]] = []
        self.nodes: list[str] = []  # its nodes repository: addresses seen on register
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sockets: dict[str, zmq.Socket] = {}
        for key in (
            "capabilities_replier",
            "deploy_image_replier",
            "image_status_replier",
            "image_terminate_replier",
        ):
            sock = ctx.socket(zmq.REP)
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(f"tcp://{ip}:{DEFAULT_PORTS[key]}")
            self._sockets[key] = sock
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._connected = threading.Event()
        self.mqtt = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"orig-{uuid.uuid4().hex[:8]}"
        )
        self.mqtt.on_connect = self._on_connect
        self.mqtt.message_callback_add("motey/v1/register", self._on_register)
        self.mqtt.message_callback_add("motey/v1/nodes_request", self._on_nodes_request)
        self.mqtt.connect(broker[0], broker[1], keepalive=60)
        self.mqtt.loop_start()
        if not self._connected.wait(10):
            raise AssertionError("original peer did not connect to the broker")

    # -- MQTT, as the original ------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        for topic in self.ROUTES:
            client.subscribe(topic)
        client.publish("motey/v1/nodes_request", self.ip)
        self._connected.set()

    def _on_nodes_request(self, client: mqtt.Client, _u: Any, _m: Any) -> None:
        client.publish("motey/v1/register", self.ip)

    def _on_register(self, _c: mqtt.Client, _u: Any, message: Any) -> None:
        ip = message.payload.decode("utf-8")
        with self._lock:
            if ip not in self.nodes:
                self.nodes.append(ip)

    # -- repliers, as the original ----------------------------------------------------
    def requests_to(self, key: str) -> list[dict[str, Any]]:
        """The JSON requests that reached one replier."""
        with self._lock:
            return [json.loads(raw) for k, raw in self.requests if k == key]

    def _answer(self, key: str, raw: bytes) -> bytes | None:
        with self._lock:
            self.requests.append((key, raw))
        if key == "capabilities_replier":
            return json.dumps(self.rows).encode()
        if key == "image_status_replier" or (
            key == "image_terminate_replier" and self.terminate_dies
        ):
            return None  # its thread dies here: this and every later request go unanswered
        try:
            image = json.loads(raw.decode("utf-8"))
        except ValueError:
            return b""
        if not isinstance(image, dict) or "name" not in image or "engine" not in image:
            return b""
        if key == "deploy_image_replier":
            container_id = uuid.uuid4().hex + uuid.uuid4().hex
            with self._lock:
                self.deployed[container_id] = image
            return container_id.encode()
        with self._lock:  # terminate
            self.deployed.pop(str(image.get("id")), None)
        return b""

    def _serve(self) -> None:
        poller = zmq.Poller()
        for sock in self._sockets.values():
            poller.register(sock, zmq.POLLIN)
        while not self._stop.is_set():
            for sock, _ in poller.poll(100):
                key = next(k for k, s in self._sockets.items() if s is sock)
                reply = self._answer(key, sock.recv())
                if reply is None:
                    poller.unregister(sock)
                else:
                    sock.send(reply)

    # -- client side, as the original's orchestrator uses it --------------------------
    def _ask(self, ip: str, key: str, payload: str, timeout: float = 15.0) -> str | None:
        """One REQ exchange (the original waits forever; a test must not)."""
        sock = self.ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://{ip}:{DEFAULT_PORTS[key]}")
        try:
            sock.send_string(payload)
            if not sock.poll(int(timeout * 1000), zmq.POLLIN):
                return None
            return sock.recv_string()
        finally:
            sock.close(linger=0)

    def request_capabilities(self, ip: str) -> list[dict[str, Any]]:
        return json.loads(self._ask(ip, "capabilities_replier", "") or "[]")

    def find_node(self, needed: list[str]) -> str | None:
        """The first registered node whose capability names include all of ``needed``."""
        for ip in list(self.nodes):
            if ip == self.ip:
                continue
            names = {c["capability"] for c in self.request_capabilities(ip)}
            if all(n in names for n in needed):
                return ip
        return None

    @staticmethod
    def image(name: str, parameters: dict[str, Any], capabilities: list[str]) -> dict[str, Any]:
        """A blueprint image as the original's ``Image`` model holds it before deploying."""
        return {
            "id": "",
            "name": name,
            "engine": "docker",
            "parameters": parameters,
            "capabilities": capabilities,
            "node": None,
        }

    def deploy_image(self, image: dict[str, Any]) -> str | None:
        """Send ``image`` to ``image["node"]``; keep the reply as its id, as the original."""
        reply = self._ask(image["node"], "deploy_image_replier", json.dumps(image))
        image["id"] = reply
        return reply

    def request_image_status(self, image: dict[str, Any]) -> str | None:
        return self._ask(image["node"], "image_status_replier", json.dumps(image))

    def terminate_image(self, image: dict[str, Any]) -> str | None:
        return self._ask(image["node"], "image_terminate_replier", json.dumps(image))

    def leave(self) -> None:
        self.mqtt.publish("motey/v1/remove", self.ip).wait_for_publish(timeout=5)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self._sockets.values():
            sock.close(linger=0)
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


class SilentNode:
    """A node that registers by bare IP and accepts connections but never replies."""

    def __init__(self, ctx: zmq.Context, ip: str, broker: tuple[str, int]) -> None:
        self.ip = ip
        self._sockets = []
        for key in ("capabilities_replier", "deploy_image_replier"):
            sock = ctx.socket(zmq.ROUTER)  # takes requests, answers none
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(f"tcp://{ip}:{DEFAULT_PORTS[key]}")
            self._sockets.append(sock)
        self.mqtt = RawMQTT(broker[0], broker[1], ("motey/v1/none",))
        self.mqtt.publish("motey/v1/register", ip)

    def received(self) -> int:
        """How many requests reached the capability socket (drains them)."""
        count = 0
        while self._sockets[0].poll(0, zmq.POLLIN):
            self._sockets[0].recv_multipart()
            count += 1
        return count

    def close(self) -> None:
        for sock in self._sockets:
            sock.close(linger=0)
        self.mqtt.close()


def nodes_seen_by(node: Any) -> dict[str, dict[str, Any]]:
    """The entries of ``GET /v1/nodes`` of ``node``, other nodes only, by address."""
    return {n["ip"]: n for n in node.get("/v1/nodes").json() if not n.get("self")}


def wait_nodes(
    node: Any, predicate: Callable[[dict[str, dict[str, Any]]], bool], **kw: Any
) -> dict[str, dict[str, Any]]:
    """Wait until ``predicate`` holds for what ``node`` sees; return that view."""
    seen: dict[str, dict[str, Any]] = {}

    def check() -> bool:
        nonlocal seen
        seen = nodes_seen_by(node)
        return predicate(seen)

    wait_for(check, **kw)
    return seen


def start_zigbee_cell(
    node_factory: Callable[..., Any],
    mqtt_address: tuple[str, int],
    devices: dict[str, Any],
    a_extra: dict[str, dict[str, Any]] | None = None,
    c_extra: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Nodes a (no device rule), b and c (``/ttyUSB*=zigbee`` in their own folder of
    ``devices``), each seeing the other two: the cell of the follow-the-hardware tests.
    ``a_extra`` and ``c_extra`` are more configuration sections for a and c."""
    nodes = {"a": node_factory(name="cell-a", mqtt=mqtt_address, extra=a_extra)}
    for name in ("b", "c"):
        extra: dict[str, dict[str, Any]] = {
            "NODE": {
                "device_rules": f"{devices[name]}/ttyUSB*=zigbee",
                "device_poll_interval": 0.3,
            }
        }
        if name == "c":
            extra.update(c_extra or {})
        nodes[name] = node_factory(name=f"cell-{name}", mqtt=mqtt_address, extra=extra)
    for node in nodes.values():
        others = {n.ip for n in nodes.values() if n is not node}
        wait_nodes(node, lambda seen, o=others: o <= set(seen), what=f"{node.name} sees the cell")
    return nodes
