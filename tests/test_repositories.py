"""TinyDB repositories on disk: locking, crash-safe writes, clear errors."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest

from motey.errors import StorageError
from motey.models.capability import Capability
from motey.models.image import Image
from motey.models.node import Node, NodeReachability
from motey.models.service import Service, ServiceState
from motey.repositories.base import Database
from motey.repositories.capability_repository import CapabilityRepository
from motey.repositories.node_repository import NodeRepository
from motey.repositories.service_repository import ServiceRepository


def make_service(name: str = "svc") -> Service:
    sid = str(uuid.uuid4())
    return Service(
        id=sid,
        service_name=name,
        images=[Image(id=str(uuid.uuid4()), name="busybox", service_id=sid)],
    )


def test_service_roundtrip_on_disk(tmp_path: Path) -> None:
    db = Database(tmp_path / "services.json").open()
    repo = ServiceRepository(db)
    service = make_service()
    repo.add(service)
    service.state = ServiceState.RUNNING
    repo.update(service)
    db.close()

    reopened = ServiceRepository(Database(tmp_path / "services.json").open())
    loaded = reopened.get(service.id)
    assert loaded is not None and loaded.state is ServiceState.RUNNING
    assert loaded.images[0].name == "busybox"
    assert reopened.find_by_name("svc")[0].id == service.id
    assert reopened.remove(service.id) and reopened.get(service.id) is None


def test_parallel_writers_keep_the_file_valid(tmp_path: Path) -> None:
    db = Database(tmp_path / "services.json").open()
    repo = ServiceRepository(db)
    errors: list[Exception] = []

    def writer(n: int) -> None:
        try:
            for i in range(25):
                repo.add(make_service(f"w{n}-{i}"))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(repo.all()) == 200
    data = json.loads((tmp_path / "services.json").read_text())
    assert len(data["services"]) == 200
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".services.json.")]


def test_corrupt_file_is_reported_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "services.json"
    path.write_text('{"services": {"1": ')
    with pytest.raises(StorageError, match="corrupt"):
        Database(path).open()
    assert path.read_text() == '{"services": {"1": '


def test_failed_write_leaves_previous_content(tmp_path: Path, monkeypatch) -> None:
    db = Database(tmp_path / "services.json").open()
    repo = ServiceRepository(db)
    first = make_service("first")
    repo.add(first)
    before = (tmp_path / "services.json").read_text()

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    # A full disk cannot be made real in a test; fsync failing stands in for it.
    monkeypatch.setattr("motey.repositories.base.os.fsync", full_disk)
    with pytest.raises(StorageError, match="No space left"):
        repo.add(make_service("second"))
    assert (tmp_path / "services.json").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".services.json.")]


def test_nodes_and_capabilities(tmp_path: Path) -> None:
    nodes = NodeRepository()
    nodes.upsert(Node(ip="127.0.0.2", id="b"))
    nodes.upsert(Node(ip="127.0.0.1", id="a", state=NodeReachability.UNREACHABLE))
    assert [n.ip for n in nodes.all()] == ["127.0.0.1", "127.0.0.2"]
    assert nodes.get_by_id("a").state is NodeReachability.UNREACHABLE
    assert nodes.remove("127.0.0.2") and nodes.get("127.0.0.2") is None

    caps = CapabilityRepository(Database(tmp_path / "caps.json").open())
    assert caps.add(Capability("zigbee", "hw", "rest"))
    assert not caps.add(Capability("zigbee", "hw", "rest"))
    assert caps.add(Capability("zigbee", "hw", "device"))
    assert caps.remove("zigbee", "rest")
    assert caps.has("zigbee"), "another source still asserts it"
    assert [c.source for c in caps.all()] == ["device"]
