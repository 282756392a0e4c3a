"""One ordered start/stop group: rollback of a half-finished start, a bounded stop.

Issue 10, point 3: a failure half-way through start left the REST server bound; stops
were unbounded; the ZeroMQ context and the databases could be closed while a replier or
a REST worker was still inside a handler; Core set DECOMMISSION before the orchestrator
stopped, so a running deployment failed.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zmq
from flask import Flask

from motey.cli import STOP_TIMEOUT
from motey.communication.api_server import APIServer
from motey.communication.protocol.node_requests import RequestKind
from motey.communication.zeromq_server import ZeroMQServer
from motey.config import load_config
from motey.core import Core
from motey.di.app_module import build_container, shutdown_resources
from motey.errors import StorageError
from motey.lifecycle import DEFAULT_STOP_WAIT, LifecycleGroup, stop_wait
from motey.models.node import NodeLifecycle
from motey.node.identity import NodeIdentity
from motey.repositories.base import Database
from motey.repositories.service_repository import ServiceRepository
from tests.helpers import free_port, issue_node_credentials, next_loopback

#: What the entry point needs after the components stopped: resources, interpreter exit.
EXIT_MARGIN = 5.0


class Recorder:
    """A component that records its start and stop (and can fail or hang)."""

    def __init__(
        self, name: str, log: list[str], fail: bool = False, hang: float = 0.0, wait: float = 1.0
    ) -> None:
        self.name, self.log, self.fail, self.hang = name, log, fail, hang
        self.STOP_WAIT = wait

    def start(self) -> None:
        if self.fail:
            raise RuntimeError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")

    def stop(self) -> None:
        if self.hang:
            time.sleep(self.hang)
        self.log.append(f"stop {self.name}")


def _config(tmp_path: Path) -> dict[str, Any]:
    """A secure node's config (the default mode, so every secure component is counted)."""
    ip = next_loopback()
    credentials = issue_node_credentials("budget", ip, tmp_path / "credentials")
    config_file = tmp_path / "config.ini"
    config_file.write_text(
        f"[NODE]\nip = {ip}\nname = budget\n[DATABASE]\npath = {tmp_path / 'db'}\n"
        f"[LOGGER]\nlog_path = {tmp_path / 'log'}\n"
        f"[ZEROMQ]\ncapability_engine_ipc_path = {tmp_path / 'cap.ipc'}\n"
        f"[SECURITY]\nmode = secure\ncredentials = {credentials}\n"
    )
    return load_config(config_file, environ={})


def test_stop_waits_sum_below_the_stop_timeout(tmp_path: Path) -> None:
    """Home Assistant's test_runner idea: the fixed waits fit the supervisor's limit."""
    container = build_container(_config(tmp_path))
    container.config.LOGGER.console.from_value(False)
    try:
        core = container.core()
    finally:
        container.shutdown_resources()  # building opened the ZeroMQ context and databases
    members = core._components.members + core._workers.members
    waits: dict[str, float] = {}
    for member in members:
        inner = member.members if isinstance(member, LifecycleGroup) else [member]
        waits.update({type(m).__name__: stop_wait(m) for m in inner})
    assert "APIServer" in waits and "InterNodeOrchestrator" in waits, waits
    assert all(0 < w <= DEFAULT_STOP_WAIT for w in waits.values()), waits
    # Every component names its own wait; none relies on the default.
    assert all(hasattr(type(m), "STOP_WAIT") for m in members), waits
    assert core.STOP_WAIT + EXIT_MARGIN <= STOP_TIMEOUT, (core.STOP_WAIT, waits)


def test_failed_start_stops_what_started_in_reverse() -> None:
    log: list[str] = []
    group = LifecycleGroup("g", [Recorder("a", log), Recorder("b", log), Recorder("c", log, True)])
    with pytest.raises(RuntimeError, match="c cannot start"):
        group.start()
    assert log == ["start a", "start b", "stop b", "stop a"]
    group.stop()  # idempotent: nothing left to stop
    assert log == ["start a", "start b", "stop b", "stop a"]


def test_failed_start_leaves_no_rest_server_bound(tmp_path: Path) -> None:
    ip = next_loopback()
    port = free_port(ip)
    server = APIServer(Flask("t"), ip, port)
    identity = NodeIdentity(node_id="n1", name="n", ip=ip, ports={})
    core = Core(identity, [server], workers=[Recorder("orchestrator", [], fail=True)])
    with pytest.raises(RuntimeError):
        core.start()
    with socket.socket() as s:  # the port is free again
        s.bind((ip, port))
    assert identity.lifecycle is NodeLifecycle.DECOMMISSION


