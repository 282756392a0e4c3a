"""Rescheduling and fencing rules, in-process with fakes (issue 10, "Reschedule with
fencing"); the real-process versions are in tests/test_healing.py."""

from __future__ import annotations

import time
from pathlib import Path

from motey.models.image import Image
from motey.models.node import NodeReachability
from motey.models.service import Service, ServiceState
from motey.orchestrator.fencing import Fence
from motey.val.plugin import LABEL_IMAGE_ID, LABEL_ON_DISCONNECT, LABEL_OWNER_ID, LABEL_OWNER_IP
from tests.fakes import FakePeer, Rig, blueprint, build, wait_state


def placed_on(rig: Rig, peer_ip: str) -> tuple[str, FakePeer, FakePeer]:
    """A zigbee service placed on ``peer_ip`` with a second zigbee peer standing by."""
    first = rig.add_peer(FakePeer(peer_ip, capabilities=["zigbee"], load=0.0))
    spare = rig.add_peer(FakePeer("127.9.0.9", capabilities=["zigbee"], load=0.5))
    service = rig.orchestrator.submit_blueprint(
        blueprint({"name": "z", "capabilities": ["zigbee"]})
    )
    running = wait_state(rig, service.id, "RUNNING")
    assert running.images[0].node == peer_ip
    return service.id, first, spare


def cut(rig: Rig, peer: FakePeer, presence: bool = False, answers: bool = False) -> None:
    """Take a peer's presence and/or its answers away."""
    peer.silent = not answers
    node = peer.as_node()
    node.state = NodeReachability.REACHABLE if presence else NodeReachability.UNREACHABLE
    rig.nodes.upsert(node)


def moved_to(rig: Rig, sid: str, peer: FakePeer) -> Service:
    """After one more watch round: the service runs again, its image on ``peer``."""
    rig.orchestrator.watch_once()
    moved = rig.orchestrator.get_service(sid)
    assert moved.state is ServiceState.RUNNING, moved.state_message
    assert moved.images[0].node == peer.ip
    assert peer.engine.running() == {moved.images[0].id}
    return moved


def test_an_unreachable_node_loses_its_images_after_reschedule_after(tmp_path: Path) -> None:
    rig = build(tmp_path, request_timeout=0.05, reschedule_after=0.3)
    try:
        sid, dead, spare = placed_on(rig, "127.9.0.2")
        cut(rig, dead)
        rig.orchestrator.watch_once()
        hurt = rig.orchestrator.get_service(sid)
        assert hurt.images[0].node == dead.ip  # not yet: reschedule_after has not passed
        assert hurt.state is ServiceState.ERROR and "unreachable" in hurt.state_message
        time.sleep(0.35)
        moved = moved_to(rig, sid, spare)
        event = moved.history[-2]["message"]
        assert f"moved from {dead.ip} to {spare.ip}" in event and "unreachable" in event
    finally:
        rig.close()


def test_a_moved_image_skips_a_target_that_refuses_it(
    tmp_path: Path,
) -> None:
    rig = build(tmp_path, request_timeout=0.05, reschedule_after=0.05)
    try:
        sid, dead, spare = placed_on(rig, "127.9.0.2")
        spare.refuses = "allowed_images"  # the least busy target declines it
        third = rig.add_peer(FakePeer("127.9.0.10", capabilities=["zigbee"], load=0.9))
        cut(rig, dead)
        rig.orchestrator.watch_once()
        time.sleep(0.1)
        moved = moved_to(rig, sid, third)
        assert spare.engine.running() == set() and dead.engine.running() == {moved.images[0].id}
        messages = [h["message"] for h in moved.history]
        assert any("refused by node" in m and "allowed_images" in m for m in messages)
        assert any(f"moved from {dead.ip} to {third.ip}" in m for m in messages), messages
    finally:
        rig.close()


def test_a_dead_broker_alone_moves_nothing(tmp_path: Path) -> None:
    rig = build(tmp_path, request_timeout=0.05, reschedule_after=0.1)
    try:
        sid, peer, _spare = placed_on(rig, "127.9.0.2")
        cut(rig, peer, presence=False, answers=True)  # presence gone, requests answered
        for _ in range(3):
            rig.orchestrator.watch_once()
            time.sleep(0.06)
        assert rig.orchestrator.get_service(sid).images[0].node == peer.ip
        cut(rig, peer, presence=True, answers=False)  # presence kept, requests unanswered
        for _ in range(3):
            rig.orchestrator.watch_once()
            time.sleep(0.06)
        assert rig.orchestrator.get_service(sid).images[0].node == peer.ip
    finally:
        rig.close()


