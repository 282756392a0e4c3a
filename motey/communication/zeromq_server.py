"""The node-to-node repliers: one ZeroMQ REP socket per request kind that peers send requests to.

Each kind has its own socket and thread (as in the original), so a slow deployment never
delays a status request. A loop only moves bytes; :class:`NodeRequestHandler` decodes,
acts and encodes, and turns every failure into an error reply so that a REP socket is
never left waiting for a reply it cannot send.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import logbook
import zmq

from motey.communication.protocol import node_requests as proto
from motey.communication.protocol.node_requests import RequestKind
from motey.errors import ConfigError, MoteyError, ValidationError
from motey.orchestrator.executor import ImageExecutor

log = logbook.Logger(__name__)

Handler = Callable[[bytes], bytes]

#: Seconds a bind keeps retrying while the port is still held by a socket just closed.
BIND_RETRY = 1.0


class NodeRequestHandler:
    """What this node answers to each request kind; never raises."""

    def __init__(
        self,
        executor: ImageExecutor,
        owned_services: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        self._executor = executor
        self._owned_services = owned_services

    def handler(self, kind: RequestKind) -> Handler:
        """The function that answers requests of ``kind``."""
        action = {
            RequestKind.CAPABILITIES: self._capabilities,
            RequestKind.DEPLOY: self._deploy,
            RequestKind.STATUS: self._status,
            RequestKind.TERMINATE: self._terminate,
            RequestKind.LOGS: self._logs,
            RequestKind.SERVICES: self._services,
        }[kind]

        def answer(raw: bytes) -> bytes:
            try:
                return action(raw)
            except MoteyError as exc:
                level = log.info if isinstance(exc, ValidationError) else log.warning
                level("{} request refused: {}", kind.label, exc.message)
                return proto.encode_error(exc)
            except Exception as exc:  # every request gets a reply, even on a bug
                log.exception("{} request failed: {}", kind.label, exc)
                return proto.encode_error(exc)

        return answer

    def _capabilities(self, raw: bytes) -> bytes:
        version = proto.decode_capability_request(raw)
        return proto.encode_capability_reply(version, self._executor.describe())

    def _deploy(self, raw: bytes) -> bytes:
        image = proto.decode_deploy_request(raw)
        self._executor.check_peer_request(image)
        log.info("peer asks to run image {} ({}) for node {}", image.id, image.name, image.owner_id)
        return proto.encode_deploy_reply(self._executor.deploy(image))

    def _status(self, raw: bytes) -> bytes:
        ref = proto.decode_image_ref(raw)
        return proto.encode_status_reply(ref, self._executor.status(ref.as_image()))

    def _terminate(self, raw: bytes) -> bytes:
        ref = proto.decode_image_ref(raw)
        log.info("peer asks to terminate image {}", ref.id)
        return proto.encode_terminate_reply(ref, self._executor.terminate(ref.as_image()))

    def _logs(self, raw: bytes) -> bytes:
        request = proto.decode_logs_request(raw)
        chunk = self._executor.logs(request.ref.as_image(), tail=request.tail, since=request.since)
        return proto.encode_logs_reply(chunk)

    def _services(self, raw: bytes) -> bytes:
        proto.decode_services_request(raw)
        owned = self._owned_services() if self._owned_services is not None else []
        return proto.encode_services_reply(self._executor.describe(), owned)


class ZeroMQServer:
    """Binds one REP socket per request kind on ``ip`` and serves each in a thread."""

    def __init__(
        self,
        context: zmq.Context,
        handler: NodeRequestHandler,
        ip: str,
        ports: dict[str, int],
        poll_interval: float = 0.25,
    ) -> None:
        self._context = context
        self._handler = handler
        self.ip = ip
        self._ports = {kind: int(ports[kind.value]) for kind in RequestKind}
        self._poll_ms = int(poll_interval * 1000)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def endpoint(self, kind: RequestKind) -> str:
        return f"tcp://{self.ip}:{self._ports[kind]}"

    def start(self) -> None:
        """Bind every socket (failing at once on a taken port), then serve."""
        if self._threads:
            return
        self._stop.clear()
        sockets: dict[RequestKind, zmq.Socket] = {}
        try:
            for kind in RequestKind:
                sockets[kind] = self._bind(kind)
        except ConfigError:
            for sock in sockets.values():
                sock.close(linger=0)
            raise
        for kind, sock in sockets.items():
            thread = threading.Thread(
                target=self._serve,
                args=(kind, sock),
                name=f"motey-zmq-{kind.name.lower()}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()
        log.info(
            "ZeroMQ repliers listening on {} ports {}",
            self.ip,
            ", ".join(str(self._ports[k]) for k in RequestKind),
        )

    def stop(self) -> None:
        """Stop every loop and close its socket; idempotent."""
        if not self._threads:
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        log.info("ZeroMQ repliers stopped")

    def _bind(self, kind: RequestKind) -> zmq.Socket:
        sock = self._context.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        # A peer that sends more than this is disconnected by ZeroMQ before we see it.
        sock.setsockopt(zmq.MAXMSGSIZE, proto.MAX_MESSAGE_BYTES)
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

    def _serve(self, kind: RequestKind, sock: zmq.Socket) -> None:
        answer = self._handler.handler(kind)
        try:
            while not self._stop.is_set():
                try:
                    if not sock.poll(self._poll_ms, zmq.POLLIN):
                        continue
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    continue
                except zmq.ZMQError as exc:
                    if exc.errno == zmq.ETERM:
                        return
                    log.error("{} replier receive failed: {}", kind.label, exc)
                    sock = self._rebind(kind, sock)
                    continue
                if len(frames) == 1:
                    reply = answer(frames[0])
                else:
                    log.info("{} request with {} frames refused", kind.label, len(frames))
                    reply = proto.encode_error(
                        ValidationError(f"a request is one frame, got {len(frames)}")
                    )
                try:
                    sock.send(reply, zmq.NOBLOCK)
                except zmq.ZMQError as exc:
                    if exc.errno == zmq.ETERM:
                        return
                    # REP is now stuck waiting for a send; a fresh socket recovers it.
                    log.error("{} replier could not send its reply: {}", kind.label, exc)
                    sock = self._rebind(kind, sock)
        finally:
            sock.close(linger=0)

    def _rebind(self, kind: RequestKind, sock: zmq.Socket) -> zmq.Socket:
        sock.close(linger=0)
        while not self._stop.is_set():
            try:
                return self._bind(kind)
            except ConfigError as exc:
                log.error("{}; retrying", exc.message)
                self._stop.wait(1.0)
        return self._context.socket(zmq.REP)
