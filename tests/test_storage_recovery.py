"""A damaged database never destroys running work (issue 10, point 5).

Measured before: ``: > db/services.json`` on a stopped node made it start silently with
no services and remove all of its running containers as orphans.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from motey.repositories.base import Database
from motey.repositories.service_repository import ServiceRepository
from tests.helpers import MoteyNode, unique_name, wait_for
from tests.test_repositories import make_service

BLUEPRINT = """\
service_name: {name}
images:
  - name: motey-test/busybox:latest
    parameters: {{command: "sleep 300"}}
  - name: motey-test/busybox:latest
    parameters: {{command: "sleep 301"}}
  - name: motey-test/busybox:latest
    parameters: {{command: "sleep 302"}}
"""


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _delete(path: Path) -> None:
    path.unlink()


def _delete_both(path: Path) -> None:
    path.unlink()
    Path(f"{path}.prev").unlink()


def running_ids(docker_client: Any, node: MoteyNode) -> set[str]:
    return {
        c.id
        for c in docker_client.containers.list(filters={"label": f"motey.node_id={node.node_id}"})
    }


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (_empty, "was empty; restored its previous generation"),
        (_truncate, "was corrupt"),
        (_delete, "was missing; restored its previous generation"),
        (_delete_both, "that no service records: database"),
    ],
    ids=["empty", "truncated", "deleted", "deleted-with-previous"],
)
def test_damaged_database_keeps_containers(
    node: MoteyNode, docker_client: Any, damage: Callable[[Path], None], said: str
) -> None:
    sid = node.post_yaml(BLUEPRINT.format(name=unique_name())).json()["id"]
    node.wait_service_state(sid, "RUNNING")
    before = running_ids(docker_client, node)
    assert len(before) == 3
    assert node.stop() == 0

    damage(node.dir / "db" / "services.json")
    node.start()

    assert said in node.log()
    assert running_ids(docker_client, node) == before, "no container was removed or added"
    if damage is not _delete_both:  # restored: the service is known and still runs
        service = node.wait_service_state(sid, "RUNNING")
        assert [i["state"] for i in service["images"]] == ["RUNNING"] * 3
    # The damage is remembered: a second start still keeps what no service records.
    marker = node.dir / "db" / "services.json.restored"
    assert marker.exists()
    assert node.stop() == 0
    node.start()
    assert running_ids(docker_client, node) == before
    if damage is _delete_both:
        # Once the operator deletes the marker, unrecorded containers are orphans again.
        assert node.stop() == 0
        marker.unlink()
        node.start()
        wait_for(lambda: not running_ids(docker_client, node), what="orphans to be removed")


def test_unrecoverable_database_refuses_with_one_line(node: MoteyNode) -> None:
    assert node.stop() == 0
    db = node.dir / "db"
    (db / "services.json").write_text('{"services": {"1": ')
    (db / "services.json.prev").write_bytes(b"")
    log_size = node.log_file.stat().st_size
    node.start(wait=False)
    assert node.process is not None
    assert node.process.wait(timeout=30) == 1
    node.process = None
    output = node.log_file.read_bytes()[log_size:].decode()
    assert "Traceback" not in output
    # The test node logs at DEBUG; what a user at level INFO sees is one line.
    lines = [ln for ln in output.splitlines() if ln.strip() and " DEBUG " not in ln]
    assert len(lines) == 1, output
    assert f"node failed to start: database {db / 'services.json'} is corrupt (" in lines[0]
    assert lines[0].endswith(
        "and its previous generation services.json.prev is empty; nothing was changed — "
        "move services.json away to start with an empty database (running containers are kept)"
    ), lines[0]
    assert (db / "services.json").read_text() == '{"services": {"1": ', "left as it was"


def test_damage_while_running_is_repaired_by_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "services.json"
    repo = ServiceRepository(Database(path).open())
    first = make_service("first")
    repo.add(first)
    path.write_bytes(b"")  # damage from outside while the node runs
    second = make_service("second")
    repo.add(second)
    assert {s.id for s in ServiceRepository(Database(path).open()).all()} == {first.id, second.id}


def test_previous_generation_is_the_file_before_the_last_write(tmp_path: Path) -> None:
    path = tmp_path / "services.json"
    repo = ServiceRepository(Database(path).open())
    first, second = make_service("first"), make_service("second")
    repo.add(first)
    repo.add(second)
    path.write_bytes(b"")
    reopened = Database(path).open()
    assert not reopened.health.clean
    assert [s.id for s in ServiceRepository(reopened).all()] == [first.id]
    assert not ServiceRepository(reopened).health().clean
    clean = Database(path).open()
    assert clean.health.clean and ServiceRepository(clean).health().clean


def test_restore_is_remembered_until_the_marker_is_deleted(tmp_path: Path) -> None:
    path, owner = tmp_path / "services.json", tmp_path / "node_id"
    owner.write_text("n1")
    ServiceRepository(Database(path, owner).open()).add(make_service())
    path.unlink()
    Path(f"{path}.prev").unlink()
    assert not Database(path, owner).open().health.clean  # deleted: started empty
    again = Database(path, owner).open()
    assert not again.health.clean and "services.json.restored" in again.health.message
    (tmp_path / "services.json.restored").unlink()
    assert Database(path, owner).open().health.clean


def test_a_new_node_starts_clean(tmp_path: Path) -> None:
    fresh = Database(tmp_path / "services.json", tmp_path / "node_id").open()
    assert fresh.health.clean
    assert not (tmp_path / "services.json.restored").exists()
