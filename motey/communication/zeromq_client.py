"""The node-to-node client: this node's requests to its peers' ZeroMQ repliers.

The original waited forever for a reply, so one dead node in the node list hung every
orchestration. Here every request has a deadline; a REQ socket that timed out is in a
state where it can neither send nor receive, so it is closed (``LINGER=0``, nothing
queued survives) and the next request to that node gets a fresh one.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import logbook
import zmq

from motey.communication.protocol import node_requests as proto
from motey.communication.protocol.memo import Memo
from motey.communication.protocol.node_requests import RequestKind
from motey.errors import CommunicationError, MoteyError, PeerSilent
from motey.models.image import Image
from motey.models.node import DEFAULT_PORTS, Node
from motey.security.credentials import NodeCredentials
from motey.val.plugin import InstanceStatus, LogChunk

log = logbook.Logger(__name__)

#: Seconds before a node whose status replier stayed silent is asked for status again.
SILENT_STATUS_RETRY = 300.0


#: Capability replies :class:`ZeroMQNodeClient` keeps decoded (a few per peer).
DESCRIBED_MEMO = 512
#: Status requests kept encoded and status replies kept decoded (a few per image).
STATUS_MEMO = 4096
#: Milliseconds a receive blocks before the deadline and the stop flag are looked at.
RECEIVE_SLICE_MS = 250


class ZeroMQNodeClient:
    """Implements the orchestrator's ``RemoteNodeClient`` over ZeroMQ REQ sockets.

    Sockets are pooled per endpoint and used by one thread at a time, so placement may
    ask several nodes in parallel while the watcher polls image states.
    """

    #: Seconds :meth:`stop` may take (it only closes idle sockets); motey/lifecycle.py.
    STOP_WAIT = 1.0

    def __init__(
        self,
        context: zmq.Context,
        request_timeout: float = 3.0,
        action_timeout: float = 60.0,
        max_idle_per_endpoint: int = 2,
        credentials: NodeCredentials | None = None,
    ) -> None:
        """With ``credentials`` (secure mode) every request goes over CURVE to the key the
        peer's authenticated presence announced; a peer without one is not asked."""
        self._context = context
        self._credentials = credentials
        self._request_timeout = request_timeout
        self._action_timeout = max(action_timeout, request_timeout)
        self._max_idle = max_idle_per_endpoint
        self._idle: dict[str, list[zmq.Socket]] = {}
        #: Status endpoints of nodes without presence that did not answer, and since when.
        self._silent_status: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        #: Decoded capability replies by their exact bytes: a peer answers the same bytes
        #: until its capabilities or load change, and decoding (schema checks of every
        #: entry) was most of a request (docs/scale.md).
        self._described: dict[bytes, dict[str, Any]] = {}
        # The same requests and replies come again and again (docs/scale.md,
        # "Node-to-node requests"): encode and decode each distinct one once.
        self._capability_request = proto.encode_capability_request()
        self._status_requests: Memo[tuple[str, str], bytes] = Memo(
            lambda key: proto.encode_image_ref(Image(id=key[0], name="", engine=key[1])),
            STATUS_MEMO,
        )
        self._statuses: Memo[bytes, InstanceStatus] = Memo(proto.decode_status_reply, STATUS_MEMO)

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Accept requests (again)."""
        self._stopped.clear()

    def stop(self) -> None:
        """Close idle sockets; requests in flight end with a CommunicationError. Idempotent."""
        self._stopped.set()
        with self._lock:
            idle, self._idle = self._idle, {}
        for sockets in idle.values():
            for sock in sockets:
                sock.close(linger=0)

    def cancel(self) -> None:
        """End requests in flight now and refuse new ones until :meth:`start` (node stop)."""
        self._stopped.set()

    # -- RemoteNodeClient ------------------------------------------------------------
    def describe(self, node: Node) -> dict[str, Any]:
        """Capabilities, lifecycle and load of ``node`` (an original node: capabilities)."""
        raw = self._request(
            node, RequestKind.CAPABILITIES, self._capability_request, self._request_timeout
        )
        info = self._described.get(raw)
        if info is None:
            info = self._decode(node, RequestKind.CAPABILITIES, proto.decode_capability_reply, raw)
            with self._lock:
                if len(self._described) >= DESCRIBED_MEMO:
                    self._described.pop(next(iter(self._described)), None)
                self._described[raw] = info
        # A copy: callers may change what they get, the memo must not.
        info = {**info, "capabilities": [dict(c) for c in info["capabilities"]]}
        info["node_id"] = info.get("node_id") or node.id
        info["name"] = info.get("name") or node.name
        return info

    def deploy_image(self, node: Node, image: Image) -> str:
        """Ask ``node`` to run ``image``; the instance id it started."""
        raw = self._request(
            node, RequestKind.DEPLOY, proto.encode_deploy_request(image), self._action_timeout
        )
        return self._decode(node, RequestKind.DEPLOY, proto.decode_deploy_reply, raw)

    def image_status(self, node: Node, image: Image) -> InstanceStatus:
        """The state of ``image`` on ``node``.

        An original Motey's status replier stops on its first request (a bug of the
        original). So a node without presence is first asked for its capabilities,
        which tells whether it is up at all (a down node costs one timeout, not two);
        when it is up but its status replier does not answer, the state is unknown
        (``known=False``) rather than an error, and it is not asked for status again
        for :data:`SILENT_STATUS_RETRY` seconds.
        """
        extended = self._speaks_v2(node)
        endpoint = self.endpoint(node, RequestKind.STATUS)
        if not extended:
            self.describe(node)  # CommunicationError: the node itself is unreachable
            if self._silent_since(endpoint) is not None:
                return self._unknown_status(node, image)
        payload = (
            self._status_requests((image.id, image.engine))
            if extended
            else proto.encode_image_ref(image, extended=False)
        )
        try:
            raw = self._request(node, RequestKind.STATUS, payload, self._request_timeout)
        except CommunicationError:
            if extended:
                raise
            with self._lock:
                self._silent_status[endpoint] = time.monotonic()
            log.warning(
                "node {} answers capability but not status requests (an original Motey?); "
                "the state of its images is unknown",
                self._label(node),
            )
            return self._unknown_status(node, image)
        if self._silent_status:
            with self._lock:
                self._silent_status.pop(endpoint, None)
        return self._decode(node, RequestKind.STATUS, self._statuses, raw)

    def terminate_image(self, node: Node, image: Image) -> bool:
        """Ask ``node`` to stop and remove ``image``; ``False`` when it ran nothing of it."""
        raw = self._request(
            node,
            RequestKind.TERMINATE,
            proto.encode_image_ref(image, extended=self._speaks_v2(node)),
            self._action_timeout,
        )
        return self._decode(node, RequestKind.TERMINATE, proto.decode_terminate_reply, raw)

    def image_logs(
        self, node: Node, image: Image, tail: int | None, since: float | None
    ) -> LogChunk:
        """The output of ``image`` on ``node``; an original node does not answer."""
        raw = self._request(
            node,
            RequestKind.LOGS,
            proto.encode_logs_request(image, tail, since),
            self._request_timeout,
        )
        return self._decode(node, RequestKind.LOGS, proto.decode_logs_reply, raw)

    def list_services(self, node: Node) -> dict[str, Any]:
        """The services ``node`` owns; an original node does not answer."""
        raw = self._request(
            node, RequestKind.SERVICES, proto.encode_services_request(), self._request_timeout
        )
        return self._decode(node, RequestKind.SERVICES, proto.decode_services_reply, raw)

    def claims(self, node: Node, own_id: str, image_ids: list[str]) -> dict[str, list[str]]:
        """Ask the owner ``node`` which of ``image_ids`` this node (``own_id``) may keep."""
        raw = self._request(
            node,
            RequestKind.CLAIMS,
            proto.encode_claims_request(own_id, image_ids),
            self._request_timeout,
        )
        return self._decode(node, RequestKind.CLAIMS, proto.decode_claims_reply, raw)

    # -- plumbing --------------------------------------------------------------------
    def _silent_since(self, endpoint: str) -> float | None:
        """When this status endpoint was found silent, unless that is long enough ago
        to ask again (the node may have been replaced by one that answers)."""
        with self._lock:
            since = self._silent_status.get(endpoint)
            if since is not None and time.monotonic() - since > SILENT_STATUS_RETRY:
                del self._silent_status[endpoint]
                return None
            return since

    @classmethod
    def _unknown_status(cls, node: Node, image: Image) -> InstanceStatus:
        """The image's state as last known, for a node that is up but gives no state."""
        return InstanceStatus(
            image.state,
            f"state unknown: node {cls._label(node)} is up but does not answer status "
            "requests (an original Motey)",
            instance_id=image.instance_id,
            known=False,
        )

    @staticmethod
    def _speaks_v2(node: Node) -> bool:
        """Whether ``node`` announced a version (presence); else it gets original formats.

        A node known only by its bare-IP registration may be an original Motey, which
        reads a status or terminate request as the bare image id.
        """
        return node.version is not None

    @staticmethod
    def _label(node: Node) -> str:
        return f"{node.name} ({node.ip})" if node.name else node.ip

    def _decode(self, node: Node, kind: RequestKind, decode: Any, raw: bytes) -> Any:
        """Decode a reply; errors name the node and the request they came from."""
        try:
            return decode(raw)
        except MoteyError as exc:
            exc.message = f"node {self._label(node)} answered the {kind.label} request: " + (
                exc.message
            )
            exc.args = (exc.message,)
            raise

    def endpoint(self, node: Node, kind: RequestKind) -> str:
        """Where ``node`` serves requests of ``kind`` (its advertised or default port)."""
        port = node.ports.get(kind.value) or DEFAULT_PORTS[kind.value]
        return f"tcp://{node.ip}:{port}"

    def _request(self, node: Node, kind: RequestKind, payload: bytes, timeout: float) -> bytes:
        if self._stopped.is_set():
            raise CommunicationError(f"node client is stopped; {kind.label} request not sent")
        if not node.ip:
            raise CommunicationError(f"no address known for node {node.id or '(unknown)'}")
        endpoint = self.endpoint(node, kind)
        server_key: str | None = None
        if self._credentials is not None:
            if not node.curve_key:
                raise CommunicationError(
                    f"node {self._label(node)} has no CURVE key from an authenticated presence; "
                    f"{kind.label} request not sent"
                )
            server_key = node.curve_key
            endpoint = f"{endpoint}#{server_key}"
        try:
            sock = self._checkout(endpoint, server_key)
        except zmq.ZMQError as exc:
            raise CommunicationError(f"cannot connect to {endpoint}: {exc}") from exc
        healthy = False
        shortened = False
        try:
            sock.send(payload, zmq.NOBLOCK)
            deadline = time.monotonic() + timeout
            if timeout * 1000 < RECEIVE_SLICE_MS:
                sock.setsockopt(zmq.RCVTIMEO, int(timeout * 1000) + 1)
                shortened = True
            while True:
                # A blocking receive (RCVTIMEO slices, the GIL released while it waits)
                # costs less than a poll and a receive per request.
                try:
                    reply = sock.recv()
                    healthy = True
                    return reply
                except zmq.Again:
                    pass
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning(
                        "node {} did not answer the {} request within {:g} s",
                        self._label(node),
                        kind.label,
                        timeout,
                    )
                    raise PeerSilent(
                        f"node {self._label(node)} did not answer the {kind.label} request "
                        f"within {timeout:g} s ({endpoint})"
                    )
                if self._stopped.is_set():
                    raise CommunicationError(f"node client stopped during the {kind.label} request")
                if remaining * 1000 < RECEIVE_SLICE_MS:
                    sock.setsockopt(zmq.RCVTIMEO, int(remaining * 1000) + 1)
                    shortened = True
        except zmq.ZMQError as exc:
            raise CommunicationError(
                f"{kind.label} request to node {self._label(node)} failed: {exc}"
            ) from exc
        finally:
            if shortened and healthy:
                sock.setsockopt(zmq.RCVTIMEO, RECEIVE_SLICE_MS)
            self._checkin(endpoint, sock, healthy)

    def _checkout(self, endpoint: str, server_key: str | None = None) -> zmq.Socket:
        with self._lock:
            idle = self._idle.get(endpoint)
            if idle:
                return idle.pop()
        sock = self._context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, proto.MAX_MESSAGE_BYTES)
        sock.setsockopt(zmq.RCVTIMEO, RECEIVE_SLICE_MS)
        if self._credentials is not None and server_key is not None:
            sock.curve_serverkey = server_key.encode("ascii")
            sock.curve_publickey = self._credentials.curve_public.encode("ascii")
            sock.curve_secretkey = self._credentials.curve_secret.encode("ascii")
        sock.connect(endpoint.split("#", 1)[0])
        return sock

    def _checkin(self, endpoint: str, sock: zmq.Socket, healthy: bool) -> None:
        """Keep a socket that completed its exchange; close one that did not."""
        if healthy and not self._stopped.is_set():
            with self._lock:
                idle = self._idle.setdefault(endpoint, [])
                if len(idle) < self._max_idle:
                    idle.append(sock)
                    return
        sock.close(linger=0)
