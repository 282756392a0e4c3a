"""A burst of placements costs the cell little besides the starts themselves (issue 12).

In-process with the fakes: what one deployment asks of the peers, how often it writes the
service, and what the engine is asked for beyond starting the image. The speed itself is
measured by ``performance_test/cluster_benchmark.py --images`` and
``orchestration_benchmark.py`` (its interleaved deploy ratios).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from motey.errors import ImageUnavailable
from motey.models.image import Image
from motey.orchestrator.fencing import RELIST_AFTER, Fence
from motey.val.manager import VALManager
from motey.val.plugin import LABEL_IMAGE_ID, LABEL_OWNER_ID
from tests.fakes import FakeEngine, FakePeer, Rig, blueprint, build, wait_state


def counted(rig: Rig) -> Counter[str]:
    """Count the requests the orchestrator sends to its peers, by kind."""
    calls: Counter[str] = Counter()
    for kind in ("describe", "deploy_image", "image_status"):
        original = getattr(rig.remote, kind)

        def wrapper(*args: Any, _kind: str = kind, _original: Any = original) -> Any:
            calls[_kind] += 1
            return _original(*args)

        setattr(rig.remote, kind, wrapper)
    return calls


@pytest.fixture
def cell(tmp_path: Path) -> Rig:
    """A node without ``bench`` and five peers with it."""
    rig = build(tmp_path)
    for n in range(5):
        rig.add_peer(FakePeer(f"127.9.1.{n + 1}", capabilities=["bench"]))
    yield rig
    rig.close()


def test_a_service_asks_each_peer_once_not_once_per_image(cell: Rig) -> None:
    calls = counted(cell)
    service = cell.orchestrator.submit_blueprint(
        blueprint(*[{"name": f"i{n}", "capabilities": ["bench"]} for n in range(4)])
    )
    done = wait_state(cell, service.id, "RUNNING")
    # Before: every image asked every fitting peer (4 images x 5 peers = 20 requests).
    assert calls["describe"] == 5
    assert calls["deploy_image"] == 4
    # The reservations still spread the four images over four different peers.
    assert len({image.node for image in done.images}) == 4


def test_a_started_image_is_running_without_a_status_round_trip(cell: Rig) -> None:
    calls = counted(cell)
    service = cell.orchestrator.submit_blueprint(
        blueprint(*[{"name": f"i{n}", "capabilities": ["bench"]} for n in range(3)])
    )
    done = wait_state(cell, service.id, "RUNNING")
    assert calls["image_status"] == 0  # the deploy answer already says it started
    assert all(image.instance_id for image in done.images)
    cell.orchestrator.watch_once()  # the watcher still asks, as before
    assert calls["image_status"] == 3


def test_a_deployment_writes_its_service_twice(tmp_path: Path) -> None:
    rig = build(tmp_path, capabilities=[])
    try:
        writes: list[str] = []
        update = rig.orchestrator.book._services.update

        def counting(service: Any) -> None:
            writes.append(service.state.value)
            update(service)

        rig.orchestrator.book._services.update = counting  # type: ignore[method-assign]
        service = rig.orchestrator.submit_blueprint(
            blueprint(*[{"name": f"i{n}"} for n in range(4)])
        )
        wait_state(rig, service.id, "RUNNING")
        # The POST's own write, then INSTANTIATING with every placement, then RUNNING.
        # Before: 2 + 2 per image (11 for four images), each rewriting the whole file.
        assert writes == ["INITIAL", "INSTANTIATING", "RUNNING"]
        stored = rig.orchestrator.get_service(service.id)
        assert all(image.instance_id and image.node for image in stored.images)
    finally:
        rig.close()


class PullingEngine(FakeEngine):
    """A fake engine that can fetch a missing image unless pulling is off."""

    def __init__(self, settings: dict[str, Any] | None = None, node_id: str = "fake") -> None:
        super().__init__(settings, node_id)
        self.asked: list[str] = []

    def ensure_image(self, name: str) -> None:
        self.asked.append(name)
        if name in self.missing and not self.settings.get("pull_missing", True):
            raise ImageUnavailable(f"image {name!r} is missing and pulling is disabled")
        self.missing.discard(name)


def engine(pull: bool) -> tuple[VALManager, PullingEngine]:
    val = VALManager(lambda: {"fake": PullingEngine}, {"FAKE": {"pull_missing": pull}}, "n1")
    val.start()
    plugin = val.plugin("fake")
    assert isinstance(plugin, PullingEngine)
    return val, plugin


def test_a_present_image_starts_without_asking_the_engine_for_it_first() -> None:
    val, plugin = engine(pull=True)
    val.instantiate(Image(id="a", name="here", engine="fake"))
    assert plugin.asked == []
    assert plugin.running() == {"a"}


def test_a_missing_image_is_fetched_then_started_and_pull_missing_still_holds() -> None:
    val, plugin = engine(pull=True)
    plugin.missing.add("away")
    val.instantiate(Image(id="a", name="away", engine="fake"))
    assert plugin.asked == ["away"]
    assert plugin.running() == {"a"}

    val, plugin = engine(pull=False)
    plugin.missing.add("away")
    with pytest.raises(ImageUnavailable, match="pulling is disabled"):
        val.instantiate(Image(id="b", name="away", engine="fake"))
    assert plugin.running() == set()


def test_the_fence_lists_the_engine_only_after_a_change(tmp_path: Path) -> None:
    owner = FakePeer("127.9.2.1")
    rig = build(tmp_path)
    rig.add_peer(owner)
    clock = [0.0]
    executor = rig.orchestrator._executor
    fence = Fence(rig.identity, executor, rig.orchestrator._gateway, clock=lambda: clock[0])
    lists = [0]
    list_instances = rig.engine.list_instances

    def counting() -> Any:
        lists[0] += 1
        return list_instances()

    rig.engine.list_instances = counting  # type: ignore[method-assign]
    labels = {LABEL_IMAGE_ID: "img", LABEL_OWNER_ID: owner.id}
    rig.engine.instantiate(Image(id="img", name="img", engine="fake"), labels)
    try:
        for _ in range(5):
            fence.check_once()
            clock[0] += 1
        assert lists[0] == 1  # before: one engine call every round
        assert owner.requests == 5  # the owner is still probed every round
        executor.deploy(Image(id="own", name="own", engine="fake"))  # this node started one
        fence.check_once()
        assert lists[0] == 2
        clock[0] += RELIST_AFTER  # a container removed from outside shows up in time
        fence.check_once()
        assert lists[0] == 3
    finally:
        rig.close()
