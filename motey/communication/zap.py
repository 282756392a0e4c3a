"""ZeroMQ authentication (ZAP, RFC 27): a CURVE client is answered only if it is a member.

libzmq asks this handler about every CURVE handshake on a socket with a ZAP domain; the
handler says yes when the client's public key belongs to an authenticated, unrevoked
member of the cell (:class:`CellMembers`). A refused client never gets a reply to
anything; each refusal is logged, at most once a minute per client address.
"""

from __future__ import annotations

import threading
import time

import logbook
import zmq

from motey.communication.zeromq_wake import Waker
from motey.security.membership import CellMembers
from motey.security.pki import z85_encode

log = logbook.Logger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = b"motey"

#: Seconds between two log lines about refused clients from one address.
LOG_EVERY = 60.0


class RateLimitedLog:
    """Logs a refusal once per key and interval, counting what it held back."""

    def __init__(self, interval: float = LOG_EVERY) -> None:
        self._interval = interval
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def warn(self, key: str, text: str) -> None:
        now = time.monotonic()
        with self._lock:
            last, held = self._last.get(key, (0.0, 0))
            if last and now - last < self._interval:
                self._last[key] = (last, held + 1)
                return
            self._last[key] = (now, 0)
            if len(self._last) > 4096:  # bounded memory under a scan from many addresses
                self._last = {key: (now, 0)}
        suffix = f" ({held} more since the last such line)" if held else ""
        log.warning("{}{}", text, suffix)


class ZAPHandler:
    """Answers libzmq's authentication requests for one context, in its own thread."""

    def __init__(
        self, context: zmq.Context, members: CellMembers, refusals: RateLimitedLog
    ) -> None:
        self._context = context
        self._members = members
        self._refusals = refusals
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: zmq.Socket | None = None
        self._waker: Waker | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        sock = self._context.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(ZAP_ENDPOINT)
        self._sock = sock
        self._waker = Waker(self._context)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="motey-zap", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        if self._waker is not None:
            self._waker.wake()
        self._thread.join(timeout=5)
        if not self._thread.is_alive() and self._waker is not None:
            self._waker.close()
            self._waker = None
        self._thread = None

    def _serve(self) -> None:
        sock = self._sock
        waker = self._waker
        assert sock is not None and waker is not None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(waker.receiver, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll())  # stop() wakes it: no timeout needed
                if waker.receiver in ready:
                    waker.drain()
                if sock not in ready:
                    continue
                frames = sock.recv_multipart()
                sock.send_multipart(self._answer(frames))
        except zmq.ZMQError as exc:
            if exc.errno != zmq.ETERM:
                log.error("ZeroMQ authentication handler failed: {}", exc)
        finally:
            sock.close(linger=0)
            self._sock = None

    def _answer(self, frames: list[bytes]) -> list[bytes]:
        if len(frames) < 6:
            return [b"1.0", b"", b"400", b"malformed ZAP request", b"", b""]
        version, request_id, _domain, address, _identity, mechanism = frames[:6]
        client = address.decode("ascii", "replace")
        if mechanism == b"CURVE" and len(frames) >= 7 and len(frames[6]) == 32:
            key = z85_encode(frames[6])
            member = self._members.member_for_key(key)
            if member is not None:
                return [version, request_id, b"200", b"OK", member.encode("ascii"), b""]
            self._refusals.warn(
                client, f"refused ZeroMQ client {client}: CURVE key {key} is not a cell member's"
            )
        else:
            self._refusals.warn(
                client,
                f"refused ZeroMQ client {client}: mechanism {mechanism.decode('ascii', 'replace')}",
            )
        return [version, request_id, b"400", b"not a member of this cell", b"", b""]
