"""Long-lived HTTP responses: the event stream and followed logs.

Each open stream holds one of the WSGI server's worker threads, so their number is
bounded (``[WEBSERVER] max_streams``) and each one ends on its own: when the client goes
away (the next write fails; a comment line is written every few seconds to find out),
when its time limit is reached, or when the server stops (:meth:`StreamGate.close` is
called by the API server before it waits for its workers).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import logbook

from motey.errors import Busy
from motey.events import EventBus
from motey.orchestrator.logs import LogReader
from motey.val.plugin import LogChunk

log = logbook.Logger(__name__)

#: Seconds between two comment lines on an idle stream (finds clients that went away).
HEARTBEAT = 5.0
#: Seconds a followed-log loop waits at most before it checks whether the server stops
#: (the event stream needs no such poll: a stop wakes it, see :meth:`StreamGate.close`).
TICK = 0.25


class StreamGate:
    """Counts open streams and tells them when the server stops."""

    def __init__(self, max_streams: int = 4) -> None:
        self._max = max(1, max_streams)
        self._open = 0
        self._lock = threading.Lock()
        self._wakers: dict[int, Callable[[], None]] = {}
        self.stopping = threading.Event()

    def acquire(self, wake: Callable[[], None] | None = None) -> Callable[[], None]:
        """Reserve a stream; returns its release function, or raises Busy.

        ``wake`` is called by :meth:`close`: a stream that waits without a timeout
        (the event stream) ends at once instead of at its next poll.
        """
        with self._lock:
            if self.stopping.is_set():
                raise Busy("the node is shutting down; no new streams")
            if self._open >= self._max:
                raise Busy(
                    f"{self._max} streams (events, followed logs) are already open on this "
                    "node ([WEBSERVER] max_streams); close one or try again later"
                )
            self._open += 1
        released = threading.Event()
        key = id(released)
        if wake is not None:
            with self._lock:
                self._wakers[key] = wake

        def release() -> None:
            if not released.is_set():
                released.set()
                with self._lock:
                    self._open -= 1
                    self._wakers.pop(key, None)

        return release

    @property
    def open_streams(self) -> int:
        return self._open

    def start(self) -> None:
        self.stopping.clear()

    def close(self) -> None:
        """End every open event stream now and every followed log within :data:`TICK`
        seconds; idempotent."""
        self.stopping.set()
        with self._lock:
            wakers = list(self._wakers.values())
        for wake in wakers:
            wake()


class StreamService:
    """Builds the generators that the stream endpoints return."""

    def __init__(
        self,
        gate: StreamGate,
        bus: EventBus,
        logs: LogReader,
        max_follow_seconds: float = 3600,
    ) -> None:
        self._gate = gate
        self._bus = bus
        self._logs = logs
        self._max_follow = max_follow_seconds

    def events(self) -> Iterator[str]:
        """Server-Sent Events of every state change, until the client or the server goes.

        The slot and the subscription are taken here, before the response starts, so a
        refusal is an ordinary 503 answer.
        """
        sub = self._bus.subscribe()
        try:
            release = self._gate.acquire(wake=sub.wake)
        except BaseException:
            sub.close()
            raise

        def stream() -> Iterator[str]:
            # No timed poll: the stream sleeps until an event, its next heartbeat, or a
            # stop (the gate and the bus wake it), so an open web client costs an idle
            # node no wakeups between heartbeats and delays no shutdown.
            try:
                yield "retry: 2000\n: connected\n\n"
                last = time.monotonic()
                while not self._gate.stopping.is_set() and not sub.closed.is_set():
                    event = sub.get(max(0.01, HEARTBEAT - (time.monotonic() - last)))
                    if event is not None:
                        payload = json.dumps({"at": event.at, **event.data})
                        yield f"id: {event.id}\nevent: {event.kind}\ndata: {payload}\n\n"
                        last = time.monotonic()
                    elif time.monotonic() - last >= HEARTBEAT:
                        yield ": keep-alive\n\n"
                        last = time.monotonic()
                if sub.closed.is_set() and not self._bus.closed.is_set():
                    yield "event: overflow\ndata: {}\n\n"
            finally:
                sub.close()
                release()

        return stream()

    def logs(
        self, service_id: str, image_id: str, tail: int | None, follow: bool, sse: bool = False
    ) -> tuple[str | Iterator[str], bool]:
        """An image's output as text, or a stream of it when following; and whether
        older lines were left out. Errors (no such image, node unreachable) are raised
        here, before any of the response is sent.

        ``sse`` streams Server-Sent Events (one ``data:`` line per output line) with a
        comment every few seconds, so a reader that went away is noticed even when the
        container prints nothing; a plain-text stream has nothing invisible to send, so it
        notices that only at the next line or at the follow limit.
        """
        if not follow:
            chunk = self._logs.read(service_id, image_id, tail)
            return _render(chunk), chunk.truncated
        release = self._gate.acquire()
        source = self._logs.follow(service_id, image_id, tail, self._gate.stopping)
        try:
            first = next(source)  # the first read happens now, so its errors are answers
        except BaseException:
            release()
            raise

        def chunks() -> Iterator[LogChunk]:
            yield first
            yield from source

        return self._follow(chunks(), release, sse), first.truncated

    def _follow(
        self, source: Iterator[LogChunk], release: Callable[[], None], sse: bool
    ) -> Iterator[str]:
        """Stream new lines until the client goes, the follow limit or the server stops."""
        render = _render_sse if sse else _render

        def stream() -> Iterator[str]:
            deadline = time.monotonic() + self._max_follow
            last = time.monotonic()
            reason = "follow limit reached"
            try:
                if sse:
                    yield "retry: 2000\n: following\n\n"
                for chunk in source:
                    if self._gate.stopping.is_set():
                        reason = "the node is stopping"
                        break
                    if time.monotonic() > deadline:
                        break
                    text = render(chunk)
                    if text:  # an empty chunk would end a chunked response
                        yield text
                        last = time.monotonic()
                    elif sse and time.monotonic() - last >= HEARTBEAT:
                        yield ": keep-alive\n\n"
                        last = time.monotonic()
            except Exception as exc:  # the node went away mid-stream: say so and end
                log.info("log stream ended: {}", exc)
                reason = str(getattr(exc, "message", exc))
            finally:
                close = getattr(source, "close", None)
                if close is not None:
                    close()
                release()
            if sse:
                yield f"event: end\ndata: {json.dumps(reason)}\n\n"
            else:
                yield f"[motey: log stream ended: {reason}]\n"

        return stream()

    @property
    def stopping(self) -> threading.Event:
        return self._gate.stopping


def _render(chunk: LogChunk) -> str:
    return "".join(f"{line}\n" for line in chunk.lines)


def _render_sse(chunk: LogChunk) -> str:
    """One event per chunk, a ``data:`` line per output line (SSE joins them with \\n)."""
    if not chunk.lines:
        return ""
    return "".join(f"data: {line}\n" for line in chunk.lines) + "\n"
