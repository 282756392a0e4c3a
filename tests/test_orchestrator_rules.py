"""The orchestrator's rules, in-process with a fake engine and fake peers (milliseconds).

Each test names the defect of issue 10 it reproduces; real-process tests cover what
crosses a process boundary (tests/test_healing*.py, tests/test_api_service.py, ...).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from motey.models.image import ImageState
from motey.models.node import NodeLifecycle, NodeReachability
from motey.models.service import ServiceState
from tests.fakes import FakePeer, Rig, blueprint, build, wait_state


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = build(tmp_path / "rig")
    yield made
    made.close()


def test_deploy_and_terminate_through_the_fake_engine(rig: Rig) -> None:
    service = rig.orchestrator.submit_blueprint(blueprint({"name": "a"}, {"name": "b"}))
    running = wait_state(rig, service.id, "RUNNING")
    assert {i.id for i in running.images} == rig.engine.running()
    rig.orchestrator.terminate(service.id)
    wait_state(rig, service.id, "TERMINATED")
    assert rig.engine.running() == set()


# -- step 2: the placement timeout ------------------------------------------------------


def test_placement_returns_at_its_timeout_while_a_peer_is_slow(tmp_path: Path) -> None:
    """Leaving the pool's ``with`` block used to wait for every future anyway."""
    rig = build(tmp_path, placement_timeout=0.3, request_timeout=5.0)
    try:
        slow = rig.add_peer(FakePeer("127.9.0.2", capabilities=["zigbee"], delay=3.0))
        rig.add_peer(FakePeer("127.9.0.3", capabilities=["zigbee"]))
        started = time.monotonic()
        service = rig.orchestrator.submit_blueprint(
            blueprint({"name": "z", "capabilities": ["zigbee"]})
        )
        running = wait_state(rig, service.id, "RUNNING", timeout=2.5)
        assert time.monotonic() - started < 2.0
        assert running.images[0].node == "127.9.0.3"
        assert slow.requests == 1
    finally:
        rig.remote.cancel()  # end the slow request still sleeping in its worker
        rig.close()


def test_placement_skips_a_peer_known_unreachable_without_asking(rig: Rig) -> None:
    dead = rig.add_peer(FakePeer("127.9.0.2", capabilities=["zigbee"], delay=3.0))
    node = dead.as_node()
    node.state = NodeReachability.UNREACHABLE
    rig.nodes.upsert(node)
    started = time.monotonic()
    service = rig.orchestrator.submit_blueprint(
        blueprint({"name": "z", "capabilities": ["zigbee"]})
    )
    waiting = wait_state(rig, service.id, "INSTANTIATING")
    wait_for_waiting(rig, service.id)
    assert time.monotonic() - started < 1.5  # the peer would take 3 s
    assert dead.requests == 0
    assert waiting.images[0].node is None


# -- step 3: parallel images ------------------------------------------------------------


def test_images_start_and_stop_side_by_side(tmp_path: Path) -> None:
    rig = build(tmp_path, workers=4)
    try:
        rig.engine.start_delay = rig.engine.stop_delay = 0.5
        images = [{"name": f"i{n}"} for n in range(4)]
        started = time.monotonic()
        service = rig.orchestrator.submit_blueprint(blueprint(*images))
        wait_state(rig, service.id, "RUNNING", timeout=3)
        assert time.monotonic() - started < 0.5 * 3  # one after another: 0.5 * 4
        assert rig.engine.max_active == 4
        rig.engine.max_active = 0
        started = time.monotonic()
        rig.orchestrator.terminate(service.id)
        wait_state(rig, service.id, "TERMINATED", timeout=3)
        assert time.monotonic() - started < 0.5 * 3
        assert rig.engine.max_active == 4
    finally:
        rig.close()


def test_parallelism_is_bounded_by_workers(tmp_path: Path) -> None:
    rig = build(tmp_path, workers=2)
    try:
        rig.engine.start_delay = 0.05
        service = rig.orchestrator.submit_blueprint(
            blueprint(*[{"name": f"i{n}"} for n in range(6)])
        )
        wait_state(rig, service.id, "RUNNING")
        assert rig.engine.max_active == 2
    finally:
        rig.close()