def test_with_nowhere_to_go_the_image_stays_and_is_readopted(tmp_path: Path) -> None:
    rig = build(tmp_path, request_timeout=0.05, reschedule_after=0.05)
    try:
        peer = rig.add_peer(FakePeer("127.9.0.2", capabilities=["zigbee"]))
        service = rig.orchestrator.submit_blueprint(
            blueprint({"name": "z", "capabilities": ["zigbee"]})
        )
        wait_state(rig, service.id, "RUNNING")
        cut(rig, peer)
        for _ in range(3):
            rig.orchestrator.watch_once()
            time.sleep(0.06)
        assert "cannot move" in rig.orchestrator.get_service(service.id).history[-1]["message"]
        cut(rig, peer, presence=True, answers=True)
        rig.orchestrator.watch_once()
        back = rig.orchestrator.get_service(service.id)
        assert back.state is ServiceState.RUNNING and back.images[0].node == peer.ip
    finally:
        rig.close()


def test_an_owner_tells_a_returning_node_what_to_stop(tmp_path: Path) -> None:
    rig = build(tmp_path, request_timeout=0.05, reschedule_after=0.05)
    try:
        sid, dead, spare = placed_on(rig, "127.9.0.2")
        image_id = rig.orchestrator.get_service(sid).images[0].id
        # an unknown image is stopped only on the word of a cleanly loaded database
        keep, stop = rig.orchestrator.answer_claims(dead.id, [image_id, "unknown"])
        assert image_id in keep
        trusted = rig.orchestrator.book.health().clean
        assert ("unknown" in stop) is trusted and ("unknown" in keep) is not trusted
        cut(rig, dead)
        for _ in range(3):
            rig.orchestrator.watch_once()
            time.sleep(0.06)
        assert rig.orchestrator.get_service(sid).images[0].node == spare.ip
        assert rig.orchestrator.answer_claims(dead.id, [image_id]) == ([], [image_id])
        assert rig.orchestrator.answer_claims(spare.id, [image_id]) == ([image_id], [])
    finally:
        rig.close()


def fence_rig(tmp_path: Path, owner: FakePeer) -> tuple[Rig, Fence, list[float]]:
    rig = build(tmp_path, request_timeout=0.05)
    rig.add_peer(owner)
    clock = [100.0]
    fence = Fence(
        rig.identity,
        rig.orchestrator._executor,
        rig.orchestrator._gateway,
        stop_after_disconnect=5,
        clock=lambda: clock[0],
    )
    for image_id, mode in (("img-keep", "keep"), ("img-stop", "stop")):
        rig.engine.instantiate(
            Image(id=image_id, name=image_id, engine="fake"),
            {LABEL_IMAGE_ID: image_id, LABEL_OWNER_ID: owner.id, LABEL_ON_DISCONNECT: mode},
        )
    return rig, fence, clock


def test_a_cut_off_node_stops_only_stop_images_after_stop_after_disconnect(
    tmp_path: Path,
) -> None:
    owner = FakePeer("127.9.0.2", silent=True)
    rig, fence, clock = fence_rig(tmp_path, owner)
    try:
        fence.check_once()
        clock[0] += 4.9
        fence.check_once()
        assert rig.engine.running() == {"img-keep", "img-stop"}
        clock[0] += 0.2
        fence.check_once()
        assert rig.engine.running() == {"img-keep"}  # keep runs on: the line keeps running
    finally:
        rig.close()


def test_a_returning_node_stops_what_was_moved_meanwhile(tmp_path: Path) -> None:
    owner = FakePeer("127.9.0.2", silent=True)
    asked: list[tuple[str, list[str]]] = []

    def claims(node_id: str, ids: list[str]) -> tuple[list[str], list[str]]:
        asked.append((node_id, sorted(ids)))
        return ["img-stop"], ["img-keep"]  # the keep image was moved while we were away

    owner.claims = claims
    rig, fence, clock = fence_rig(tmp_path, owner)
    try:
        fence.check_once()
        assert asked == []  # the owner does not answer: nothing to ask yet
        owner.silent = False
        fence.check_once()
        assert asked == [(rig.identity.id, ["img-keep", "img-stop"])]
        assert rig.engine.running() == {"img-stop"}
        fence.check_once()
        assert len(asked) == 1  # asked once per return, not every round
    finally:
        rig.close()


