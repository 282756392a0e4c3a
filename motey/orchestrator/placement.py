"""Choosing the node for an image by its required capabilities."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import logbook

from motey.capabilityengine.requirements import unmet
from motey.errors import MoteyError
from motey.models.image import Image
from motey.models.node import Node, NodeLifecycle
from motey.orchestrator.cluster import ClusterGateway

log = logbook.Logger(__name__)


class PlacementError(MoteyError):
    """No reachable node meets an image's requirements."""

    http_status = 422
    #: The short form, without the image's name ("no node has camera; 3 node(s) checked").
    reason = ""


class Placement:
    """Local first; otherwise the least-loaded peer that meets every requirement.

    Peers are asked in parallel and only for ``timeout`` seconds, so a dead or fake
    node in the node list delays a placement by at most that long.
    """

    def __init__(self, gateway: ClusterGateway, timeout: float = 3.0) -> None:
        self._gateway = gateway
        self._timeout = timeout

    def place(self, image: Image, exclude: set[str] | None = None) -> Node:
        """The node to run ``image`` on, or :class:`PlacementError` naming what is missing."""
        exclude = exclude or set()
        local = self._gateway.describe(self._gateway.local_node())
        local_missing = unmet(image.capabilities, local["capabilities"])
        local_ok = local["lifecycle"] == NodeLifecycle.OPERATE.value
        if local_ok and not local_missing and self._gateway.local_id not in exclude:
            return self._gateway.local_node()

        peers = [n for n in self._gateway.candidates() if (n.id or n.ip) not in exclude]
        answers = self._ask(peers)
        fitting: list[tuple[float, str, Node]] = []
        missing_by_node: dict[str, list[str]] = {}
        if not local_ok:
            missing_by_node["local"] = [f"node is in {local['lifecycle']}"]
        elif self._gateway.local_id not in exclude:
            missing_by_node["local"] = local_missing
        for node, info in answers:
            if info.get("lifecycle", NodeLifecycle.OPERATE.value) != NodeLifecycle.OPERATE.value:
                missing_by_node[node.name or node.ip] = [f"node is in {info.get('lifecycle')}"]
                continue
            missing = unmet(image.capabilities, info.get("capabilities", []))
            if missing:
                missing_by_node[node.name or node.ip] = missing
                continue
            load = info.get("load")
            fitting.append((float(load) if isinstance(load, int | float) else 1e9, node.ip, node))
        if fitting:
            fitting.sort(key=lambda item: (item[0], item[1]))
            chosen = fitting[0][2]
            if info_id := next((i.get("node_id") for n, i in answers if n.ip == chosen.ip), None):
                chosen.id = chosen.id or info_id
            return chosen
        wanted = sorted(set(image.capabilities))
        still_missing = sorted({m for ms in missing_by_node.values() for m in ms}) or wanted
        checked = len(peers) + 1
        lacking = [m for m in still_missing if not m.startswith("node is in ")]
        phases = sorted(
            {f"{n} {m}" for n, ms in missing_by_node.items() for m in ms}
            - {f"{n} {m}" for n, ms in missing_by_node.items() for m in lacking}
        )
        what = f"no node has {', '.join(lacking)}" if lacking else "no node operates"
        if phases:
            what += f" ({'; '.join(p.replace(' node is in ', ' is in ') for p in phases)})"
        reason = f"{what}; {checked} node(s) checked, {len(answers) + 1} answered"
        error = PlacementError(
            f"no node meets the requirements of image {image.name!r}: {reason}",
            details={"required": wanted, "missing_by_node": missing_by_node},
        )
        error.reason = reason
        raise error

    def _ask(self, peers: list[Node]) -> list[tuple[Node, dict[str, Any]]]:
        """Ask ``peers`` in parallel; return within ``timeout`` whatever has answered.

        The pool is shut down without waiting: a peer that has not answered by then is
        left to its own request timeout in a worker thread, and placement goes on.
        """
        if not peers:
            return []
        results: list[tuple[Node, dict[str, Any]]] = []
        pool = ThreadPoolExecutor(max_workers=min(8, len(peers)), thread_name_prefix="motey-ask")
        try:
            futures = {pool.submit(self._gateway.describe, peer): peer for peer in peers}
            done, _ = wait(futures, timeout=self._timeout)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        for future, peer in futures.items():
            if future not in done:
                log.warning("node {} did not answer the capability request in time", peer.ip)
                continue
            try:
                results.append((peer, future.result()))
            except MoteyError as exc:
                log.warning("node {} did not answer the capability request: {}", peer.ip, exc)
        return results
