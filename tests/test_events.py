"""``GET /v1/events``: Server-Sent Events of state changes, bounded, ending on shutdown."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from motey.communication.api.streams import StreamGate, StreamService
from motey.errors import Busy
from motey.events import QUEUE_SIZE, Event, EventBus, Subscription
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
    assert kinds == ["image", "service"]  # images first, then the service they make
    bus.subscribe()
    with pytest.raises(Busy, match="already open"):
        bus.subscribe()
    for n in range(QUEUE_SIZE + 1):
        bus.capabilities_changed("n", [{"capability": str(n)}])
    assert sub.closed.is_set()  # fell behind: dropped, not blocking the publisher
    bus.close()


def test_an_idle_event_stream_sleeps_until_an_event_or_a_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stream polled its stop flag 4 times a second: an open web client woke an idle
    node that often, and a stop waited for the next poll."""
    waits: list[float] = []
    real_get = Subscription.get

    def counted(sub: Subscription, timeout: float) -> Event | None:
        waits.append(timeout)
        return real_get(sub, timeout)

    monkeypatch.setattr(Subscription, "get", counted)
    bus, gate = EventBus(), StreamGate()
    stream = StreamService(gate, bus, logs=None).events()  # type: ignore[arg-type]
    assert next(stream).endswith(": connected\n\n")
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(1.0)
    assert len(waits) == 1 and waits[0] > 4  # one wait, until the heartbeat is due
    bus.capabilities_changed("n", [{"capability": "zigbee"}])
    assert "event: capability" in (lines.get(timeout=2) or "")
    stopped = time.monotonic()
    gate.close()  # the API server's stop: the waiting stream ends without a poll
    assert lines.get(timeout=2) is None
    assert time.monotonic() - stopped < 0.2, "ended by the wake, not by a timeout"
    reader.join(timeout=2)
    assert gate.open_streams == 0  # its slot is free again
    bus.close()


def test_closing_the_bus_ends_a_waiting_stream_too() -> None:
    bus, gate = EventBus(), StreamGate()
    stream = StreamService(gate, bus, logs=None).events()  # type: ignore[arg-type]
    next(stream)
    ended = threading.Event()
    threading.Thread(target=lambda: (list(stream), ended.set()), daemon=True).start()
    time.sleep(0.1)
    bus.close()
    assert ended.wait(1.0), "a closed bus left the stream waiting for its heartbeat"


def _quiet_image_logs(node: MoteyNode) -> str:
    """Deploy a container that prints one line and then nothing; its logs path."""
    created = node.post_yaml(
        f"""
        service_name: {unique_name("quiet")}
        images:
          - name: {TEST_IMAGE}
            parameters: {{command: ["sh", "-c", "echo only-line; sleep 600"]}}
        """
    ).json()
    service = node.wait_service_state(created["id"], "RUNNING")
    path = f"/v1/service/{service['id']}/images/{service['images'][0]['id']}/logs"
    wait_for(lambda: "only-line" in node.get(path).text, what="the line logged")
    return path + "?follow=1"


def test_followed_logs_end_at_the_follow_limit(node_factory: Any) -> None:
    node = node_factory(extra={"WEBSERVER": {"follow_limit": 3}})
    path = _quiet_image_logs(node)
    started = time.monotonic()
    plain = node.get(path, timeout=30)
    assert plain.text == "only-line\n[motey: log stream ended: follow limit reached]\n"
    assert 2.5 < time.monotonic() - started < 10


def test_a_log_reader_that_left_frees_its_slot(node_factory: Any) -> None:
    """With Server-Sent Events, a reader gone from a quiet container is noticed at the
    next comment line (every 5 s), long before the follow limit."""
    node = node_factory(extra={"WEBSERVER": {"max_streams": 1, "follow_limit": 300}})
    path = _quiet_image_logs(node)
    reader = node.get(path, headers={"Accept": "text/event-stream"}, stream=True, timeout=30)
    assert reader.headers["Content-Type"].startswith("text/event-stream")
    lines = reader.iter_lines(decode_unicode=True)
    assert [next(lines) for _ in range(4)] == ["retry: 2000", ": following", "", "data: only-line"]
    assert node.get("/v1/events", timeout=10).status_code == 503  # the one slot is taken
    reader.close()
    closed = time.monotonic()

    def slot_free() -> bool:
        response = node.get("/v1/events", stream=True, timeout=10)
        response.close()
        return response.status_code == 200

    wait_for(slot_free, timeout=15, what="the slot of the reader that left")
    assert time.monotonic() - closed < 12
