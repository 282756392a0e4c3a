"""ZeroMQServer in-process: binding, stopping, and answers from a real executor.

The executor is built from real parts (identity, a capability engine on TinyDB, a VAL
manager with no engines), which is all the repliers need to be exercised here; the
Docker path is covered by the tests against real node processes.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from motey.communication.protocol.node_requests import RequestKind
from motey.communication.zeromq_server import FAST_WAIT_MS, NodeRequestHandler, ZeroMQServer
from motey.errors import ConfigError
from motey.orchestrator.executor import ImageExecutor
from tests.helpers import next_loopback


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def executor(executor_parts: tuple[ImageExecutor, Any, Any]) -> ImageExecutor:
    return executor_parts[0]


def ports(ip: str) -> dict[str, int]:
    """One distinct free port per request kind (probes stay open until all are chosen)."""
    keys = tuple(kind.value for kind in RequestKind)
    probes = [socket.socket() for _ in keys]
    try:
        for probe in probes:
            probe.bind((ip, 0))
        return {key: int(p.getsockname()[1]) for key, p in zip(keys, probes, strict=True)}
    finally:
        for probe in probes:
            probe.close()


def ask(ctx: zmq.Context, endpoint: str, payload: bytes) -> bytes:
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send(payload)
        assert sock.poll(5000, zmq.POLLIN), f"no reply from {endpoint}"
        return sock.recv()
    finally:
        sock.close(linger=0)


def test_answers_stop_and_restart_without_leaks(
    ctx: zmq.Context, executor: ImageExecutor, no_thread_leaks: None
) -> None:
    ip = next_loopback()
    server = ZeroMQServer(ctx, NodeRequestHandler(executor), ip, ports(ip), poll_interval=0.05)
    server.start()
    server.start()  # idempotent
    try:
        caps = json.loads(ask(ctx, server.endpoint(RequestKind.CAPABILITIES), b""))
        assert "zigbee" in {c["capability"] for c in caps}
        image = {"id": "img-1", "name": "busybox", "engine": "docker", "capabilities": []}
        error = json.loads(
            ask(ctx, server.endpoint(RequestKind.DEPLOY), json.dumps(image).encode())
        )
        assert error["error"] == "UnprocessableError" and "docker" in error["message"]
        error = json.loads(ask(ctx, server.endpoint(RequestKind.STATUS), b"img-1"))
        assert error["error"] == "UnprocessableError"
    finally:
        server.stop()
    server.stop()  # idempotent
    server.start()  # the ports are free again at once
    server.stop()


def test_a_taken_port_fails_start_and_releases_the_others(
    ctx: zmq.Context, executor: ImageExecutor, no_thread_leaks: None
) -> None:
    ip = next_loopback()
    taken = ports(ip)
    blocker = ctx.socket(zmq.REP)
    blocker.bind(f"tcp://{ip}:{taken['image_status_replier']}")
    try:
        server = ZeroMQServer(ctx, NodeRequestHandler(executor), ip, taken)
        with pytest.raises(ConfigError, match=str(taken["image_status_replier"])):
            server.start()
        server.stop()
    finally:
        blocker.close(linger=0)
    again = ZeroMQServer(ctx, NodeRequestHandler(executor), ip, taken)
    again.start()  # the sockets bound before the failure were released
    again.stop()


def test_stop_right_after_an_answer_is_quick(
    ctx: zmq.Context, executor: ImageExecutor, no_thread_leaks: None
) -> None:
    """A replier that has just answered waits in a blocking receive (FAST_WAIT_MS), not
    for its waker: a stop then still ends it within that wait, drained."""
    ip = next_loopback()
    server = ZeroMQServer(ctx, NodeRequestHandler(executor), ip, ports(ip))
    server.start()
    try:
        for _ in range(3):
            assert json.loads(ask(ctx, server.endpoint(RequestKind.CAPABILITIES), b""))
    finally:
        began = time.monotonic()
        server.stop()
    assert time.monotonic() - began < FAST_WAIT_MS / 1000 + 0.5
    assert server.drained
