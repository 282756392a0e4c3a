"""The orchestrator's view of the cluster: this node and the peers discovery found.

Calls for this node go straight to the local :class:`ImageExecutor`; calls for a peer
go through the remote client (ZeroMQ), which never waits longer than its timeout.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from motey.models.image import Image, ImageState
from motey.models.node import Node, NodeLifecycle, NodeReachability
from motey.node.identity import NodeIdentity
from motey.orchestrator.executor import ImageExecutor
from motey.repositories.node_repository import NodeRepository
from motey.val.plugin import InstanceStatus, LogChunk


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


class ClusterGateway:
    """Dispatches image operations to the node that runs (or will run) the image."""

    def __init__(
        self,
        identity: NodeIdentity,
        executor: ImageExecutor,
        node_repository: NodeRepository,
        remote: RemoteNodeClient | None = None,
    ) -> None:
        self._identity = identity
        self._executor = executor
        self._nodes = node_repository
        self._remote = remote

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
        return self._require_remote().describe(node)

    def deploy(self, node: Node, image: Image) -> str:
        if self.is_local(node):
            return self._executor.deploy(image)
        return self._require_remote().deploy_image(node, image)

    def status(self, image: Image) -> InstanceStatus:
        """The image's state; an unknown one keeps the state the image had.

        The one exception: an image that was just started (``INSTANTIATING`` with an
        instance id) counts as ``RUNNING``, because the node answers a deploy request
        with the instance id only once the engine has started it.
        """
        node = self.node_for(image)
        if self.is_local(node):
            return self._executor.status(image)
        status = self._require_remote().image_status(node, image)
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
        return self._require_remote().terminate_image(node, image)

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