def test_stop_is_bounded_by_the_waits_and_reports_an_overrun() -> None:
    log: list[str] = []
    group = LifecycleGroup("g", [Recorder("a", log), Recorder("slow", log, hang=5, wait=0.3)])
    group.start()
    began = time.monotonic()
    group.stop()
    assert time.monotonic() - began < 1.0
    assert log == ["start a", "start slow", "stop a"], "the slow one is left behind"
    assert not group.drained


def test_core_pauses_workers_before_it_leaves_operate() -> None:
    identity = NodeIdentity(node_id="n1", name="n", ip="127.0.0.1", ports={})
    seen: list[NodeLifecycle] = []

    class Worker(Recorder):
        def stop(self) -> None:
            seen.append(identity.lifecycle)

    core = Core(identity, [Recorder("transport", [])], workers=[Worker("orchestrator", [])])
    core.start()
    assert identity.lifecycle is NodeLifecycle.OPERATE
    core.stop()
    assert seen == [NodeLifecycle.OPERATE], "jobs stopped while the node still operated"
    assert identity.lifecycle is NodeLifecycle.DECOMMISSION


def _slow_app(seconds: float, entered: threading.Event) -> Flask:
    app = Flask("slow")

    @app.get("/slow")
    def slow() -> str:
        entered.set()
        time.sleep(seconds)
        return "done"

    return app


@pytest.mark.parametrize(("handler_seconds", "drained"), [(1.5, True), (6.0, False)])
def test_rest_stop_waits_for_handlers_within_its_wait(
    handler_seconds: float, drained: bool
) -> None:
    ip = next_loopback()
    port = free_port(ip)
    entered = threading.Event()
    server = APIServer(_slow_app(handler_seconds, entered), ip, port)
    server.start()
    answers: list[Any] = []

    def call() -> None:
        conn = http.client.HTTPConnection(ip, port, timeout=10)
        try:
            conn.request("GET", "/slow")
            answers.append(conn.getresponse().status)
        except OSError as exc:
            answers.append(exc)
        finally:
            conn.close()

    client = threading.Thread(target=call)
    client.start()
    assert entered.wait(5)
    began = time.monotonic()
    server.stop()
    assert time.monotonic() - began <= APIServer.STOP_WAIT + 1.0  # + scheduling on a busy box
    assert server.drained is drained
    client.join(10)
    if drained:
        assert answers == [200], "the request in flight was answered before the stop ended"


def test_closed_database_is_never_reopened(tmp_path: Path) -> None:
    db = Database(tmp_path / "services.json").open()
    repo = ServiceRepository(db)
    db.close()
    with pytest.raises(StorageError, match="closed"):
        repo.all()
    assert not (tmp_path / "services.json.new").exists()


class SlowHandler:
    """Answers every ZeroMQ request after ``seconds``; tells when one is inside."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.entered = threading.Event()

    def handler(self, _kind: RequestKind) -> Any:
        def answer(_raw: bytes, *_peer: str) -> bytes:  # (request, identity, address)
            self.entered.set()
            time.sleep(self.seconds)
            return b"{}"

        return answer


@pytest.mark.parametrize(("handler_seconds", "drained"), [(1.0, True), (4.0, False)])
def test_zeromq_stop_waits_for_repliers_and_keeps_the_context_when_one_is_busy(
    tmp_path: Path, handler_seconds: float, drained: bool
) -> None:
    ip = next_loopback()
    container = build_container(_config(tmp_path))
    container.config.LOGGER.console.from_value(False)
    context = container.zmq_context()  # the node's shared context (a resource)
    services_db = container.services_db()
    handler = SlowHandler(handler_seconds)
    ports = {k.value: free_port(ip) for k in RequestKind}
    server = ZeroMQServer(context, handler, ip, ports)  # type: ignore[arg-type]
    server.start()
    client = context.socket(zmq.REQ)
    client.setsockopt(zmq.LINGER, 0)
    client.connect(server.endpoint(RequestKind.STATUS))
    client.send(b"{}")
    assert handler.entered.wait(5)
    began = time.monotonic()
    server.stop()
    assert time.monotonic() - began <= ZeroMQServer.STOP_WAIT + 1.0
    assert server.drained is drained
    if drained:
        assert client.poll(1000), "the request in flight was answered before the stop ended"
    client.close(linger=0)

    # The entry point closes the databases in any case, the shared context only when no
    # replier may still use it.
    shutdown_resources(container, drained=server.drained)
    with pytest.raises(StorageError, match="closed"):
        ServiceRepository(services_db).all()
    assert context.closed is drained
    if not drained:  # the replier leaves its handler later and closes its socket
        time.sleep(max(0.0, handler_seconds - (time.monotonic() - began)) + 0.5)
        context.destroy(linger=0)
