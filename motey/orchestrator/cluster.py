"""The orchestrator's view of the cluster: this node and the peers discovery found.

Calls for this node go straight to the local :class:`ImageExecutor`; calls for a peer
go through the remote client (ZeroMQ), which never waits longer than its timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol, TypeVar

import logbook

from motey.errors import CommunicationError, MoteyError, PeerSilent
from motey.models.image import Image, ImageState
from motey.models.node import Node, NodeLifecycle, NodeReachability
from motey.node.identity import NodeIdentity
from motey.orchestrator.executor import ImageExecutor
from motey.repositories.node_repository import NodeRepository
from motey.val.plugin import InstanceStatus, LogChunk

log = logbook.Logger(__name__)

T = TypeVar("T")


class RemoteNodeClient(Protocol):
    """Node-to-node requests (implemented over ZeroMQ by the communication layer)."""

    def describe(self, node: Node) -> dict[str, Any]: ...

    def deploy_image(self, node: Node, image: Image) -> str: ...

    def image_status(self, node: Node, image: Image) -> InstanceStatus: ...

    def terminate_image(self, node: Node, image: Image) -> bool: ...

    def image_logs(
        self, node: Node, image: Image, tail: int | None, since: float | None
    ) -> LogChunk: ...

    def list_services(self, node: Node) -> dict[str, Any]: ...
    def claims(self, node: Node, own_id: str, image_ids: list[str]) -> dict[str, list[str]]: ...

    def cancel(self) -> None: ...

    def start(self) -> None: ...


class PeerHealth:
    """Which peers answer direct requests: counts silences in a row, per address.

    A node known only by its bare-IP registration (an original Motey, or a forged
    register) has no last will, so discovery never sees it crash. After ``max_failures``
    silences in a row it is marked UNREACHABLE (placement skips it without asking) and
    after ``grace`` more seconds it is removed; a register or an answer brings it back.
    """

    def __init__(
        self,
        nodes: NodeRepository,
        max_failures: int = 3,
        grace: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nodes = nodes
        self._max_failures = max(1, max_failures)
        self._grace = grace
        self._clock = clock
        self._guard = threading.Lock()
        self._silences: dict[str, int] = {}
        self._silent_since: dict[str, float] = {}
        self._answered: dict[str, float] = {}

    def answered(self, node: Node) -> None:
        with self._guard:
            self._silences.pop(node.ip, None)
            self._silent_since.pop(node.ip, None)
            self._answered[node.ip] = self._clock()
        if node.version is None:
            known = self._nodes.get(node.ip)
            if known is not None and known.state is NodeReachability.UNREACHABLE:
                known.state = NodeReachability.REACHABLE
                self._nodes.upsert(known)
                log.info("node {} answers again: reachable", node.ip)

    def silent(self, node: Node) -> None:
        with self._guard:
            count = self._silences[node.ip] = self._silences.get(node.ip, 0) + 1
            self._silent_since.setdefault(node.ip, self._clock())
        if node.version is not None or count < self._max_failures:
            return
        known = self._nodes.get(node.ip)
        if known is None or known.version is not None:
            return
        if known.state is NodeReachability.REACHABLE:
            known.state = NodeReachability.UNREACHABLE
            self._nodes.upsert(known)
            log.warning(
                "node {} (bare IP) did not answer {} requests in a row: marked unreachable",
                node.ip,
                count,
            )

    def silent_for(self, node: Node) -> float | None:
        """Seconds ``node`` has not answered a direct request (``None``: it answers)."""
        with self._guard:
            since = self._silent_since.get(node.ip)
        return None if since is None else self._clock() - since

    def sweep(self) -> None:
        """Remove bare-IP nodes that stayed silent ``grace`` seconds after being marked."""
        for node in self._nodes.all():
            if node.version is not None or node.state is not NodeReachability.UNREACHABLE:
                continue
            with self._guard:
                since = self._silent_since.get(node.ip)
                count = self._silences.get(node.ip, 0)
            if since is None or count < self._max_failures:
                continue
            if self._clock() - since >= self._grace and self._nodes.remove(node.ip):
                log.warning(
                    "node {} (bare IP) removed: silent for {:.0f} s", node.ip, self._clock() - since
                )
                with self._guard:
                    self._silences.pop(node.ip, None)
                    self._silent_since.pop(node.ip, None)


class ClusterGateway:
    """Dispatches image operations to the node that runs (or will run) the image."""

    def __init__(
        self,
        identity: NodeIdentity,
        executor: ImageExecutor,
        node_repository: NodeRepository,
        remote: RemoteNodeClient | None = None,
        health: PeerHealth | None = None,
    ) -> None:
        self._identity = identity
        self._executor = executor
        self._nodes = node_repository
        self._remote = remote
        self.health = health or PeerHealth(node_repository)

    # -- lifecycle of requests -------------------------------------------------------
    def cancel(self) -> None:
        """End requests to peers in flight now (the node stops)."""
        if self._remote is not None:
            self._remote.cancel()

    def resume(self) -> None:
        """Send requests to peers again."""
        if self._remote is not None:
            self._remote.start()

    def sweep(self) -> None:
        """Drop peers that stopped answering (see :class:`PeerHealth`)."""
        try:
            self.health.sweep()
        except Exception as exc:  # a sweep must never stop the watcher's round
            log.error("peer sweep failed: {}", exc)

    def peer(self, node_id: str | None, ip: str | None) -> Node | None:
        """What discovery knows of a peer (by id, else by address)."""
        known = self._nodes.get_by_id(node_id) if node_id else None
        if known is None and ip:
            known = self._nodes.get(ip)
        return known

    @property
    def local_id(self) -> str:
        return self._identity.id

    def local_node(self) -> Node:
        return self._identity.as_node()

    def is_local(self, node: Node) -> bool:
        if node.id is not None:
            return node.id == self._identity.id
        return node.ip == self._identity.ip

    def candidates(self) -> list[Node]:
        """Peers that are reachable and in OPERATE, in a stable order."""
        if self._remote is None:
            return []
        return [
            n
            for n in self._nodes.all()
            if not self.is_local(n)
            and n.state is NodeReachability.REACHABLE
            and n.lifecycle is NodeLifecycle.OPERATE
        ]

    def node_for(self, image: Image) -> Node:
        """The node recorded on an image (by id, else by address)."""
        if image.node_id == self._identity.id or (
            image.node_id is None and image.node in (None, self._identity.ip)
        ):
            return self.local_node()
        known = self._nodes.get_by_id(image.node_id) if image.node_id else None
        if known is None and image.node:
            known = self._nodes.get(image.node)
        return known or Node(ip=image.node or "", id=image.node_id)

    def known_capabilities(self, image: Image) -> list[dict[str, Any]] | None:
        """What the node running ``image`` currently offers, as far as this node knows.

        For this node that is the live capability set; for a peer it is what its last
        pushed presence said (discovery republishes on every change). ``None`` when the
        peer is unknown or unreachable: then nothing can be concluded.
        """
        node = self.node_for(image)
        if self.is_local(node):
            return self._executor.capabilities()
        known = self._nodes.get_by_id(node.id) if node.id else self._nodes.get(node.ip)
        if known is None or known.state is not NodeReachability.REACHABLE:
            return None
        if known.version is None:
            return None  # known by bare-IP registration only: it never pushes capabilities
        return list(known.capabilities)

    def describe(self, node: Node) -> dict[str, Any]:
        if self.is_local(node):
            return self._executor.describe()
        remote = self._require_remote()
        return self._tracked(node, lambda: remote.describe(node))

    def deploy(self, node: Node, image: Image) -> str:
        if self.is_local(node):
            return self._executor.deploy(image)
        remote = self._require_remote()
        return self._tracked(node, lambda: remote.deploy_image(node, image))

    def status(self, image: Image) -> InstanceStatus:
        """The image's state; an unknown one keeps the state the image had.

        The one exception: an image that was just started (``INSTANTIATING`` with an
        instance id) counts as ``RUNNING``, because the node answers a deploy request
        with the instance id only once the engine has started it.
        """
        node = self.node_for(image)
        if self.is_local(node):
            return self._executor.status(image)
        remote = self._require_remote()
        status = self._tracked(node, lambda: remote.image_status(node, image))
        if status.known:
            return status
        state = image.state
        if image.instance_id and state in (ImageState.INITIAL, ImageState.INSTANTIATING):
            state = ImageState.RUNNING
        return replace(status, state=state)

    def terminate(self, image: Image) -> bool:
        node = self.node_for(image)
        if self.is_local(node):
            return self._executor.terminate(image)
        remote = self._require_remote()
        return self._tracked(node, lambda: remote.terminate_image(node, image))

    def claims(self, owner: Node, image_ids: list[str]) -> dict[str, list[str]]:
        """Ask ``owner`` which of ``image_ids`` this node may keep running."""
        remote = self._require_remote()
        return self._tracked(owner, lambda: remote.claims(owner, self._identity.id, image_ids))

    def _tracked(self, node: Node, call: Callable[[], T]) -> T:
        """Run a request to a peer and tell :class:`PeerHealth` whether it answered."""
        try:
            result = call()
        except PeerSilent:
            self.health.silent(node)
            raise
        except CommunicationError:
            raise  # cancelled, or answered with an error: says nothing of its health
        except MoteyError:
            self.health.answered(node)  # a refusal is an answer
            raise
        self.health.answered(node)
        return result

    def logs(self, image: Image, tail: int | None = None, since: float | None = None) -> LogChunk:
        node = self.node_for(image)
        if self.is_local(node):
            return self._executor.logs(image, tail=tail, since=since)
        return self._require_remote().image_logs(node, image, tail, since)

    def list_services(self, node: Node) -> dict[str, Any]:
        """The services ``node`` owns (its ``/v1/service``, asked node to node)."""
        return self._require_remote().list_services(node)

    def _require_remote(self) -> RemoteNodeClient:
        if self._remote is None:
            from motey.errors import CommunicationError

            raise CommunicationError("this node runs without a cluster; no peer can be reached")
        return self._remote