def test_a_starting_node_asks_the_owners_before_it_operates(tmp_path: Path) -> None:
    owner = FakePeer("127.9.0.2")
    owner.claims = lambda node_id, ids: ([], list(ids))
    rig, fence, _clock = fence_rig(tmp_path, owner)
    try:
        fence.start()  # the Core starts it before the node turns OPERATE
        assert rig.engine.running() == set()
    finally:
        fence.stop()
        rig.close()


def test_a_dead_node_costs_one_request_timeout_per_round(tmp_path: Path) -> None:
    rig = build(tmp_path, request_timeout=0.5, reschedule_after=60)
    try:
        peer = rig.add_peer(FakePeer("127.9.0.2", capabilities=["zigbee"]))
        service = rig.orchestrator.submit_blueprint(
            blueprint(*[{"name": f"z{n}", "capabilities": ["zigbee"]} for n in range(4)])
        )
        wait_state(rig, service.id, "RUNNING")
        cut(rig, peer)
        started = time.monotonic()
        rig.orchestrator.watch_once()
        assert time.monotonic() - started < 0.5 * 2.4  # one timeout, not four
        hurt = rig.orchestrator.get_service(service.id)
        assert all("unreachable" in i.state_message for i in hurt.images)
    finally:
        rig.close()


def test_a_stop_image_its_node_stopped_while_cut_off_is_placed_again(tmp_path: Path) -> None:
    rig = build(tmp_path)
    try:
        peer = rig.add_peer(FakePeer("127.9.0.2", capabilities=["zigbee"]))
        service = rig.orchestrator.submit_blueprint(
            blueprint({"name": "z", "capabilities": ["zigbee"], "on_disconnect": "stop"})
        )
        running = wait_state(rig, service.id, "RUNNING")
        assert running.images[0].on_disconnect == "stop"
        peer.engine.terminate(running.images[0].id)  # what the node's fence does
        rig.orchestrator.watch_once()
        back = rig.orchestrator.get_service(service.id)
        assert back.state is ServiceState.RUNNING, back.state_message
        assert peer.engine.running() == {back.images[0].id}
        assert any("stopped on 127.9.0.2 while cut off" in h["message"] for h in back.history)
    finally:
        rig.close()


def test_a_node_without_a_node_list_asks_the_owner_at_its_labelled_address(
    tmp_path: Path,
) -> None:
    """After a restart with the broker away the node list is empty: a dead broker alone
    must not make a node stop its on_disconnect: stop images."""
    owner = FakePeer("127.9.0.2")
    owner.claims = lambda node_id, ids: (list(ids), [])
    rig = build(tmp_path, request_timeout=0.05)
    rig.remote.add(owner)  # reachable directly, but not in the node list
    clock = [0.0]
    fence = Fence(
        rig.identity,
        rig.orchestrator._executor,
        rig.orchestrator._gateway,
        stop_after_disconnect=1,
        clock=lambda: clock[0],
    )
    labels = {
        LABEL_IMAGE_ID: "img",
        LABEL_OWNER_ID: owner.id,
        LABEL_OWNER_IP: owner.ip,
        LABEL_ON_DISCONNECT: "stop",
    }
    rig.engine.instantiate(Image(id="img", name="img", engine="fake"), labels)
    try:
        for _ in range(3):
            fence.check_once()
            clock[0] += 1
        assert rig.engine.running() == {"img"}
        assert owner.requests >= 3
    finally:
        rig.close()


def test_the_deploy_request_carries_what_the_node_needs_after_a_cut() -> None:
    from motey.communication.protocol import node_requests as proto

    image = Image(
        id="i1", name="n", owner_id="o1", owner_ip="10.0.0.7", on_disconnect="stop", engine="x"
    )
    back = proto.decode_deploy_request(proto.encode_deploy_request(image))
    assert (back.owner_id, back.owner_ip, back.on_disconnect) == ("o1", "10.0.0.7", "stop")