def test_one_failing_image_rolls_back_the_others(rig: Rig) -> None:
    rig.engine.fail_start.add("bad")
    service = rig.orchestrator.submit_blueprint(
        blueprint({"name": "a"}, {"name": "bad"}, {"name": "c"})
    )
    failed = wait_state(rig, service.id, "ERROR")
    assert "failed to start" in failed.state_message
    assert rig.engine.running() == set()
    assert [i.state for i in failed.images].count(ImageState.ERROR) == 1


# -- step 4: stopping is not failing ----------------------------------------------------


def test_stop_during_a_deployment_pauses_it_and_it_resumes(tmp_path: Path) -> None:
    """core.py set DECOMMISSION first; the next image failed and ERROR was final."""
    rig = build(tmp_path / "a")
    rig.engine.start_delay = 0.3
    # this node's own lifecycle refusal means it is stopping: not a reason to go elsewhere
    peer = rig.add_peer(FakePeer("127.9.0.2"))
    service = rig.orchestrator.submit_blueprint(blueprint(*[{"name": f"i{n}"} for n in range(6)]))
    time.sleep(0.1)  # the first images are starting
    rig.identity.set_lifecycle(NodeLifecycle.DECOMMISSION, "shutting down")
    started = time.monotonic()
    rig.orchestrator.stop()
    assert time.monotonic() - started < 1.5
    paused = rig.orchestrator.get_service(service.id)
    assert paused.state is ServiceState.INSTANTIATING, paused.state_message
    assert "paused" in paused.history[-1]["message"]
    assert all(h["state"] != "ERROR" for h in paused.history)
    assert peer.engine.running() == set() and peer.requests == 0
    # a restart resumes the job once the node operates
    rig.identity.set_lifecycle(NodeLifecycle.COMMISSION)
    rig.engine.start_delay = 0.0
    rig.orchestrator.start()
    rig.identity.set_lifecycle(NodeLifecycle.OPERATE)
    running = wait_state(rig, service.id, "RUNNING")
    assert len(rig.engine.running()) == len(running.images) == 6
    rig.close()


def test_stop_cancels_a_remote_deploy_in_flight(tmp_path: Path) -> None:
    rig = build(tmp_path, request_timeout=30.0)
    try:
        rig.add_peer(FakePeer("127.9.0.2", capabilities=["zigbee"], delay=20.0))
        rig.orchestrator.deploy.__class__  # noqa: B018 - the placement asks the peer first
        service = rig.orchestrator.submit_blueprint(
            blueprint({"name": "z", "capabilities": ["zigbee"]})
        )
        time.sleep(0.2)
        started = time.monotonic()
        rig.orchestrator.stop()
        assert time.monotonic() - started < 2.0
        paused = rig.orchestrator.get_service(service.id)
        assert paused.state is not ServiceState.ERROR, paused.state_message
    finally:
        rig.close()


# -- step 5: wait instead of fail -------------------------------------------------------


def wait_for_waiting(rig: Rig, service_id: str) -> None:
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        service = rig.orchestrator.get_service(service_id)
        if any(
            i.awaiting_placement for i in service.images
        ) and not rig.orchestrator.jobs.is_pending(service_id):
            return
        time.sleep(0.01)
    raise AssertionError("image never waited for placement")


def test_an_image_no_node_can_run_waits_and_is_placed_when_one_qualifies(rig: Rig) -> None:
    rig.add_peer(FakePeer("127.9.0.2", capabilities=["zigbee"]))
    rig.add_peer(FakePeer("127.9.0.3"))
    service = rig.orchestrator.submit_blueprint(
        blueprint({"name": "plain"}, {"name": "cam", "capabilities": ["camera"]})
    )
    wait_for_waiting(rig, service.id)
    waiting = rig.orchestrator.get_service(service.id)
    assert waiting.state is ServiceState.INSTANTIATING
    cam = waiting.images[1]
    assert cam.awaiting_placement and cam.state is ImageState.INSTANTIATING
    assert "no node has camera; 3 node(s) checked" in cam.state_message
    assert "camera" in waiting.state_message
    assert waiting.images[0].state is ImageState.RUNNING  # the rest is deployed
    # a node gains the camera (a capability event on the peer's side)
    rig.remote.peers["127.9.0.3"].capabilities.append("camera")
    rig.orchestrator.watch_once()
    placed = rig.orchestrator.get_service(service.id)
    assert placed.state is ServiceState.RUNNING, placed.state_message
    assert placed.images[1].node == "127.9.0.3" and not placed.images[1].awaiting_placement
    assert any("placed on 127.9.0.3" in h["message"] for h in placed.history)


