"""The node-to-node repliers: one ZeroMQ REP socket per request kind that peers send requests to.

Each kind has its own socket and thread (as in the original), so a slow deployment never
delays a status request. A loop only moves bytes; :class:`NodeRequestHandler` decodes,
acts and encodes, and turns every failure into an error reply so that a REP socket is
never left waiting for a reply it cannot send.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import logbook
import zmq

from motey.communication.protocol import node_requests as proto
from motey.communication.protocol.memo import Memo
from motey.communication.protocol.node_requests import RequestKind
from motey.communication.zap import ZAP_DOMAIN, RateLimitedLog, ZAPHandler
from motey.communication.zeromq_wake import Waker
from motey.errors import ConfigError, MoteyError, ValidationError
from motey.orchestrator.executor import ImageExecutor
from motey.security.audit import AuditLog
from motey.security.credentials import NodeCredentials
from motey.security.membership import CellMembers
from motey.val.plugin import InstanceStatus

log = logbook.Logger(__name__)

Handler = Callable[..., bytes]  # (raw request, peer identity="") -> raw reply

#: The request kinds that change something on this node, and so are audited.
AUDITED = frozenset({RequestKind.DEPLOY, RequestKind.TERMINATE})
#: The owner's answer to a claims request: ``(node id, image ids) -> (keep, stop)``.
Claims = Callable[[str, list[str]], tuple[list[str], list[str]]]

#: Seconds a bind keeps retrying while the port is still held by a socket just closed.
BIND_RETRY = 1.0

#: Milliseconds a replier that has just answered waits for the next request in a plain
#: blocking receive before it goes back to polling its socket with its waker: while
#: requests flow, one call into ZeroMQ per request instead of a poll and a receive
#: (the poll alone cost ~15 % of a round trip); a stop then waits at most this long.
FAST_WAIT_MS = 50


class NodeRequestHandler:
    """What this node answers to each request kind; never raises."""

    def __init__(
        self,
        executor: ImageExecutor,
        owned_services: Callable[[], list[dict[str, Any]]] | None = None,
        claims: Claims | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self._executor = executor
        self._owned_services = owned_services
        self._claims = claims
        self._audit = audit
        # The read-only requests are answered from memos (docs/scale.md, "Node-to-node
        # requests"): a request's bytes decode the same way every time, and a reply is
        # a function of what it reports.
        self._capability_versions: Memo[bytes, int] = Memo(proto.decode_capability_request, 64)
        #: The encoded capability reply per format version, with the description key
        #: (:meth:`ImageExecutor.description_key`) it was made for.
        self._capability_replies: dict[int, tuple[Hashable, bytes]] = {}
        self._image_refs: Memo[bytes, proto.ImageRef] = Memo(proto.decode_image_ref, 4096)
        self._status_replies: Memo[tuple[proto.ImageRef, InstanceStatus], bytes] = Memo(
            lambda key: proto.encode_status_reply(*key), 4096
        )

    def audited(self, kind: RequestKind) -> bool:
        """Whether requests of ``kind`` get an audit line (and so need the peer's name)."""
        return self._audit is not None and kind in AUDITED

    def handler(self, kind: RequestKind) -> Handler:
        """The function that answers requests of ``kind``."""
        action = {
            RequestKind.CAPABILITIES: self._capabilities,
            RequestKind.DEPLOY: self._deploy,
            RequestKind.STATUS: self._status,
            RequestKind.TERMINATE: self._terminate,
            RequestKind.LOGS: self._logs,
            RequestKind.SERVICES: self._services,
            RequestKind.CLAIMS: self._answer_claims,
        }[kind]
        audited = self.audited(kind)

        def answer(raw: bytes, peer: str = "", address: str = "") -> bytes:
            result = "ok"
            try:
                return action(raw)
            except MoteyError as exc:
                level = log.info if isinstance(exc, ValidationError) else log.warning
                level("{} request refused: {}", kind.label, exc.message)
                result = f"{type(exc).__name__}: {exc.message}"
                return proto.encode_error(exc)
            except Exception as exc:  # every request gets a reply, even on a bug
                log.exception("{} request failed: {}", kind.label, exc)
                result = f"{type(exc).__name__}: {exc}"
                return proto.encode_error(exc)
            finally:
                if audited and self._audit is not None:
                    self._audit.record(
                        who=peer or (f"address {address}" if address else "(unknown peer)"),
                        origin=address,
                        what=f"peer {kind.label} request",
                        result=result,
                        image=_image_id(raw),
                    )

        return answer

    def _capabilities(self, raw: bytes) -> bytes:
        version = self._capability_versions(raw)
        # The key is read before the description: a change in between makes the next
        # request's key differ, so a reply is never kept under a key newer than itself.
        key = self._executor.description_key()
        kept = self._capability_replies.get(version)
        if kept is not None and kept[0] == key:
            return kept[1]
        reply = proto.encode_capability_reply(version, self._executor.describe())
        self._capability_replies[version] = (key, reply)
        return reply

    def _deploy(self, raw: bytes) -> bytes:
        image = proto.decode_deploy_request(raw)
        self._executor.check_peer_request(image)
        log.info("peer asks to run image {} ({}) for node {}", image.id, image.name, image.owner_id)
        return proto.encode_deploy_reply(self._executor.deploy(image))

    def _status(self, raw: bytes) -> bytes:
        ref = self._image_refs(raw)
        return self._status_replies((ref, self._executor.status_of(ref.id, ref.engine)))

    def _terminate(self, raw: bytes) -> bytes:
        ref = proto.decode_image_ref(raw)
        log.info("peer asks to terminate image {}", ref.id)
        return proto.encode_terminate_reply(ref, self._executor.terminate(ref.as_image()))

    def _answer_claims(self, raw: bytes) -> bytes:
        node_id, image_ids = proto.decode_claims_request(raw)
        if self._claims is None:
            raise ValidationError("this node answers no image claims")
        keep, stop = self._claims(node_id, image_ids)
        log.info(
            "node {} asked for {} image(s): keep {}, stop {}",
            node_id,
            len(image_ids),
            len(keep),
            len(stop),
        )
        return proto.encode_claims_reply(keep, stop)

    def _logs(self, raw: bytes) -> bytes:
        request = proto.decode_logs_request(raw)
        chunk = self._executor.logs(request.ref.as_image(), tail=request.tail, since=request.since)
        return proto.encode_logs_reply(chunk)

    def _services(self, raw: bytes) -> bytes:
        proto.decode_services_request(raw)
        owned = self._owned_services() if self._owned_services is not None else []
        return proto.encode_services_reply(self._executor.describe(), owned)


def peer_of(frame: zmq.Frame) -> tuple[str, str]:
    """Who sent a request and from where: its authenticated identity (the ZAP
    ``User-Id``: the cell member's name, set by CURVE authentication; empty without) and
    its address (``Peer-Address``)."""
    found = []
    for prop in ("User-Id", "Peer-Address"):
        try:
            value = frame.get(prop)
        except (zmq.ZMQError, ValueError, AttributeError):
            value = ""
        found.append(str(value or ""))
    return found[0], found[1]


def _image_id(raw: bytes) -> str | None:
    """The image a request names, for the audit line; never raises."""
    try:
        text = raw[:4096].decode("utf-8", "replace").strip()
        if not text.startswith("{"):
            return text[:100] or None
        data = json.loads(raw)
        value = data.get("id") if isinstance(data, dict) else None
        return str(value)[:100] if value else None
    except Exception:  # the audit line must not fail on what the request itself refused
        return None


class ZeroMQServer:
    """Binds one REP socket per request kind on ``ip`` and serves each in a thread."""

    #: Seconds :meth:`stop` may take (stop wakes every idle loop at once, one that has
    #: just answered within FAST_WAIT_MS; a handler running longer is left behind and
    #: reported); see motey/lifecycle.py.
    STOP_WAIT = 2.0

    def __init__(
        self,
        context: zmq.Context,
        handler: NodeRequestHandler,
        ip: str,
        ports: dict[str, int],
        poll_interval: float = 0.25,
        credentials: NodeCredentials | None = None,
        members: CellMembers | None = None,
    ) -> None:
        """With ``credentials`` (secure mode) every socket is a CURVE server that answers
        only clients whose key ``members`` knows (see :mod:`motey.communication.zap`)."""
        self._context = context
        self._credentials = credentials
        self._refusals = RateLimitedLog()
        self._zap = (
            ZAPHandler(context, members or CellMembers(credentials), self._refusals)
            if credentials is not None
            else None
        )
        self._handler = handler
        self.ip = ip
        # A kind without a configured port is not served (e.g. claims on an old config).
        self._ports = {kind: int(ports[kind.value]) for kind in RequestKind if kind.value in ports}
        self._poll_ms = int(poll_interval * 1000)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        #: One per loop: stop() wakes the loops instead of waiting for a poll timeout.
        self._wakers: list[Waker] = []
        #: False when a replier was still inside a handler when :meth:`stop` gave up;
        #: the shared context must then not be destroyed under it.
        self.drained = True

    def endpoint(self, kind: RequestKind) -> str:
        return f"tcp://{self.ip}:{self._ports[kind]}"

    def start(self) -> None:
        """Bind every socket (failing at once on a taken port), then serve."""
        if self._threads:
            return
        self._stop.clear()
        if self._zap is not None:
            self._zap.start()
        sockets: dict[RequestKind, zmq.Socket] = {}
        try:
            for kind in self._ports:
                sockets[kind] = self._bind(kind)
        except ConfigError:
            for sock in sockets.values():
                sock.close(linger=0)
            if self._zap is not None:
                self._zap.stop()
            raise
        for kind, sock in sockets.items():
            waker = Waker(self._context)
            self._wakers.append(waker)
            thread = threading.Thread(
                target=self._serve,
                args=(kind, sock, waker),
                name=f"motey-zmq-{kind.name.lower()}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()
        log.info(
            "ZeroMQ repliers listening on {} ports {}{}",
            self.ip,
            ", ".join(str(self._ports[k]) for k in sockets),
            " (CURVE, cell members only)" if self._zap is not None else " (plain: open mode)",
        )

    def stop(self) -> None:
        """Stop every loop and close its socket; idempotent."""
        if not self._threads:
            return
        self._stop.set()
        for waker in self._wakers:
            waker.wake()
        deadline = time.monotonic() + self.STOP_WAIT - 0.2
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        busy = [t.name for t in self._threads if t.is_alive()]
        self.drained = not busy
        if busy:
            log.warning("ZeroMQ repliers still inside a handler: {}", ", ".join(busy))
        else:
            for waker in self._wakers:
                waker.close()
        self._threads = []
        self._wakers = []
        if self._zap is not None:
            self._zap.stop()
        log.info("ZeroMQ repliers stopped")

    def _bind(self, kind: RequestKind) -> zmq.Socket:
        sock = self._context.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        # A peer that sends more than this is disconnected by ZeroMQ before we see it.
        sock.setsockopt(zmq.MAXMSGSIZE, proto.MAX_MESSAGE_BYTES)
        sock.setsockopt(zmq.RCVTIMEO, FAST_WAIT_MS)
        if self._credentials is not None:
            sock.curve_server = True
            sock.curve_secretkey = self._credentials.curve_secret.encode("ascii")
            sock.zap_domain = ZAP_DOMAIN
        deadline = time.monotonic() + BIND_RETRY
        while True:
            try:
                sock.bind(self.endpoint(kind))
                return sock
            except zmq.ZMQError as exc:
                # A socket of this process closed a moment ago is unbound asynchronously
                # by ZeroMQ's I/O thread; give it a moment before calling the port taken.
                if exc.errno == zmq.EADDRINUSE and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                error = exc
                break
        sock.close(linger=0)
        raise ConfigError(
            f"ZeroMQ {kind.label} replier cannot listen on {self.endpoint(kind)}: {error} "
            f"(check [NODE] ip and [ZEROMQ] {kind.value})"
        ) from error

    def _monitor(self, sock: zmq.Socket) -> zmq.Socket | None:
        """A monitor of failed handshakes (plain clients), in secure mode."""
        if self._credentials is None:
            return None
        return sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        )

    def _log_failed_handshakes(self, kind: RequestKind, monitor: zmq.Socket) -> None:
        while True:
            try:
                monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._refusals.warn(
                f"port-{kind.value}",
                f"refused a ZeroMQ client on {self.endpoint(kind)}: its handshake is not "
                "CURVE (a plain or foreign client)",
            )

    @staticmethod
    def _poller(sock: zmq.Socket, monitor: zmq.Socket | None, waker: Waker) -> zmq.Poller:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(waker.receiver, zmq.POLLIN)
        if monitor is not None:
            poller.register(monitor, zmq.POLLIN)
        return poller

    def _serve(self, kind: RequestKind, sock: zmq.Socket, waker: Waker) -> None:
        answer = self._handler.handler(kind)
        # Only audited requests need the sender's name (a frame property); the others
        # are received as plain bytes, which is cheaper than a frame per message. A
        # handler that does not say gets the sender's name with every request.
        audited = getattr(self._handler, "audited", None)
        with_peer = audited(kind) if audited is not None else True
        monitor = self._monitor(sock)
        poller = self._poller(sock, monitor, waker)
        #: Just answered a request: wait for the next one in a blocking receive (up to
        #: FAST_WAIT_MS) rather than a poll.
        flowing = False
        try:
            while not self._stop.is_set():
                try:
                    if flowing:
                        frames = sock.recv_multipart(0, copy=not with_peer)
                    else:
                        # No timeout: stop() wakes this loop through its waker.
                        ready = dict(poller.poll())
                        if waker.receiver in ready:
                            waker.drain()
                            continue
                        if monitor is not None and monitor in ready:
                            self._log_failed_handshakes(kind, monitor)
                        if sock not in ready:
                            continue
                        frames = sock.recv_multipart(zmq.NOBLOCK, copy=not with_peer)
                except zmq.Again:
                    flowing = False
                    continue
                except zmq.ZMQError as exc:
                    if exc.errno == zmq.ETERM:
                        return
                    log.error("{} replier receive failed: {}", kind.label, exc)
                    monitor = self._close_monitor(sock, monitor)
                    sock = self._rebind(kind, sock)
                    monitor = self._monitor(sock)
                    poller = self._poller(sock, monitor, waker)
                    continue
                if len(frames) == 1:
                    frame = frames[0]
                    if isinstance(frame, bytes):
                        reply = answer(frame)
                    else:
                        reply = answer(frame.bytes, *peer_of(frame))
                else:
                    log.info("{} request with {} frames refused", kind.label, len(frames))
                    reply = proto.encode_error(
                        ValidationError(f"a request is one frame, got {len(frames)}")
                    )
                try:
                    sock.send(reply, zmq.NOBLOCK)
                    flowing = True
                except zmq.ZMQError as exc:
                    if exc.errno == zmq.ETERM:
                        return
                    # REP is now stuck waiting for a send; a fresh socket recovers it.
                    log.error("{} replier could not send its reply: {}", kind.label, exc)
                    monitor = self._close_monitor(sock, monitor)
                    sock = self._rebind(kind, sock)
                    monitor = self._monitor(sock)
                    poller = self._poller(sock, monitor, waker)
        finally:
            self._close_monitor(sock, monitor)
            sock.close(linger=0)
            # The loop is over: its waker is closed here too, for a stop that gave up on a
            # busy handler and so could not close it itself (idempotent, under its lock).
            waker.close()

    @staticmethod
    def _close_monitor(sock: zmq.Socket, monitor: zmq.Socket | None) -> None:
        """Close a handshake monitor (if any); returns ``None`` for the caller's variable."""
        if monitor is None:
            return None
        with contextlib.suppress(zmq.ZMQError):
            sock.disable_monitor()
        monitor.close(linger=0)
        return None

    def _rebind(self, kind: RequestKind, sock: zmq.Socket) -> zmq.Socket:
        sock.close(linger=0)
        while not self._stop.is_set():
            try:
                return self._bind(kind)
            except ConfigError as exc:
                log.error("{}; retrying", exc.message)
                self._stop.wait(1.0)
        return self._context.socket(zmq.REP)
