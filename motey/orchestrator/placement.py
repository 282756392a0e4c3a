"""Choosing the node for an image by its required capabilities."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
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


#: Seconds a reservation counts at most when its deployment never reports back (a
#: relocation places without deploying through :meth:`Placement.release`).
RESERVATION_TTL = 60.0


class Reservations:
    """Images placed on a node whose deployment has not finished yet, per node.

    A peer's answer counts the images it runs, not the ones on their way to it, so
    without this a burst of placements all see the same numbers and pick the same node.
    """

    def __init__(self, ttl: float = RESERVATION_TTL, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[str, list[float]] = {}

    def hold(self, key: str) -> None:
        with self._lock:
            self._held.setdefault(key, []).append(self._clock())

    def release(self, key: str) -> None:
        with self._lock:
            held = self._held.get(key)
            if held:
                held.pop(0)
                if not held:
                    del self._held[key]

    def count(self, key: str) -> int:
        limit = self._clock() - self._ttl
        with self._lock:
            held = self._held.get(key)
            if not held:
                return 0
            held[:] = [t for t in held if t >= limit]
            return len(held)


@dataclass
class _Survey:
    """One round of asking: this node's own description and the peers' answers."""

    local: dict[str, Any]
    local_missing: list[str]
    local_ok: bool
    local_allowed: bool
    peers: list[Node] = field(default_factory=list)
    answers: list[tuple[Node, dict[str, Any]]] = field(default_factory=list)


class Placement:
    """Local first; otherwise the peer with the fewest images that meets every requirement.

    A peer counts the images it runs plus the ones placed on it and still deploying
    (:class:`Reservations`); then its load; ties go round-robin, not to the lowest
    address. Peers whose presence already shows they lack a required capability are not
    asked. The rest are asked in parallel and only for ``timeout`` seconds, so a dead or
    fake node in the node list delays a placement by at most that long.
    """

    def __init__(self, gateway: ClusterGateway, timeout: float = 3.0) -> None:
        self._gateway = gateway
        self._timeout = timeout
        self.reservations = Reservations()
        self._turn = itertools.count()

    def release(self, node: Node) -> None:
        """The deployment on ``node`` that :meth:`place` reserved has finished."""
        self.reservations.release(node.id or node.ip)

    def place(self, image: Image, exclude: set[str] | None = None) -> Node:
        """The node to run ``image`` on, or :class:`PlacementError` naming what is missing."""
        return self._choose(image, self._survey(image, exclude or set()))

    def place_all(self, images: list[Image]) -> list[Node | PlacementError]:
        """Place several images (one service's) with one survey per requirement set.

        The images of a service mostly need the same capabilities: the peers are asked
        once for them all instead of once per image (a service of four cost four rounds
        of requests to every candidate). Each choice holds its reservation before the
        next one is made, so the images still spread over the nodes that fit.
        """
        surveys: dict[tuple[str, ...], _Survey] = {}
        chosen: list[Node | PlacementError] = []
        for image in images:
            key = tuple(sorted(image.capabilities))
            survey = surveys.get(key)
            if survey is None:
                survey = surveys[key] = self._survey(image, set())
            try:
                chosen.append(self._choose(image, survey))
            except PlacementError as exc:
                chosen.append(exc)
        return chosen

    def _survey(self, image: Image, exclude: set[str]) -> _Survey:
        """What this node and the peers worth asking say about themselves now."""
        local = self._gateway.describe(self._gateway.local_node())
        local_missing = unmet(image.capabilities, local["capabilities"])
        local_ok = local["lifecycle"] == NodeLifecycle.OPERATE.value
        local_allowed = self._gateway.local_id not in exclude
        survey = _Survey(local, local_missing, local_ok, local_allowed)
        if local_ok and not local_missing and local_allowed:
            return survey  # local first: no peer is asked

        peers = [n for n in self._gateway.candidates() if (n.id or n.ip) not in exclude]
        # A presence-speaking peer published its capabilities: one that lacks what the
        # image needs is not worth a request (in a big cell most peers are such).
        # Only when none of the others fits are they all asked after all (their
        # capabilities may have changed since their last presence).
        asked = [p for p in peers if not (p.version and unmet(image.capabilities, p.capabilities))]
        answers = self._ask(asked)
        if len(asked) < len(peers) and not any(self._fits(image, info) for _node, info in answers):
            answers += self._ask([p for p in peers if p not in asked])
        survey.peers, survey.answers = peers, answers
        return survey

    def _choose(self, image: Image, survey: _Survey) -> Node:
        """The least busy fitting node of ``survey`` (reserved), or PlacementError."""
        if survey.local_ok and not survey.local_missing and survey.local_allowed:
            return self._gateway.local_node()
        local = survey.local
        answers = survey.answers
        missing_by_node: dict[str, list[str]] = {}
        fitting: list[tuple[int, float, int, Node]] = []
        turn = next(self._turn)
        if not survey.local_ok:
            missing_by_node["local"] = [f"node is in {local['lifecycle']}"]
        elif survey.local_allowed:
            missing_by_node["local"] = survey.local_missing
        for node, info in answers:
            if info.get("lifecycle", NodeLifecycle.OPERATE.value) != NodeLifecycle.OPERATE.value:
                missing_by_node[node.name or node.ip] = [f"node is in {info.get('lifecycle')}"]
                continue
            missing = unmet(image.capabilities, info.get("capabilities", []))
            if missing:
                missing_by_node[node.name or node.ip] = missing
                continue
            load = info.get("load")
            images = info.get("images")
            count = (images if isinstance(images, int) else 0) + self.reservations.count(
                info.get("node_id") or node.id or node.ip
            )
            # Loads within 0.05 are equal (on one machine they are the same number);
            # the rotation then spreads ties instead of favouring the lowest address.
            rounded = round(float(load), 1) if isinstance(load, int | float) else 1e9
            fitting.append((count, rounded, (len(fitting) - turn) % (len(answers) or 1), node))
        if fitting:
            fitting.sort(key=lambda item: item[:3])
            chosen = fitting[0][3]
            if info_id := next((i.get("node_id") for n, i in answers if n.ip == chosen.ip), None):
                chosen.id = chosen.id or info_id
            self.reservations.hold(chosen.id or chosen.ip)
            return chosen
        wanted = sorted(set(image.capabilities))
        still_missing = sorted({m for ms in missing_by_node.values() for m in ms}) or wanted
        checked = len(survey.peers) + 1
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

    @staticmethod
    def _fits(image: Image, info: dict[str, Any]) -> bool:
        lifecycle = info.get("lifecycle", NodeLifecycle.OPERATE.value)
        missing = unmet(image.capabilities, info.get("capabilities", []))
        return lifecycle == NodeLifecycle.OPERATE.value and not missing

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
