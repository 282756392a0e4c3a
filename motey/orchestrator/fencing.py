"""Fencing (node side): the images this node runs for other owners, across a cut.

* **Coming back** — at start (before the node reports OPERATE) and whenever an owner
  answers again after a silence, the node asks that owner which of its images it may
  keep (the ``claims`` request) and stops every image that was moved meanwhile.
* **Cut off** — an image with ``on_disconnect: stop`` is stopped once its owner has not
  answered a direct request for ``stop_after_disconnect`` seconds; config validation
  keeps that below the owner's ``reschedule_after``, so the replacement starts only
  after this copy is gone. ``keep`` images run on (the line keeps running).

The owner is asked directly (ZeroMQ), never through the broker: a dead broker alone
changes nothing here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import logbook

from motey.errors import MoteyError
from motey.models.node import Node
from motey.node.identity import NodeIdentity
from motey.orchestrator.cluster import ClusterGateway
from motey.orchestrator.executor import ImageExecutor
from motey.val.plugin import LABEL_ON_DISCONNECT, LABEL_OWNER_ID, LABEL_OWNER_IP, InstanceInfo

log = logbook.Logger(__name__)

#: (engine, instance) of an image this node runs for another owner.
Foreign = tuple[str, InstanceInfo]

#: Seconds after which the fence lists the engine's instances again although this node
#: started and removed none (a container removed from outside leaves the list then).
RELIST_AFTER = 30.0


class Fence:
    """Keeps this node's copies of other owners' images honest; a Core component."""

    #: Seconds :meth:`stop` may take (a probe in flight is cancelled by the orchestrator).
    STOP_WAIT = 0.5

    def __init__(
        self,
        identity: NodeIdentity,
        executor: ImageExecutor,
        gateway: ClusterGateway,
        stop_after_disconnect: float = 15.0,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._identity = identity
        self._executor = executor
        self._gateway = gateway
        self._stop_after = stop_after_disconnect
        self._interval = interval
        self._clock = clock
        self._lost_since: dict[str, float] = {}
        #: The last instance list, the executor generation and the time it was read at.
        self._listed: tuple[dict[str, list[InstanceInfo]], int, float] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Ask every owner first (the node is not operating yet), then keep watching."""
        if self._thread is not None:
            return
        self._stop.clear()
        for owner_id, images in self._foreign().items():
            node = self._owner(owner_id, images)
            if node is not None and self._answers(node):
                self._claim(owner_id, node, images)
            else:
                self._lost_since.setdefault(owner_id, self._clock())
        self._thread = threading.Thread(target=self._loop, name="motey-fence", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.STOP_WAIT)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.check_once()
            except Exception as exc:  # the fence must survive any single failure
                log.exception("fence round failed: {}", exc)

    def check_once(self) -> None:
        """One round: probe each owner, claim after a silence, stop what must not run on."""
        foreign = self._foreign()
        for owner_id in list(self._lost_since):
            if owner_id not in foreign:
                self._lost_since.pop(owner_id, None)
        for owner_id, images in foreign.items():
            if self._stop.is_set():
                return
            # Stop first, probe after: a probe of a silent owner blocks for the request
            # timeout, which must not be added to stop_after_disconnect.
            images = self._stop_if_overdue(owner_id, images)
            sent = self._clock()
            node = self._owner(owner_id, images)
            if node is not None and self._answers(node):
                if self._lost_since.pop(owner_id, None) is not None:
                    log.info("owner {} answers again; asking which images to keep", owner_id)
                    self._claim(owner_id, node, images)
                continue
            self._lost_since.setdefault(owner_id, sent)
            self._stop_if_overdue(owner_id, images)

    def _stop_if_overdue(self, owner_id: str, images: list[Foreign]) -> list[Foreign]:
        """Stop the ``on_disconnect: stop`` images of an owner silent long enough;
        return the images left running."""
        since = self._lost_since.get(owner_id)
        if since is None or self._clock() - since < self._stop_after:
            return images
        left: list[Foreign] = []
        for engine, info in images:
            if info.labels.get(LABEL_ON_DISCONNECT) != "stop":
                left.append((engine, info))
                continue
            log.warning(
                "stopping image {}: owner {} silent for {:.0f} s (on_disconnect: stop)",
                info.image_id,
                owner_id,
                self._clock() - since,
            )
            self._remove(engine, info)
        return left

    def _foreign(self) -> dict[str, list[Foreign]]:
        """This node's instances that another node owns, by owner id.

        The engine is asked again only when this node started or removed an instance
        since (the executor's generation moved) or :data:`RELIST_AFTER` has passed: a
        round every second that listed every container (one engine call per node per
        second, each scanning all containers of the machine) was a steady load on the
        engine in a big cell.
        """
        generation, now = self._executor.generation, self._clock()
        listed = self._listed
        if listed is not None and listed[1] == generation and now - listed[2] < RELIST_AFTER:
            instances = listed[0]
        else:
            try:
                instances = self._executor.list_instances()
            except MoteyError as exc:
                log.error("cannot list instances: {}", exc.message)
                return {}
            self._listed = (instances, generation, now)
        found: dict[str, list[Foreign]] = {}
        for engine, infos in instances.items():
            for info in infos:
                owner = info.labels.get(LABEL_OWNER_ID)
                if owner and owner != self._identity.id and info.image_id:
                    found.setdefault(owner, []).append((engine, info))
        return found

    def _owner(self, owner_id: str, images: list[Foreign]) -> Node | None:
        """The owner as discovery knows it, else at the address its images were labelled
        with (a node restarted while the broker is away has no node list)."""
        known = self._gateway.peer(owner_id, None)
        if known is not None:
            return known
        for _engine, info in images:
            ip = info.labels.get(LABEL_OWNER_IP)
            if ip:
                return Node(ip=ip, id=owner_id, version="labelled")
        return None

    def _answers(self, node: Node) -> bool:
        try:
            self._gateway.describe(node)
        except MoteyError:
            return False
        return True

    def _claim(self, owner_id: str, node: Node, images: list[Foreign]) -> None:
        """Ask ``owner_id`` which images to keep; stop the ones it moved meanwhile."""
        try:
            answer = self._gateway.claims(node, [info.image_id or "" for _, info in images])
        except MoteyError as exc:
            log.warning("owner {} did not answer the claims request: {}", owner_id, exc.message)
            return
        stop = set(answer["stop"])
        for engine, info in images:
            if info.image_id in stop:
                log.warning(
                    "stopping image {}: owner {} moved it elsewhere while this node was away",
                    info.image_id,
                    owner_id,
                )
                self._remove(engine, info)

    def _remove(self, engine: str, info: InstanceInfo) -> None:
        try:
            self._executor.remove_instance(engine, info.image_id or "")
        except MoteyError as exc:
            log.error("could not stop image {}: {}", info.image_id, exc.message)
