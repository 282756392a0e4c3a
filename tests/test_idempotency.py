"""Idempotent ``POST /v1/service`` (issue 10, point 6).

Measured before: a POST whose 201 was lost was stored anyway, and the client's retry
created a second service.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from motey.errors import UnprocessableError, ValidationError
from motey.models.image import Image
from motey.models.service import Service
from motey.orchestrator.idempotency import KEY_TTL, IdempotentSubmissions
from motey.repositories.base import Database
from motey.repositories.idempotency_repository import IdempotencyRepository
from motey.repositories.service_repository import ServiceRepository
from tests.helpers import MoteyNode, unique_name


class FakeSubmitter:
    """Stores a service per call, as the orchestrator does (slowly, to widen races)."""

    def __init__(self, services: ServiceRepository, delay: float = 0.0) -> None:
        self.services = services
        self.delay = delay
        self.calls = 0

    def submit_blueprint(self, text: str, idempotency_key: str | None = None) -> Service:
        self.calls += 1
        time.sleep(self.delay)
        sid = str(uuid.uuid4())
        service = Service(
            id=sid,
            service_name=text,
            images=[Image(id=str(uuid.uuid4()), name="busybox", service_id=sid)],
            created_at=time.time(),
            idempotency_key=idempotency_key,
        )
        self.services.add(service)
        return service


def render(service: Service) -> dict[str, Any]:
    return service.to_dict() | {"links": {"self": f"/v1/service/{service.id}"}}


def make(tmp_path: Path, delay: float = 0.0, clock: Any = time.time) -> tuple[Any, ...]:
    db = Database(tmp_path / "services.json").open()
    services = ServiceRepository(db)
    fake = FakeSubmitter(services, delay)
    submissions = IdempotentSubmissions(fake, services, IdempotencyRepository(db), clock=clock)
    return submissions, fake, services


def test_same_key_returns_the_first_answer(tmp_path: Path) -> None:
    submissions, fake, services = make(tmp_path)
    first = submissions.submit("a", "key-1", render)
    again = submissions.submit("a", "key-1", render)
    assert (first.status, first.replayed) == (201, False)
    assert (again.status, again.body, again.replayed) == (201, first.body, True)
    assert fake.calls == 1 and len(services.all()) == 1
    other = submissions.submit("a", "key-2", render)
    assert other.body["id"] != first.body["id"] and fake.calls == 2


def test_same_key_other_blueprint_and_bad_keys_are_refused(tmp_path: Path) -> None:
    submissions, fake, _ = make(tmp_path)
    submissions.submit("a", "k", render)
    with pytest.raises(UnprocessableError, match="different blueprint"):
        submissions.submit("b", "k", render)
    for bad in ("", "has space", "x" * 256, "ümlaut"):
        with pytest.raises(ValidationError) as info:
            submissions.submit("a", bad, render)
        assert info.value.field == "Idempotency-Key"
    assert fake.calls == 1


def test_a_key_is_forgotten_after_24_hours(tmp_path: Path) -> None:
    now = [time.time()]
    submissions, fake, _ = make(tmp_path, clock=lambda: now[0])
    first = submissions.submit("a", "k", render)
    now[0] += KEY_TTL - 1
    assert submissions.submit("a", "k", render).replayed
    now[0] += 2
    later = submissions.submit("a", "k", render)
    assert not later.replayed and later.body["id"] != first.body["id"]


def test_concurrent_retries_create_one_service(tmp_path: Path) -> None:
    submissions, fake, services = make(tmp_path, delay=0.2)
    answers: list[Any] = []
    threads = [
        threading.Thread(target=lambda: answers.append(submissions.submit("a", "k", render)))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake.calls == 1 and len(services.all()) == 1
    assert len({a.body["id"] for a in answers}) == 1
    assert sum(not a.replayed for a in answers) == 1


def test_service_stored_but_answer_lost_is_not_created_again(tmp_path: Path) -> None:
    """A stop between storing the service and storing its answer."""
    submissions, fake, services = make(tmp_path)
    stored = fake.submit_blueprint("a", idempotency_key="k")
    answer = submissions.submit("a", "k", render)
    assert answer.replayed and answer.body["id"] == stored.id
    assert fake.calls == 1 and len(services.all()) == 1


BLUEPRINT = """\
service_name: {name}
images:
  - name: motey-test/busybox:latest
    parameters: {{command: "sleep 300"}}
"""


def test_retry_with_the_same_key_creates_one_service_also_after_restart(
    node: MoteyNode,
) -> None:
    text = BLUEPRINT.format(name=unique_name())
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = node.post_yaml(text, headers=key)
    assert first.status_code == 201, first.text
    again = node.post_yaml(text, headers=key)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    sid = first.json()["id"]
    assert [s["id"] for s in node.get("/v1/service").json()] == [sid]
    node.wait_service_state(sid, "RUNNING")

    assert node.stop() == 0
    node.start()
    after = node.post_yaml(text, headers=key)
    assert (after.status_code, after.json()) == (201, first.json())
    assert [s["id"] for s in node.get("/v1/service").json()] == [sid]

    other = node.post_yaml(BLUEPRINT.format(name=unique_name()), headers=key)
    assert other.status_code == 422 and other.json()["field"] == "Idempotency-Key"
    bad = node.post_yaml(text, headers={"Idempotency-Key": "x" * 300})
    assert bad.status_code == 400 and bad.json()["field"] == "Idempotency-Key"
    without = node.post_yaml(text)
    assert without.status_code == 201 and without.json()["id"] != sid
    node.delete(f"/v1/service/{sid}")
    node.delete(f"/v1/service/{without.json()['id']}")
    node.wait_service_state(sid, "TERMINATED")
