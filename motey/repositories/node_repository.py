"""The nodes this node knows from discovery: soft state, kept in memory only.

Peer presence is soft state: the broker keeps every node's retained presence and
discovery forgets the node list on every start (:meth:`MQTTDiscovery.start` calls
:meth:`NodeRepository.clear`), so nothing a restart needs lives here. The original kept
the list in a TinyDB file, and rewriting (and fsyncing) that whole file for every
presence on the MQTT network thread was 96 % of an idle node's work in a 50-node cell.
Here every access is a dictionary operation under one lock; see docs/scale.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from motey.models.node import Node


class NodeRepository:
    """Nodes keyed by IP address (the original's identity of a node), in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_ip: dict[str, dict[str, Any]] = {}
        self._ip_by_id: dict[str, str] = {}
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Be called with the stored entry after every upsert, and with
        ``{"ip": ..., "removed": True}`` when a node is forgotten (the event bus)."""
        self._listeners.append(listener)

    def upsert(self, node: Node) -> None:
        """Insert or replace the node with this IP address."""
        doc = node.to_dict()
        with self._lock:
            old = self._by_ip.get(node.ip)
            if old is not None and old.get("id") and self._ip_by_id.get(old["id"]) == node.ip:
                del self._ip_by_id[old["id"]]
            self._by_ip[node.ip] = doc
            if node.id:
                self._ip_by_id[node.id] = node.ip
        for listener in list(self._listeners):
            listener(doc)

    def touch(
        self, ip: str, last_seen: float, load: float | None = None, images: int | None = None
    ) -> bool:
        """Refresh ``last_seen``, ``load`` and ``images`` of a known node, telling no one.

        A periodic presence that changes nothing else is the common message in a big
        cell; it must cost a dictionary write, not an event. ``False`` when unknown.
        """
        with self._lock:
            doc = self._by_ip.get(ip)
            if doc is None:
                return False
            doc["last_seen"] = last_seen
            doc["load"] = load
            doc["images"] = images
            return True

    def get(self, ip: str) -> Node | None:
        """The node with this IP address, or ``None``."""
        with self._lock:
            doc = self._by_ip.get(ip)
        return Node.from_dict(doc) if doc else None

    def get_by_id(self, node_id: str) -> Node | None:
        """The node with this id, or ``None``."""
        with self._lock:
            ip = self._ip_by_id.get(node_id)
            doc = self._by_ip.get(ip) if ip is not None else None
        return Node.from_dict(doc) if doc else None

    def all(self) -> list[Node]:
        """Every known node, ordered by address."""
        with self._lock:
            docs = list(self._by_ip.values())
        return sorted((Node.from_dict(d) for d in docs), key=lambda n: n.ip)

    def remove(self, ip: str) -> bool:
        """Forget a node; ``True`` when one was removed."""
        with self._lock:
            doc = self._by_ip.pop(ip, None)
            if doc is not None and doc.get("id") and self._ip_by_id.get(doc["id"]) == ip:
                del self._ip_by_id[doc["id"]]
        if doc is not None:
            for listener in list(self._listeners):
                listener({"ip": ip, "removed": True})
        return doc is not None

    def clear(self) -> None:
        """Forget every node (discovery relearns them)."""
        with self._lock:
            self._by_ip.clear()
            self._ip_by_id.clear()