def test_the_write_that_shows_an_image_waiting_says_what_the_service_waits_for(
    tmp_path: Path,
) -> None:
    """The service said "deploying images" until its other images had started, while its
    stored images already showed one waiting (a reader in CI saw exactly that)."""
    rig = build(tmp_path)
    try:
        rig.engine.start_delay = 0.5
        service = rig.orchestrator.submit_blueprint(
            blueprint({"name": "plain"}, {"name": "cam", "capabilities": ["camera"]})
        )
        deadline = time.monotonic() + 3
        while not (waiting := rig.orchestrator.get_service(service.id)).images[1].node_id:
            if waiting.images[1].awaiting_placement or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        assert waiting.images[1].awaiting_placement
        assert waiting.images[0].state is ImageState.INSTANTIATING  # still starting
        assert "no node has camera" in waiting.state_message, waiting.state_message
    finally:
        rig.close()


def test_a_local_capability_event_places_a_waiting_image_at_once(tmp_path: Path) -> None:
    rig = build(tmp_path)
    rig.orchestrator.watcher._interval = 0.05  # a real watcher thread, woken by the event
    rig.orchestrator.watcher.stop(1)
    rig.orchestrator.watcher.start()
    try:
        service = rig.orchestrator.submit_blueprint(
            blueprint({"name": "z", "capabilities": ["zigbee"]})
        )
        wait_for_waiting(rig, service.id)
        rig.capabilities.add([{"capability": "zigbee", "capability_type": "hardware"}], "rest")
        running = wait_state(rig, service.id, "RUNNING")
        assert running.images[0].node == rig.identity.ip
    finally:
        rig.close()


def test_placement_deadline_turns_waiting_into_error(tmp_path: Path) -> None:
    rig = build(tmp_path, placement_deadline=0.2)
    try:
        service = rig.orchestrator.submit_blueprint(
            blueprint({"name": "plain"}, {"name": "cam", "capabilities": ["camera"]})
        )
        wait_for_waiting(rig, service.id)
        rig.orchestrator.watch_once()
        assert rig.orchestrator.get_service(service.id).state is ServiceState.INSTANTIATING
        time.sleep(0.25)
        rig.orchestrator.watch_once()
        failed = rig.orchestrator.get_service(service.id)
        assert failed.state is ServiceState.ERROR
        assert "no node meets its requirements within 0.2 s" in failed.state_message
        assert "camera" in failed.state_message
        assert rig.engine.running() == set()  # rolled back
    finally:
        rig.close()


def test_image_errors_still_fail_at_once(rig: Rig) -> None:
    from motey.errors import MoteyError

    rig.engine.missing.add("nope")
    with pytest.raises(MoteyError) as caught:
        rig.orchestrator.submit_blueprint(blueprint({"name": "nope"}))
    assert caught.value.field == "images[0].name"


# -- a node that declines an image ------------------------------------------------------


def test_a_peer_whose_policy_refuses_is_skipped_for_the_next_that_qualifies(rig: Rig) -> None:
    """Placement asks whether a node can run an image, not whether its policy lets it:
    the first peer that refused used to end the whole service in ERROR."""
    strict = rig.add_peer(FakePeer("127.9.0.2", capabilities=["zigbee"], refuses="allow_devices"))
    open_ = rig.add_peer(FakePeer("127.9.0.3", capabilities=["zigbee"], load=0.9))
    service = rig.orchestrator.submit_blueprint(
        blueprint({"name": "z", "capabilities": ["zigbee"]})
    )
    running = wait_state(rig, service.id, "RUNNING")
    assert running.images[0].node == open_.ip
    assert open_.engine.running() == {running.images[0].id}
    assert strict.engine.running() == set()
    refusal = [h["message"] for h in running.history if "refused by node" in h["message"]]
    assert len(refusal) == 1 and "allow_devices" in refusal[0] and open_.ip in refusal[0]
    assert rig.placement.reservations.count(strict.id) == 0  # none left held
    assert rig.placement.reservations.count(open_.id) == 0


