"""The whole cell's services: this node's own and those of every other owner it knows."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import logbook

from motey.errors import MoteyError
from motey.models.node import Node, NodeReachability
from motey.node.identity import NodeIdentity
from motey.orchestrator.cluster import ClusterGateway
from motey.repositories.node_repository import NodeRepository
from motey.repositories.service_repository import ServiceRepository

log = logbook.Logger(__name__)


class CellView:
    """Asks every known owner for its services, in parallel, within the request timeout.

    An owner that does not answer is named with the reason, never left out silently. That
    includes a node that answered with services before and has since gone from the node
    list (a clean stop says goodbye): it is remembered and asked again.
    """

    def __init__(
        self,
        services: ServiceRepository,
        gateway: ClusterGateway,
        nodes: NodeRepository,
        identity: NodeIdentity,
    ) -> None:
        self._services = services
        self._gateway = gateway
        self._nodes = nodes
        self._identity = identity
        self._remembered: dict[str, Node] = {}

    def list_services(self) -> dict[str, Any]:
        """``{"services": [...each with "owner"], "owners": [...each with "answered"]}``."""
        me = {
            "id": self._identity.id,
            "name": self._identity.name,
            "ip": self._identity.ip,
            "api_port": self._identity.ports.get("api"),
        }
        services = [{**s.to_dict(), "owner": me} for s in self._services.all()]
        owners: list[dict[str, Any]] = [
            {**me, "self": True, "answered": True, "message": "", "services": len(services)}
        ]
        peers: dict[str, Node] = dict(self._remembered)
        for node in self._nodes.all():
            if not self._gateway.is_local(node):
                peers[node.id or node.ip] = node
        if peers:
            with ThreadPoolExecutor(max_workers=min(8, len(peers))) as pool:
                answers = list(pool.map(self._ask, peers.values()))
            for node, (reply, error) in zip(peers.values(), answers, strict=True):
                key = node.id or node.ip
                owner = {
                    "id": node.id,
                    "name": node.name,
                    "ip": node.ip,
                    "api_port": node.ports.get("api"),
                    "self": False,
                }
                if error is not None:
                    owners.append({**owner, "answered": False, "message": error, "services": 0})
                    continue
                owner.update(
                    {"id": reply.get("node_id") or node.id, "name": reply.get("name") or node.name}
                )
                listed = reply.get("services") or []
                if listed:
                    self._remembered[key] = node
                else:
                    self._remembered.pop(key, None)
                owners.append(
                    {
                        **owner,
                        "answered": True,
                        "message": "list truncated" if reply.get("truncated") else "",
                        "services": len(listed),
                    }
                )
                services.extend(
                    {**s, "owner": {k: owner[k] for k in ("id", "name", "ip", "api_port")}}
                    for s in listed
                )
        return {"services": services, "owners": owners}

    def _ask(self, node: Node) -> tuple[dict[str, Any], str | None]:
        if (
            node.state is NodeReachability.UNREACHABLE
            and (node.id or node.ip) not in self._remembered
        ):
            return {}, "unreachable (discovery lost it)"
        try:
            return self._gateway.list_services(node), None
        except MoteyError as exc:
            log.info("owner {} did not list its services: {}", node.ip, exc.message)
            return {}, exc.message
