"""Facts are facts: what the node detects cannot be changed over REST or IPC, a name has
one value, and only Motey's user and its group can reach the IPC socket."""

from __future__ import annotations

import grp
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import logbook
import pytest

from motey.capabilityengine.capability_engine import CapabilityEngine
from motey.capabilityengine.detectors import CapabilityDetector
from motey.communication.ipc_subscriber import IPCCapabilitySubscriber
from motey.errors import ConfigError, ConflictError, ProtectedCapabilityError
from motey.repositories.base import Database
from motey.repositories.capability_repository import CapabilityRepository
from tests.helpers import MoteyNode, wait_for
from tests.test_ipc_subscriber import RawPublisher, entries

FACTS = [
    {"capability": "arch", "capability_type": "fact", "value": "amd64"},
    {"capability": "memory_mb", "capability_type": "fact", "value": "1024"},
]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[CapabilityEngine]:
    database = Database(tmp_path / "capabilities.json").open()
    eng = CapabilityEngine(CapabilityRepository(database), static_capabilities=["level=3"])
    eng.start()
    eng.replace_source(FACTS, "facts")
    eng.replace_source([{"capability": "docker", "capability_type": "engine"}], "engine")
    eng.replace_source([{"capability": "zigbee", "capability_type": "hardware"}], "device")
    yield eng
    database.close()


@pytest.mark.parametrize("source", ["rest", "ipc"])
@pytest.mark.parametrize("name", ["arch", "memory_mb", "docker", "zigbee"])
def test_detected_capabilities_cannot_be_added_changed_or_removed(
    engine: CapabilityEngine, source: str, name: str
) -> None:
    before = engine.all()
    entry = {"capability": name, "capability_type": "fact", "value": "999999"}
    with pytest.raises(ProtectedCapabilityError, match=name):
        engine.add([entry], source)
    with pytest.raises(ProtectedCapabilityError):
        engine.remove([entry], source)
    # One protected entry refuses the whole batch.
    with pytest.raises(ProtectedCapabilityError):
        engine.add([{"capability": "fine", "capability_type": "t"}, entry], source)
    assert engine.all() == before


def test_one_value_per_name(engine: CapabilityEngine) -> None:
    with pytest.raises(ConflictError, match="one value"):
        engine.add([{"capability": "level", "capability_type": "t", "value": 4}], "rest")
    assert engine.add([{"capability": "level", "capability_type": "t", "value": 3}], "rest")
    assert engine.add([{"capability": "room", "capability_type": "t", "value": "a"}], "ipc")
    with pytest.raises(ConflictError):
        engine.add([{"capability": "room", "capability_type": "t", "value": "b"}], "rest")
    # A source may change its own value while no other source gives one.
    assert engine.add([{"capability": "room", "capability_type": "t", "value": "b"}], "ipc")


def test_a_detected_fact_replaces_a_callers_older_contradicting_value(
    engine: CapabilityEngine,
) -> None:
    engine.replace_source([], "facts")
    engine.add([{"capability": "arch", "capability_type": "x", "value": "arm64"}], "rest")
    engine.replace_source(FACTS, "facts")
    values = {(c["source"], c.get("value")) for c in engine.all() if c["capability"] == "arch"}
    assert values == {("facts", "amd64")}


# -- the IPC socket --------------------------------------------------------------------


@pytest.fixture
def ipc_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="motey-ipc-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def other_group() -> grp.struct_group:
    mine = os.getegid()
    return next(g for g in grp.getgrall() if g.gr_gid != mine)


def test_ipc_socket_is_0660_with_its_group_in_a_folder_only_they_enter(
    ipc_dir: Path, engine: CapabilityEngine, no_thread_leaks: None
) -> None:
    group = other_group()
    path = ipc_dir / "sock" / "capability_engine.ipc"
    subscriber = IPCCapabilitySubscriber(str(path), engine, poll_ms=50, group=group.gr_name)
    subscriber.start()
    try:
        info = path.stat()
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert info.st_gid == group.gr_gid
        folder = path.parent.stat()
        assert stat.S_IMODE(folder.st_mode) == 0o750
        assert folder.st_gid == group.gr_gid
    finally:
        subscriber.stop()


def test_ipc_refuses_facts_with_a_logged_warning(
    ipc_dir: Path, engine: CapabilityEngine, no_thread_leaks: None
) -> None:
    subscriber = IPCCapabilitySubscriber(str(ipc_dir / "c.ipc"), engine, poll_ms=50)
    subscriber.start()
    publisher = RawPublisher(subscriber.endpoint)
    logs = logbook.TestHandler(level="WARNING")
    try:
        publisher.wait_connected(engine)
        with logs.applicationbound():
            ignored = subscriber.ignored
            publisher.send(
                b'add_capability#[{"capability":"arch","capability_type":"fact","value":"arm64"}]'
            )
            publisher.send(b"add_capability#" + b"[" * 50000)
            wait_for(lambda: subscriber.ignored == ignored + 2, timeout=10, what="refusals")
        messages = [r.message for r in logs.records]
        assert any("arch" in m and "detected by this node" in m for m in messages), messages
        assert any("nested deeper" in m for m in messages), messages
        assert not any(r.exc_info for r in logs.records), "no traceback for bad input"
        assert "arch" not in entries(engine)
    finally:
        publisher.close()
        subscriber.stop()


def test_rest_refuses_facts_with_403_and_second_values_with_409(node_factory: Any) -> None:
    node: MoteyNode = node_factory(capabilities=["level=3"])
    before = node.get("/v1/capabilities").json()
    fact = [{"capability": "memory_mb", "capability_type": "fact", "value": "999999"}]
    for method in ("PUT", "DELETE"):
        r = node.request(method, "/v1/capabilities", json=fact)
        assert r.status_code == 403, r.text
        assert r.json()["error"] == "ProtectedCapabilityError"
        assert "memory_mb" in r.json()["message"]
    arch = [{"capability": "arch", "capability_type": "fact", "value": "arm64"}]
    assert node.put_json("/v1/capabilities", arch).status_code == 403
    level = [{"capability": "level", "capability_type": "t", "value": "4"}]
    r = node.put_json("/v1/capabilities", level)
    assert r.status_code == 409, r.text
    assert node.get("/v1/capabilities").json() == before
    # The node's own IPC socket: owner and group only.
    socket_file = Path(node.sections["ZEROMQ"]["capability_engine_ipc_path"])
    assert stat.S_IMODE(socket_file.stat().st_mode) == 0o660
    assert stat.S_IMODE(socket_file.parent.stat().st_mode) & 0o007 == 0


def test_a_device_rules_capability_is_reserved_while_unplugged(
    tmp_path: Path, engine: CapabilityEngine
) -> None:
    detector = CapabilityDetector(engine, f"{tmp_path}/video*=camera", detect_facts=False)
    detector.start()
    try:
        assert "camera" not in {c["capability"] for c in engine.all()}
        with pytest.raises(ProtectedCapabilityError, match="camera"):
            engine.add([{"capability": "camera", "capability_type": "hardware"}], "ipc")
    finally:
        detector.stop()


def test_ipc_socket_folder_of_another_user_is_refused(
    ipc_dir: Path, engine: CapabilityEngine
) -> None:
    folder = ipc_dir / "theirs"
    folder.mkdir()
    os.chown(folder, 4242, -1)
    subscriber = IPCCapabilitySubscriber(str(folder / "c.ipc"), engine, poll_ms=50)
    with pytest.raises(ConfigError, match="another user"):
        subscriber.start()
    subscriber.stop()