def test_when_every_fitting_node_refuses_the_service_fails_naming_each(rig: Rig) -> None:
    rig.add_peer(FakePeer("127.9.0.2", capabilities=["zigbee"], refuses="allow_devices"))
    rig.add_peer(FakePeer("127.9.0.3", capabilities=["zigbee"], refuses="allowed_bind_paths"))
    rig.add_peer(FakePeer("127.9.0.4", capabilities=["camera"]))  # fits nothing: not tried
    service = rig.orchestrator.submit_blueprint(
        blueprint({"name": "plain"}, {"name": "z", "capabilities": ["zigbee"]})
    )
    failed = wait_state(rig, service.id, "ERROR")
    assert "allow_devices" in failed.state_message
    assert "allowed_bind_paths" in failed.state_message
    assert "no other node takes it (of the others: no node has zigbee" in failed.state_message
    assert rig.remote.peers["127.9.0.4"].engine.running() == set()
    assert rig.engine.running() == set()  # the local image was rolled back
    assert failed.images[1].state is ImageState.ERROR


def test_a_peer_that_leaves_operate_after_the_survey_is_skipped(rig: Rig) -> None:
    leaving = rig.add_peer(FakePeer("127.9.0.2", capabilities=["zigbee"], leaves_on_deploy=True))
    staying = rig.add_peer(FakePeer("127.9.0.3", capabilities=["zigbee"], load=0.9))
    service = rig.orchestrator.submit_blueprint(
        blueprint({"name": "z", "capabilities": ["zigbee"]})
    )
    running = wait_state(rig, service.id, "RUNNING")
    assert running.images[0].node == staying.ip
    assert leaving.engine.running() == set()


# -- step 6: peers that do not answer ---------------------------------------------------


def test_a_bare_ip_peer_that_stops_answering_is_marked_then_removed(tmp_path: Path) -> None:
    clock = [1000.0]
    rig = build(tmp_path, request_timeout=0.05, peer_max_failures=2, peer_grace=10)
    rig.orchestrator._gateway.health._clock = lambda: clock[0]
    try:
        dead = rig.add_peer(FakePeer("127.9.0.2", bare_ip=True, silent=True))
        for _ in range(2):
            service = rig.orchestrator.submit_blueprint(
                blueprint({"name": "z", "capabilities": ["zigbee"]})
            )
            wait_for_waiting(rig, service.id)
        assert rig.nodes.get(dead.ip).state is NodeReachability.UNREACHABLE
        asked = dead.requests
        service = rig.orchestrator.submit_blueprint(
            blueprint({"name": "z", "capabilities": ["zigbee"]})
        )
        wait_for_waiting(rig, service.id)
        assert dead.requests == asked  # skipped: not even asked, so no wait for it
        rig.orchestrator._gateway.sweep()
        assert rig.nodes.get(dead.ip) is not None  # grace not over
        clock[0] += 11
        rig.orchestrator._gateway.sweep()
        assert rig.nodes.get(dead.ip) is None
    finally:
        rig.close()


def test_a_presence_peer_is_not_dropped_by_silence(tmp_path: Path) -> None:
    rig = build(tmp_path, request_timeout=0.05, peer_max_failures=1, peer_grace=0)
    try:
        peer = rig.add_peer(FakePeer("127.9.0.2", silent=True))
        service = rig.orchestrator.submit_blueprint(
            blueprint({"name": "z", "capabilities": ["zigbee"]})
        )
        wait_for_waiting(rig, service.id)
        rig.orchestrator._gateway.sweep()
        assert rig.nodes.get(peer.ip).state is NodeReachability.REACHABLE
    finally:
        rig.close()


def test_stop_leaves_no_thread_behind(tmp_path: Path, no_thread_leaks: None) -> None:
    rig = build(tmp_path)
    service = rig.orchestrator.submit_blueprint(blueprint({"name": "a"}, {"name": "b"}))
    wait_state(rig, service.id, "RUNNING")
    rig.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("motey-watcher")]
