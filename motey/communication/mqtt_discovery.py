"""Node discovery over MQTT: keeps the NodeRepository in step with the cluster.

A node announces itself on connect in two ways: the original's bare-IP ``register``
(so original nodes see it) and a retained presence with its metadata (so late joiners
learn it without asking). The broker publishes the node's last will, a presence marked
``UNREACHABLE``, when the node vanishes without saying goodbye; a clean stop publishes
``remove`` and clears the retained presence. See docs/cluster.md for the wire format.

Liveness is the broker session (the last will), so the presence is not republished on a
timer: only when it says something new (lifecycle, capabilities, image count, or a
material load change), and once after every reconnect. After a reconnect the node
reconciles its list: a peer not heard from within a grace period is marked unreachable
(it may have crashed while the broker itself was away, when no will could be sent).
See docs/scale.md, "Peer presence is soft state".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import logbook
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from motey.communication.mqtt_tls import use_tls
from motey.communication.protocol import discovery as proto
from motey.errors import StorageError, ValidationError
from motey.models.node import Node, NodeLifecycle, NodeReachability
from motey.node.identity import NodeIdentity
from motey.repositories.node_repository import NodeRepository
from motey.security.credentials import NodeCredentials
from motey.security.membership import CellMembers
from motey.security.revocation import TOPIC_REVOCATIONS

log = logbook.Logger(__name__)

#: The load (per core) a presence carries is republished only when it moved by half of
#: what was last published (at least by 0.5) and at most this often, in seconds: placement
#: asks candidates for their load directly, the presence's load is for display.
LOAD_MIN_GAP = 300.0

#: Seconds between two presences this node publishes to answer peers' resync requests
#: (requests within that time share one answer: after a broker restart every node asks).
RESYNC_MIN_GAP = 2.0

#: Seconds a clean stop waits for its goodbye messages to reach the broker.
GOODBYE_TIMEOUT = 2.0

#: Seconds start() waits for the broker and the retained presences, so that a node which
#: starts to operate (and resumes interrupted deployments) already knows its peers.
STARTUP_SYNC_TIMEOUT = 3.0

Describe = Callable[[], dict[str, Any]]
Subscribe = Callable[[Callable[[Any], None]], None]


def unchanged(known: Node | None, node: Node) -> bool:
    """Whether ``node`` says nothing new about ``known`` except that it is alive."""
    if known is None or known.state is not NodeReachability.REACHABLE:
        return False
    # The load moves with every presence; the signature is not kept in the node list.
    same = replace(
        known,
        last_seen=node.last_seen,
        load=node.load,
        images=node.images,
        curve_signature=node.curve_signature,
    )
    return same == node


class _Client(mqtt.Client):
    """paho's client, its ``loop_start`` thread selecting with ``loop_timeout``.

    ``loop_start`` selects with a 1 s timeout only to send the keep-alive ping in time:
    a wakeup per second on every idle node. A quarter of the keepalive is as good for
    the ping (the broker allows 1.5 x keepalive); incoming messages and publishes from
    other threads wake the select anyway (paho's socket pair), so nothing waits for it.
    This overrides paho's (private) thread body; should a paho release rename it, the
    client keeps paho's 1 s.
    """

    loop_timeout = 1.0

    def _thread_main(self) -> None:
        try:
            self.loop_forever(timeout=self.loop_timeout, retry_first_connection=True)
        finally:
            self._thread = None


class MQTTDiscovery:
    """Announces this node and tracks the others through one MQTT broker."""

    #: Seconds :meth:`stop` may take: the ticker, the goodbye (GOODBYE_TIMEOUT) and the
    #: disconnect; see motey/lifecycle.py.
    STOP_WAIT = 4.0

    def __init__(
        self,
        identity: NodeIdentity,
        nodes: NodeRepository,
        describe: Describe,
        host: str,
        port: int = 1883,
        keepalive: int = 10,
        username: str = "",
        password: str = "",
        client_id: str = "",
        reconnect_max_delay: float = 30.0,
        presence_interval: float = 10.0,
        subscribe_capabilities: Subscribe | None = None,
        credentials: NodeCredentials | None = None,
        members: CellMembers | None = None,
        reconcile_grace: float | None = None,
    ) -> None:
        """With ``credentials`` (secure mode): TLS with the node's certificate, presence
        only (no bare-IP topics), presences checked against ``members``.

        ``presence_interval``: seconds between two local checks of the load and image
        count (a presence goes out only when they changed). ``reconcile_grace``: seconds
        after a reconnect within which every live peer is heard from again (default:
        ``reconnect_max_delay`` + ``keepalive`` + :data:`RESYNC_MIN_GAP`, the longest a
        live peer needs to reconnect after a broker restart and answer)."""
        self._identity = identity
        self._nodes = nodes
        self._describe = describe
        self.host = host
        self.port = port
        self._keepalive = max(1, int(keepalive))
        self._username = username
        self._password = password
        self._client_id = client_id or f"motey-{identity.id}"
        self._reconnect_max_delay = max(1, int(reconnect_max_delay))
        self._presence_interval = max(0.1, float(presence_interval))
        self._reconcile_grace = (
            float(reconcile_grace)
            if reconcile_grace is not None
            else self._reconnect_max_delay + self._keepalive + RESYNC_MIN_GAP
        )
        self._subscribe_capabilities = subscribe_capabilities
        self._client: mqtt.Client | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        #: Wakes the presence thread (a resync to answer, a reconciliation to run, stop).
        self._wake = threading.Event()
        self._ticker: threading.Thread | None = None
        self._publish_lock = threading.Lock()
        #: What the last published presence said (load, images) and when (monotonic).
        self._published: tuple[float | None, int | None, float] | None = None
        #: Whether the client connected before (the next connect is a reconnect).
        self._was_connected = False
        #: After a reconnect: peers heard from since (by id), and when to reconcile.
        self._heard: set[str] = set()
        self._reconcile_at: float | None = None
        #: When to answer peers' resync requests (monotonic), if one is pending.
        self._resync_at: float | None = None
        #: Per presence topic, the last payload received: a retained copy of the same
        #: bytes after a reconnect is a replay, not a sign of life.
        self._payloads: dict[str, bytes] = {}
        self._subscribed = False
        self._synced = threading.Event()
        #: Per presence topic, the last presence that passed the schema (docs/scale.md).
        self._validated: dict[str, dict[str, Any]] = {}
        self._credentials = credentials
        self._members = members or CellMembers(None)
        self._members.subscribe(self._on_revoked)

    @property
    def enabled(self) -> bool:
        """Whether a broker is configured (else this node is a single-node cluster)."""
        return bool(self.host)

    @property
    def connected(self) -> bool:
        client = self._client
        return client is not None and client.is_connected()

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Forget the old node list, then connect in the background (retrying with backoff).

        The local API keeps serving while the broker is away; discovery catches up on
        its own once the broker answers.
        """
        if self._client is not None:
            return
        self._nodes.clear()
        if not self.enabled:
            log.notice(
                "no MQTT broker configured ([MQTT] ip is empty): running as a single-node "
                "cluster; images this node cannot run will fail placement"
            )
            return
        if not self._subscribed:
            self._identity.subscribe(self._on_lifecycle)
            if self._subscribe_capabilities is not None:
                self._subscribe_capabilities(self._on_capabilities)
            self._subscribed = True
        self._stop.clear()
        self._wake.clear()
        self._synced.clear()
        self._was_connected = False
        self._heard = set()
        self._reconcile_at = None
        self._resync_at = None
        self._published = None
        self._payloads.clear()
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        client.loop_timeout = max(1.0, self._keepalive / 4)
        client.on_log = self._on_paho_log
        if self._credentials is not None:
            use_tls(client, *self._credentials.tls_files)
        if self._username:
            client.username_pw_set(self._username, self._password or None)
        client.will_set(
            proto.presence_topic(self._identity.id),
            proto.encode_presence(self._self_node(), NodeReachability.UNREACHABLE),
            qos=1,
            retain=True,
        )
        client.reconnect_delay_set(min_delay=1, max_delay=self._reconnect_max_delay)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        client.connect_async(self.host, self.port, keepalive=self._keepalive)
        client.loop_start()
        self._ticker = threading.Thread(target=self._run, name="motey-presence", daemon=True)
        self._ticker.start()
        log.info(
            "discovery via MQTT broker {}:{} (keepalive {} s, client id {})",
            self.host,
            self.port,
            self._keepalive,
            self._client_id,
        )
        if not self._synced.wait(STARTUP_SYNC_TIMEOUT):
            log.warning(
                "MQTT broker {}:{} not reachable yet; operating without a node list until "
                "it is (discovery keeps retrying)",
                self.host,
                self.port,
            )

    def stop(self) -> None:
        """Say goodbye (``remove`` + cleared presence), disconnect, join threads; idempotent."""
        client = self._client
        if client is None:
            return
        self._stop.set()
        self._wake.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1.0)
            self._ticker = None
        if client.is_connected():
            pending = [
                client.publish(proto.presence_topic(self._identity.id), b"", qos=1, retain=True),
            ]
            if not self.secure:
                pending.append(
                    client.publish(proto.TOPIC_REMOVE, proto.encode_ip(self._identity.ip), qos=1)
                )
            deadline = time.monotonic() + GOODBYE_TIMEOUT
            for info in pending:
                try:
                    info.wait_for_publish(timeout=max(0.01, deadline - time.monotonic()))
                except (RuntimeError, ValueError) as exc:
                    log.warning("goodbye message not delivered: {}", exc)
            if not all(info.is_published() for info in pending):
                log.warning("broker did not confirm the goodbye; peers rely on the last will")
        client.disconnect()  # a clean DISCONNECT: the broker drops the last will
        client.loop_stop()
        self._client = None
        log.info("left the cluster (MQTT discovery stopped)")

    # -- publishing ------------------------------------------------------------------
    def _self_node(self) -> Node:
        try:
            info = self._describe()
        except Exception as exc:  # presence must go out even if a source fails
            log.warning("cannot describe this node for discovery: {}", exc)
            info = {}
        node = self._identity.as_node(info.get("capabilities") or [])
        load = info.get("load")
        node.load = float(load) if isinstance(load, int | float) else None
        images = info.get("images")
        node.images = images if isinstance(images, int) else None
        if self._credentials is not None:
            node.curve_key = self._credentials.curve_public
            node.curve_signature = self._credentials.curve_signature
        return node

    @property
    def secure(self) -> bool:
        """Whether this node speaks only authenticated presence (secure mode)."""
        return self._credentials is not None

    def publish_presence(self, resync: bool = False) -> None:
        """Publish this node's retained presence (when connected).

        ``resync`` asks every peer that receives it live to publish its own presence
        once (sent after a reconnect, see :meth:`_reconcile`)."""
        client = self._client
        if client is None or not client.is_connected():
            return
        self._publish(client, resync)

    def _publish(self, client: mqtt.Client, resync: bool = False) -> None:
        with self._publish_lock:
            node = self._self_node()
            client.publish(
                proto.presence_topic(self._identity.id),
                proto.encode_presence(node, resync=resync),
                qos=1,
                retain=True,
            )
            self._published = (node.load, node.images, time.monotonic())

    def _announce(self, client: mqtt.Client, resync: bool = False) -> None:
        self._publish(client, resync)
        if not self.secure:
            client.publish(proto.TOPIC_REGISTER, proto.encode_ip(self._identity.ip), qos=1)

    def _on_lifecycle(self, phase: NodeLifecycle) -> None:
        self.publish_presence()

    def _on_capabilities(self, _capabilities: Any) -> None:
        self.publish_presence()

    def _run(self) -> None:
        """The presence thread: sleeps until something is due, never polls the peers.

        Due are: a local check of load and image count every ``presence_interval``
        (nothing is sent unless they changed), an answer to peers' resync requests, and
        the reconciliation after a reconnect.
        """
        next_check = time.monotonic() + self._presence_interval
        while not self._stop.is_set():
            due = [next_check]
            if self._resync_at is not None:
                due.append(self._resync_at)
            if self._reconcile_at is not None:
                due.append(self._reconcile_at)
            self._wake.wait(max(0.0, min(due) - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            now = time.monotonic()
            try:
                reconcile_at, resync_at = self._reconcile_at, self._resync_at
                # (unless a newer reconnect moved it meanwhile: then that one's turn)
                if reconcile_at is not None and now >= reconcile_at == self._reconcile_at:
                    self._reconcile_at = None
                    if self.connected:
                        self._reconcile()
                if resync_at is not None and now >= resync_at:
                    if self._resync_at == resync_at:
                        self._resync_at = None
                    self.publish_presence()
                if now >= next_check:
                    next_check = now + self._presence_interval
                    self._publish_if_moved(now)
            except Exception as exc:  # the thread must outlive any single failure
                log.exception("presence round failed: {}", exc)

    def _publish_if_moved(self, now: float) -> None:
        """Republish when the image count changed, or the load materially (rate-limited)."""
        published = self._published
        if published is None or not self.connected:
            return
        load, images, at = published
        try:
            info = self._describe()
        except Exception as exc:
            log.warning("cannot describe this node for discovery: {}", exc)
            return
        new_load, new_images = info.get("load"), info.get("images")
        if new_images != images:
            self.publish_presence()
        elif isinstance(new_load, int | float) and now - at >= LOAD_MIN_GAP:
            old = load or 0.0
            if abs(float(new_load) - old) >= max(0.5, old / 2):
                self.publish_presence()

    def _reconcile(self) -> None:
        """After a reconnect: peers not heard from since are marked unreachable.

        A peer that crashed while the broker itself was away (restarting) left no last
        will, and its retained presence, if the broker kept one, still says REACHABLE.
        Every live peer publishes a fresh presence when it reconnects and answers the
        resync request this node sent with its own; one that did neither within the
        grace period is gone. Bare-IP (original) peers never republish and are left to
        placement's own check.
        """
        with self._lock:
            for node in self._nodes.all():
                if (
                    node.version is not None
                    and node.id is not None
                    and node.id not in self._heard
                    and node.state is NodeReachability.REACHABLE
                ):
                    node.state = NodeReachability.UNREACHABLE
                    self._nodes.upsert(node)
                    log.warning(
                        "node {} ({}) not heard from within {:g} s after the broker came "
                        "back: marked unreachable",
                        node.name,
                        node.ip,
                        self._reconcile_grace,
                    )

    # -- paho callbacks (network thread) ---------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("MQTT broker {}:{} refused the connection: {}", self.host, self.port, reason)
            return
        log.info("connected to MQTT broker {}:{}", self.host, self.port)
        reconnect = self._was_connected
        self._was_connected = True
        if reconnect:
            # Peers that crashed while we were away may have left no will: whoever is not
            # heard from (fresh presence) within the grace period is gone (_reconcile).
            with self._lock:
                self._heard = set()
            self._reconcile_at = time.monotonic() + self._reconcile_grace
            self._wake.set()
        if self.secure:
            # Our own presence comes back after the retained ones: the node list is complete.
            client.subscribe([(proto.TOPIC_PRESENCE_FILTER, 1), (TOPIC_REVOCATIONS, 1)])
            self._announce(client, resync=reconnect)
            return
        client.subscribe([(topic, 1) for topic in proto.SUBSCRIPTIONS])
        self._announce(client, resync=reconnect)
        # Original nodes answer this with their bare IP on ``register``. Our own copy
        # comes back after the retained presences (same connection, broker keeps order),
        # which tells start() that the node list is complete.
        client.publish(proto.TOPIC_NODES_REQUEST, proto.encode_ip(self._identity.ip), qos=1)

    def _on_paho_log(self, _client: mqtt.Client, _userdata: Any, level: int, text: str) -> None:
        """paho's own log lines, into logbook.

        After a deliberate disconnect paho's loop runs once more without a socket and
        logs that as an error; that line is noise during stop and is dropped.
        """
        if level == mqtt.MQTT_LOG_ERR:
            if not self._stop.is_set():
                log.error("paho: {}", text)
        elif level == mqtt.MQTT_LOG_WARNING:
            log.warning("paho: {}", text)
        else:
            log.trace("paho: {}", text)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if self._stop.is_set():
            return
        log.warning(
            "lost the MQTT broker {}:{} ({}); reconnecting with backoff up to {} s",
            self.host,
            self.port,
            reason,
            self._reconnect_max_delay,
        )

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        """Apply one discovery message; a bad one is logged and changes nothing."""
        topic = message.topic
        payload = bytes(message.payload)
        try:
            if self.secure:
                self._on_secure_message(topic, payload, bool(message.retain))
            elif topic == proto.TOPIC_REGISTER:
                self._handle_register(proto.decode_ip(payload))
            elif topic == proto.TOPIC_REMOVE:
                self._handle_remove(proto.decode_ip(payload))
            elif topic == proto.TOPIC_NODES_REQUEST:
                self._handle_nodes_request(client, proto.decode_ip(payload))
            elif topic.startswith(proto.TOPIC_PRESENCE_PREFIX):
                self._handle_presence(topic, payload, bool(message.retain))
        except ValidationError as exc:
            log.warning("ignored malformed discovery message on {}: {}", topic, exc.message)
        except StorageError as exc:
            log.error("discovery message on {} not stored: {}", topic, exc.message)
        except Exception as exc:  # the network thread must never die on a message
            log.exception("discovery message on {} failed: {}", topic, exc)

    # -- message handling ------------------------------------------------------------
    def _on_secure_message(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """Secure mode: authenticated presence and the CA-signed revocation list only."""
        if topic == TOPIC_REVOCATIONS:
            if payload:
                self._members.apply_revocations(payload)
        elif topic.startswith(proto.TOPIC_PRESENCE_PREFIX):
            self._handle_presence(topic, payload, retained)
        else:  # bare-IP topics: the broker's ACL keeps them out; never trust them anyway
            log.warning("ignored {} message: a secure node takes presence only", topic)

    def _on_revoked(self, keys: frozenset[str]) -> None:
        with self._lock:
            for node in self._nodes.all():
                if node.curve_key in keys:
                    self._nodes.remove(node.ip)
                    log.warning("dropped revoked node {} ({})", node.id, node.ip)

    def _handle_register(self, ip: str) -> None:
        if ip == self._identity.ip:
            return
        with self._lock:
            node = self._nodes.get(ip)
            if node is None:
                node = Node(ip=ip)  # an original node: default ports, assumed operating
                log.info("node {} registered (bare IP; default ports assumed)", ip)
            elif node.state is NodeReachability.UNREACHABLE:
                log.info("node {} ({}) is reachable again", node.name, ip)
            node.state = NodeReachability.REACHABLE
            node.last_seen = time.time()
            self._nodes.upsert(node)

    def _handle_remove(self, ip: str) -> None:
        if ip == self._identity.ip:
            return
        with self._lock:
            if self._nodes.remove(ip):
                log.info("node {} left the cluster", ip)

    def _handle_nodes_request(self, client: mqtt.Client, ip: str) -> None:
        if ip == self._identity.ip:
            self._synced.set()
            return
        # A presence-speaking node learns every peer from the retained presences (its
        # own presence reached us before this request: same connection, broker keeps
        # order), so only an original node gets an answer: our bare IP on ``register``.
        # Re-announcing to everyone on every request cost each node 2N+2 messages per
        # join (docs/scale.md).
        known = self._nodes.get(ip)
        if known is not None and known.version is not None:
            return
        log.debug("node {} asks for the cluster's nodes", ip)
        client.publish(proto.TOPIC_REGISTER, proto.encode_ip(self._identity.ip), qos=1)

    def _handle_presence(self, topic: str, payload: bytes, retained: bool = False) -> None:
        node_id = proto.node_id_from_topic(topic)
        if node_id == self._identity.id:
            if self.secure:
                self._synced.set()
            return
        node, resync = proto.decode_presence_message(topic, payload, self._validated)
        if resync and not retained and self._resync_at is None:
            # A peer reconnected and asks everyone to be heard from again: one answer
            # per RESYNC_MIN_GAP covers every request within it (docs/scale.md).
            published = self._published
            last = published[2] if published is not None else 0.0
            self._resync_at = max(time.monotonic(), last + RESYNC_MIN_GAP)
            self._wake.set()
        if node is not None and self.secure:
            refused = self._members.admit(node_id, node.curve_key, node.curve_signature)
            if refused:
                log.warning("ignored presence on {}: {}", topic, refused)
                node = None  # and forget what this identity said before
        with self._lock:
            # A retained copy of bytes already seen is a replay (after a reconnect), not
            # a sign of life; every publication differs (its timestamp).
            if self._payloads.get(topic) != payload:
                self._heard.add(node_id)
            if payload:
                self._payloads[topic] = payload
            else:
                self._payloads.pop(topic, None)
            known = self._nodes.get_by_id(node_id)
            if node is None:
                if known is not None:
                    self._nodes.remove(known.ip)
                    log.info("node {} ({}) left the cluster", known.name, known.ip)
                return
            if node.ip == self._identity.ip:
                log.warning(
                    "ignored presence of node {}: it claims this node's address {}",
                    node_id,
                    node.ip,
                )
                return
            if node.state is NodeReachability.UNREACHABLE:
                if known is not None:
                    node = known
                    node.state = NodeReachability.UNREACHABLE
                log.warning("node {} ({}) is unreachable (last will)", node.name, node.ip)
                self._nodes.upsert(node)
                return
            node.last_seen = time.time()
            if unchanged(known, node):  # only load or images moved: refresh, no event
                self._nodes.touch(node.ip, node.last_seen, node.load, node.images)
                return
            if known is not None and known.ip != node.ip:
                self._nodes.remove(known.ip)  # same node, new address
            if known is None or known.state is not NodeReachability.REACHABLE:
                log.info(
                    "node {} ({}) is reachable, lifecycle {}",
                    node.name,
                    node.ip,
                    node.lifecycle.value,
                )
            elif known.lifecycle is not node.lifecycle:
                log.info("node {} ({}) is now in {}", node.name, node.ip, node.lifecycle.value)
            self._nodes.upsert(node)
