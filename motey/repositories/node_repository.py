"""Persistence of the nodes this node knows from discovery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tinydb import Query

from motey.models.node import Node
from motey.repositories.base import Database


class NodeRepository:
    """Stores nodes keyed by IP address (the original's identity of a node)."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Be called with the stored entry after every upsert, and with
        ``{"ip": ..., "removed": True}`` when a node is forgotten (the event bus)."""
        self._listeners.append(listener)

    def upsert(self, node: Node) -> None:
        """Insert or replace the node with this IP address."""
        doc = node.to_dict()
        self._db.run(lambda db: db.table("nodes").upsert(doc, Query().ip == node.ip))
        for listener in list(self._listeners):
            listener(doc)

    def get(self, ip: str) -> Node | None:
        """The node with this IP address, or ``None``."""
        doc = self._db.run(lambda db: db.table("nodes").get(Query().ip == ip))
        return Node.from_dict(dict(doc)) if doc else None  # type: ignore[arg-type]

    def get_by_id(self, node_id: str) -> Node | None:
        """The node with this id, or ``None``."""
        doc = self._db.run(lambda db: db.table("nodes").get(Query().id == node_id))
        return Node.from_dict(dict(doc)) if doc else None  # type: ignore[arg-type]

    def all(self) -> list[Node]:
        """Every known node, ordered by address."""
        docs = self._db.run(lambda db: db.table("nodes").all())
        return sorted((Node.from_dict(dict(d)) for d in docs), key=lambda n: n.ip)

    def remove(self, ip: str) -> bool:
        """Forget a node; ``True`` when one was removed."""
        removed = bool(self._db.run(lambda db: db.table("nodes").remove(Query().ip == ip)))
        if removed:
            for listener in list(self._listeners):
                listener({"ip": ip, "removed": True})
        return removed

    def clear(self) -> None:
        """Forget every node (discovery relearns them)."""
        self._db.run(lambda db: db.table("nodes").truncate())
