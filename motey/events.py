"""The event bus: state changes (service, image, node, capability) for whoever listens.

The sources are the records of truth (the service and node repositories, the capability
engine), so every stored change is seen, whichever component made it. A change is turned
into an event only when something an operator follows changed (a state, a message, a
placement), so the watcher's periodic writes do not flood the stream.

Listeners are subscriptions with a bounded queue: publishing never blocks the component
that made the change. A subscriber that falls too far behind is told so (``overflow``)
and dropped; it reconnects and re-reads the current state.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import logbook

from motey.errors import Busy

log = logbook.Logger(__name__)

#: Events a subscription holds before it is considered lost.
QUEUE_SIZE = 1000


@dataclass(frozen=True)
class Event:
    """One state change: ``kind`` is service, image, node, capability or overflow."""

    id: int
    kind: str
    data: dict[str, Any]
    at: float = field(default_factory=time.time)


#: Put into a subscription's queue to end a waiting :meth:`Subscription.get` at once: a
#: stream waits for its next event without a timed poll, so a stop must wake it.
WAKE = Event(0, "wake", {})


class Subscription:
    """One listener's queue of events; iterate with :meth:`get`."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._queue: queue.Queue[Event] = queue.Queue(maxsize=QUEUE_SIZE)
        self.closed = threading.Event()

    def put(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            log.warning("event subscriber fell {} events behind; dropping it", QUEUE_SIZE)
            self.closed.set()

    def get(self, timeout: float) -> Event | None:
        """The next event, or ``None`` after ``timeout`` seconds or once closed."""
        if self.closed.is_set():
            return None
        try:
            event = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        return None if event is WAKE else event

    def wake(self) -> None:
        """End a :meth:`get` that waits now (its caller then checks why); thread-safe."""
        with contextlib.suppress(queue.Full):  # a full queue does not make get() wait
            self._queue.put_nowait(WAKE)

    def close(self) -> None:
        """Stop receiving; idempotent."""
        self.closed.set()
        self._bus.unsubscribe(self)


class EventBus:
    """Fans state changes out to a bounded number of subscriptions."""

    #: Seconds :meth:`stop` may take: it only wakes the subscriptions, it joins nothing.
    STOP_WAIT = 0.5

    def __init__(
        self,
        max_subscribers: int = 4,
        services: Any = None,
        nodes: Any = None,
        capabilities: Any = None,
        identity: Any = None,
    ) -> None:
        self._max = max(1, max_subscribers)
        self._sources = (services, nodes, capabilities, identity)
        self._connected = False
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._services: dict[str, dict[str, Any]] = {}
        self._nodes: dict[str, tuple[Any, ...]] = {}
        self._closed = threading.Event()

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        """Listen to the sources (once) and accept subscriptions."""
        self._closed.clear()
        if self._connected:
            return
        self._connected = True
        services, nodes, capabilities, identity = self._sources
        if services is not None:
            services.subscribe(self._guard(self._on_service))
        if nodes is not None:
            nodes.subscribe(self._guard(self.node_changed))
        if capabilities is not None and identity is not None:
            capabilities.subscribe(
                self._guard(lambda caps: self.capabilities_changed(identity.id, caps))
            )
        if identity is not None:
            identity.subscribe(
                self._guard(lambda _phase: self.node_changed(identity.as_node().to_dict()))
            )

    def stop(self) -> None:
        self.close()

    @staticmethod
    def _guard(listener: Callable[[Any], None]) -> Callable[[Any], None]:
        """A source's write must never fail because of the event bus."""

        def call(value: Any) -> None:
            try:
                listener(value)
            except Exception as exc:
                log.error("event bus could not publish a change: {}", exc)

        return call

    def _on_service(self, change: dict[str, Any] | str) -> None:
        if isinstance(change, str):
            self.service_removed(change)
        else:
            self.service_changed(change)

    # -- subscribers ---------------------------------------------------------------
    def subscribe(self) -> Subscription:
        """A new subscription, or :class:`~motey.errors.Busy` when the limit is reached."""
        with self._lock:
            if self._closed.is_set():
                raise Busy("the node is shutting down; no new event streams")
            if len(self._subs) >= self._max:
                raise Busy(
                    f"{self._max} event subscriptions are already open on this node; "
                    "close one or try later"
                )
            sub = Subscription(self)
            self._subs.append(sub)
            return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def close(self) -> None:
        """End every subscription (their streams return); idempotent."""
        self._closed.set()
        with self._lock:
            subs, self._subs = self._subs, []
        for sub in subs:
            sub.closed.set()
            sub.wake()

    @property
    def closed(self) -> threading.Event:
        return self._closed

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Hand one event to every subscription without blocking."""
        with self._lock:
            event = Event(next(self._ids), kind, data)
            subs = list(self._subs)
        for sub in subs:
            sub.put(event)

    # -- sources -------------------------------------------------------------------
    def service_changed(self, service: dict[str, Any]) -> None:
        """A stored service (its ``to_dict()``): emit what changed since the last one."""
        service_id = str(service.get("id"))
        images = {i["id"]: i for i in service.get("images") or []}
        with self._lock:
            before = self._services.get(service_id)
            self._services[service_id] = {
                "state": service.get("state"),
                "state_message": service.get("state_message"),
                "images": {
                    k: (v.get("state"), v.get("node"), v.get("state_message"))
                    for k, v in images.items()
                },
            }
        # Images first: a listener that sees the service turn RUNNING has already seen
        # the image states that made it so (one write carries both since issue 12).
        old_images = before["images"] if before else {}
        for image_id, image in images.items():
            now = (image.get("state"), image.get("node"), image.get("state_message"))
            if old_images.get(image_id) != now:
                self.publish(
                    "image",
                    {
                        "id": image_id,
                        "service_id": service_id,
                        "name": image.get("name"),
                        "node": image.get("node"),
                        "node_id": image.get("node_id"),
                        "state": image.get("state"),
                        "state_message": image.get("state_message"),
                    },
                )
        if before is None or (before["state"], before["state_message"]) != (
            service.get("state"),
            service.get("state_message"),
        ):
            self.publish(
                "service",
                {
                    "id": service_id,
                    "name": service.get("service_name"),
                    "state": service.get("state"),
                    "state_message": service.get("state_message"),
                    "owner_id": next(
                        (i.get("owner_id") for i in images.values() if i.get("owner_id")), None
                    ),
                },
            )

    def service_removed(self, service_id: str) -> None:
        with self._lock:
            self._services.pop(service_id, None)
        self.publish("service", {"id": service_id, "state": None, "removed": True})

    def node_changed(self, node: dict[str, Any]) -> None:
        """A stored node entry: emit when its reachability, phase or name changed."""
        if node.get("removed"):
            with self._lock:
                for key in [k for k, v in self._nodes.items() if v[3] == node.get("ip")]:
                    del self._nodes[key]
            self.publish("node", {"ip": node.get("ip"), "state": None, "removed": True})
            return
        key = str(node.get("id") or node.get("ip"))
        now = (node.get("state"), node.get("lifecycle"), node.get("name"), node.get("ip"))
        with self._lock:
            before = self._nodes.get(key)
            self._nodes[key] = now
        if before != now:
            self.publish(
                "node",
                {k: node.get(k) for k in ("id", "ip", "name", "state", "lifecycle")},
            )

    def capabilities_changed(self, node_id: str, capabilities: list[dict[str, Any]]) -> None:
        """This node's capability list changed."""
        self.publish("capability", {"node_id": node_id, "capabilities": capabilities})
