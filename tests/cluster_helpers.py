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
    """An original (2017) Motey node on the wire: bare-IP discovery and its ZeroMQ formats.

    Its capability replier answers any request with a JSON list, its deploy replier takes
    the image JSON and answers with a container id; status is answered with a bare state
    name and terminate with an arbitrary text, as the thesis describes them. It starts
    no containers: it records what it was asked.
    """

    def __init__(
        self, ctx: zmq.Context, ip: str, capabilities: list[dict[str, str]], broker: tuple[str, int]
    ) -> None:
        self.ip = ip
        self.capabilities = capabilities
        self.deployed: dict[str, dict[str, Any]] = {}
        self.terminated: list[str] = []
        self.requests: list[tuple[str, bytes]] = []
        self._stop = threading.Event()
        self._sockets = {}
        for key in ("capabilities_replier", "deploy_image_replier", "image_status_replier"):
            sock = ctx.socket(zmq.REP)
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(f"tcp://{ip}:{DEFAULT_PORTS[key]}")
            self._sockets[key] = sock
        sock = ctx.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(f"tcp://{ip}:{DEFAULT_PORTS['image_terminate_replier']}")
        self._sockets["image_terminate_replier"] = sock
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self.mqtt = RawMQTT(broker[0], broker[1], ("motey/v1/nodes_request",))
        self.mqtt.client.message_callback_add("motey/v1/nodes_request", self._on_nodes_request)
        self.mqtt.publish("motey/v1/register", ip)

    def _on_nodes_request(self, client: mqtt.Client, _u: Any, _m: Any) -> None:
        client.publish("motey/v1/register", self.ip)

    def _answer(self, key: str, raw: bytes) -> bytes:
        self.requests.append((key, raw))
        if key == "capabilities_replier":
            return json.dumps(self.capabilities).encode()
        if key == "deploy_image_replier":
            image = json.loads(raw)
            self.deployed[image["id"]] = image
            return uuid.uuid4().hex.encode()
        if key == "image_status_replier":
            return b"RUNNING" if raw.decode() in self.deployed else b"ERROR"
        self.terminated.append(raw.decode())
        self.deployed.pop(raw.decode(), None)
        return b""

    def _serve(self) -> None:
        poller = zmq.Poller()
        for sock in self._sockets.values():
            poller.register(sock, zmq.POLLIN)
        while not self._stop.is_set():
            for sock, _ in poller.poll(100):
                key = next(k for k, s in self._sockets.items() if s is sock)
                sock.send(self._answer(key, sock.recv()))

    def leave(self) -> None:
        self.mqtt.publish("motey/v1/remove", self.ip)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self._sockets.values():
            sock.close(linger=0)
        self.mqtt.close()


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
