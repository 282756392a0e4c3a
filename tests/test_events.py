"""``GET /v1/events``: Server-Sent Events of state changes, bounded, ending on shutdown."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from motey.errors import Busy
from motey.events import QUEUE_SIZE, EventBus
from tests.helpers import TEST_IMAGE, MoteyNode, unique_name, wait_for


def sse(response: requests.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(event, data)`` pairs of an open event stream."""
    kind, data = "message", ""
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if data:
                yield kind, json.loads(data)
            kind, data = "message", ""
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def until(events: Iterator[tuple[str, dict[str, Any]]], match: Any) -> list[tuple[str, dict]]:
    seen = []
    for kind, data in events:
        seen.append((kind, data))
        if match(kind, data):
            return seen
    raise AssertionError(f"stream ended before the expected event; saw {seen}")


def test_state_changes_arrive_as_events(node: MoteyNode) -> None:
    with node.get("/v1/events", stream=True, timeout=30) as stream:
        assert stream.status_code == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        events = sse(stream)
        created = node.post_yaml(
            f"""
            service_name: {unique_name("ev")}
            images:
              - name: {TEST_IMAGE}
                parameters: {{command: [sleep, "600"]}}
            """
        ).json()
        seen = until(
            events,
            lambda k, d: k == "service" and d["id"] == created["id"] and d["state"] == "RUNNING",
        )
        states = [d["state"] for k, d in seen if k == "service" and d["id"] == created["id"]]
        assert states == ["INITIAL", "INSTANTIATING", "RUNNING"]
        image = [d for k, d in seen if k == "image"]
        assert image[-1]["state"] == "RUNNING" and image[-1]["node"] == node.ip
        assert image[-1]["service_id"] == created["id"]

        node.put_json("/v1/capabilities", [{"capability": "zigbee", "capability_type": "hw"}])
        _, cap = until(events, lambda k, d: k == "capability")[-1]
        assert "zigbee" in [c["capability"] for c in cap["capabilities"]]

        node.put_json("/v1/node", {"lifecycle": "RECOVER", "reason": "maintenance"})
        _, changed = until(events, lambda k, d: k == "node")[-1]
        assert changed["lifecycle"] == "RECOVER" and changed["ip"] == node.ip
        node.put_json("/v1/node", {"lifecycle": "OPERATE"})

        node.delete(f"/v1/service/{created['id']}")
        until(events, lambda k, d: k == "service" and d["state"] == "TERMINATED")


def test_streams_are_bounded_and_end_when_the_node_stops(node_factory: Any) -> None:
    node = node_factory(extra={"WEBSERVER": {"max_streams": 2}})
    first = node.get("/v1/events", stream=True, timeout=30)
    second = node.get("/v1/events", stream=True, timeout=30)
    try:
        assert first.status_code == second.status_code == 200
        refused = node.get("/v1/events", timeout=10)
        assert refused.status_code == 503
        assert "max_streams" in refused.json()["message"]
        assert node.get("/v1/service").status_code == 200  # requests still served
        second.close()  # the server notices at its next heartbeat write

        def reopened() -> bool:
            again = node.get("/v1/events", stream=True, timeout=10)
            ok = again.status_code == 200
            again.close()
            return ok

        wait_for(reopened, timeout=15, what="a slot freed by a closed stream")
        started = time.monotonic()
        assert node.stop(timeout=15) == 0  # an open stream does not hold the node up
        assert time.monotonic() - started < 8
        remaining = list(first.iter_lines(decode_unicode=True))  # returns: the stream ended
        assert all(
            not line or line.startswith((":", "id:", "event:", "data:", "retry:"))
            for line in remaining
        )
    finally:
        first.close()
        second.close()


def test_only_real_changes_become_events_and_a_slow_subscriber_is_dropped() -> None:
    bus = EventBus(max_subscribers=2)
    sub = bus.subscribe()
    service = {
        "id": "s1",
        "service_name": "x",
        "state": "RUNNING",
        "state_message": "ok",
        "images": [{"id": "i1", "state": "RUNNING", "node": "10.0.0.1", "state_message": ""}],
    }
    bus.service_changed(service)
    bus.service_changed(dict(service, updated_at=5))  # a write that changes nothing shown
    kinds = []
    while (event := sub.get(0.01)) is not None:
        kinds.append(event.kind)
    assert kinds == ["service", "image"]
    bus.subscribe()
    with pytest.raises(Busy, match="already open"):
        bus.subscribe()
    for n in range(QUEUE_SIZE + 1):
        bus.capabilities_changed("n", [{"capability": str(n)}])
    assert sub.closed.is_set()  # fell behind: dropped, not blocking the publisher
    bus.close()
