"""Who this node is: a stable id, a name, an address, its ports and lifecycle phase."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import logbook

from motey import __version__
from motey.errors import NodeNotOperational, ValidationError
from motey.models.node import Node, NodeLifecycle, NodeReachability

log = logbook.Logger(__name__)


#: The file in the data folder that holds the node's id.
NODE_ID_FILE = "node_id"


def load_or_create_node_id(data_dir: str) -> str:
    """Read the node id kept in the data folder, creating it on first start."""
    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    id_file = folder / NODE_ID_FILE
    try:
        existing = id_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        try:
            return str(uuid.UUID(existing))
        except ValueError:
            log.warning("ignoring invalid node id in {}; creating a new one", id_file)
    node_id = str(uuid.uuid4())
    tmp = id_file.with_suffix(".tmp")
    tmp.write_text(node_id + "\n", encoding="utf-8")
    tmp.replace(id_file)
    log.info("created node id {} in {}", node_id, id_file)
    return node_id


def node_id_for(data_dir: str, cell_name: str | None) -> str:
    """The node id: its certificate name in a secure cell, else the stored generated id.

    In a cell the id is the name the cell CA certified, so that the broker's ACL (identity
    = certificate name) and the presence topic name the same thing. It is written to the
    data folder's ``node_id`` as well, where tools and tests read a node's id.
    """
    if cell_name is None:
        return load_or_create_node_id(data_dir)
    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "node_id").write_text(cell_name + "\n", encoding="utf-8")
    return cell_name


class NodeIdentity:
    """This node's discovery metadata and its OpenFog lifecycle phase."""

    def __init__(
        self,
        node_id: str,
        name: str,
        ip: str,
        ports: dict[str, int],
        security_mode: str = "open",
    ) -> None:
        self.id = node_id
        #: ``secure`` or ``open`` ([SECURITY] mode), shown in ``GET /v1/node``.
        self.security_mode = security_mode
        self.name = name
        self.ip = ip
        self.ports = dict(ports)
        self._lock = threading.Lock()
        self._lifecycle = NodeLifecycle.COMMISSION
        self._reason = "starting"
        self._listeners: list[Callable[[NodeLifecycle], None]] = []

    @property
    def lifecycle(self) -> NodeLifecycle:
        return self._lifecycle

    @property
    def lifecycle_reason(self) -> str:
        return self._reason

    def subscribe(self, listener: Callable[[NodeLifecycle], None]) -> None:
        """Be told about lifecycle changes (discovery republishes the node's metadata)."""
        self._listeners.append(listener)

    def set_lifecycle(self, phase: NodeLifecycle | str, reason: str = "") -> None:
        """Move to another phase; listeners learn it at once."""
        if isinstance(phase, str):
            try:
                phase = NodeLifecycle(phase.upper())
            except ValueError:
                allowed = ", ".join(p.value for p in NodeLifecycle)
                raise ValidationError(
                    f"unknown lifecycle phase {phase!r} (one of {allowed})", field="lifecycle"
                ) from None
        with self._lock:
            changed = phase != self._lifecycle
            self._lifecycle = phase
            self._reason = reason
        if changed:
            log.info("node lifecycle is now {}{}", phase.value, f" ({reason})" if reason else "")
            for listener in list(self._listeners):
                try:
                    listener(phase)
                except Exception as exc:  # a listener must not break the phase change
                    log.error("lifecycle listener failed: {}", exc)

    def require_operational(self) -> None:
        """Raise unless this node takes new deployments."""
        if self._lifecycle is not NodeLifecycle.OPERATE:
            reason = f": {self._reason}" if self._reason else ""
            raise NodeNotOperational(
                f"node {self.name} is in phase {self._lifecycle.value}, not OPERATE, and takes "
                f"no new deployments{reason}"
            )

    def as_node(self, capabilities: list[dict[str, Any]] | None = None) -> Node:
        """This node as a :class:`Node` entry (what discovery publishes)."""
        return Node(
            ip=self.ip,
            id=self.id,
            name=self.name,
            ports=dict(self.ports),
            state=NodeReachability.REACHABLE,
            lifecycle=self._lifecycle,
            version=__version__,
            last_seen=time.time(),
            capabilities=list(capabilities or []),
        )
