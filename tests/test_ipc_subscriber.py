"""The IPC hardware-event subscriber with real ZeroMQ sockets, files and processes.

Publishers are real: a raw pyzmq PUB socket (as any third-party program would use) and
``scripts/addcapability.py`` run as a subprocess. The engine behind the subscriber is the
real CapabilityEngine on a TinyDB file.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from motey.capabilityengine.capability_engine import CapabilityEngine
from motey.communication.ipc_protocol import MAX_MESSAGE_BYTES, MAX_TRANSPORT_BYTES
from motey.communication.ipc_subscriber import IPCCapabilitySubscriber
from motey.errors import ConfigError
from motey.repositories.base import Database
from motey.repositories.capability_repository import CapabilityRepository
from tests.helpers import REPO_ROOT, wait_for

SCRIPT = REPO_ROOT / "scripts" / "addcapability.py"


@pytest.fixture
def ipc_dir() -> Iterator[Path]:
    """A short folder for socket files (a Unix socket path has at most 107 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="motey-ipc-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[CapabilityEngine]:
    database = Database(tmp_path / "capabilities.json").open()
    yield CapabilityEngine(CapabilityRepository(database))
    database.close()


@pytest.fixture
def subscriber(
    ipc_dir: Path, engine: CapabilityEngine, no_thread_leaks: None
) -> Iterator[IPCCapabilitySubscriber]:
    sub = IPCCapabilitySubscriber(str(ipc_dir / "capability_engine.ipc"), engine, poll_ms=50)
    sub.start()
    yield sub
    sub.stop()


def entries(engine: CapabilityEngine, source: str = "ipc") -> dict[str, Any]:
    return {c["capability"]: c.get("value", True) for c in engine.all() if c["source"] == source}


class RawPublisher:
    """A plain PUB socket, connected the way the original publisher connects."""

    def __init__(self, endpoint: str) -> None:
        self.context: zmq.Context[Any] = zmq.Context()
        self.socket = self.context.socket(zmq.PUB)
        self.socket.setsockopt(zmq.LINGER, 2000)
        self.socket.connect(endpoint)

    def send(self, data: bytes | list[bytes]) -> None:
        if isinstance(data, list):
            self.socket.send_multipart(data)
        else:
            self.socket.send(data)

    def wait_connected(self, engine: CapabilityEngine, name: str = "probe") -> None:
        """Repeat a valid message until it arrives: from then on nothing is dropped."""
        message = f'add_capability#[{{"capability": "{name}", "capability_type": "t"}}]'

        def arrived() -> bool:
            self.send(message.encode())
            return name in entries(engine)

        wait_for(arrived, timeout=10, interval=0.05, what=f"{name} to arrive")

    def close(self) -> None:
        self.socket.close()
        self.context.term()


@pytest.fixture
def publisher(subscriber: IPCCapabilitySubscriber) -> Iterator[RawPublisher]:
    pub = RawPublisher(subscriber.endpoint)
    yield pub
    pub.close()


def run_script(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",  # the script must not depend on the working directory
    )


def test_malformed_messages_are_ignored_and_the_loop_survives(
    subscriber: IPCCapabilitySubscriber, publisher: RawPublisher, engine: CapabilityEngine
) -> None:
    publisher.wait_connected(engine)
    baseline = subscriber.ignored
    bad: list[bytes | list[bytes]] = [
        b"add_capability",  # no '#'
        b"add_capability#{not json",
        b"capabilityevent#{'capability': 'zigbee', 'capability_type': 'hardware'}",
        b'add_capability#[{"capability": "zigbee"}]',  # fails the schema
        b'add_capability#[{"capability": "two  spaces", "capability_type": "x"}]',
        b"add_capability#\xff\xfe\xfd",
        [b"add_capability#", b"[]"],  # two frames
        b"capabilityeventX#[]",  # subscribed prefix, unknown topic
        b"add_capability#" + b" " * (MAX_MESSAGE_BYTES + 1) + b"[]",  # huge
    ]
    for message in bad:
        publisher.send(message)
    publisher.send(b'add_capability#[{"capability": "zigbee", "capability_type": "hardware"}]')
    wait_for(lambda: "zigbee" in entries(engine), timeout=10, what="zigbee after bad messages")
    assert subscriber.ignored - baseline == len(bad)
    assert set(entries(engine)) == {"probe", "zigbee"}


def test_a_message_too_large_for_the_transport_drops_only_that_publisher(
    subscriber: IPCCapabilitySubscriber, publisher: RawPublisher, engine: CapabilityEngine
) -> None:
    publisher.wait_connected(engine)
    publisher.send(b"add_capability#" + b"x" * (MAX_TRANSPORT_BYTES + 10))
    other = RawPublisher(subscriber.endpoint)
    try:
        other.wait_connected(engine, name="after_huge")
    finally:
        other.close()
    assert entries(engine) == {"probe": True, "after_huge": True}


def test_thesis_topic_applies_each_entry_action_in_order(
    publisher: RawPublisher, engine: CapabilityEngine
) -> None:
    publisher.wait_connected(engine)
    body = [
        {"capability": "zigbee", "capability_type": "hardware"},
        {"capability": "camera", "capability_type": "hardware", "value": 2},
        {"capability": "probe", "capability_type": "t", "action": "remove"},
    ]
    publisher.send(f"capabilityevent#{json.dumps(body)}".encode())
    wait_for(lambda: "probe" not in entries(engine), timeout=10, what="probe removed")
    assert entries(engine) == {"zigbee": True, "camera": "2"}
    single = {"capability": "zigbee", "capability_type": "hardware", "action": "remove"}
    publisher.send(f"capabilityevent#{json.dumps(single)}".encode())
    wait_for(lambda: entries(engine) == {"camera": "2"}, timeout=10, what="zigbee removed")


def test_a_name_with_a_space_is_added_and_removed(
    publisher: RawPublisher, engine: CapabilityEngine
) -> None:
    """Formerly dropped with a warning: the original accepted such names over IPC."""
    publisher.wait_connected(engine)
    entry = b'[{"capability": "test capability", "capability_type": "capabilityevent"}]'
    publisher.send(b"add_capability#" + entry)
    wait_for(lambda: "test capability" in entries(engine), timeout=10, what="added")
    publisher.send(b"remove_capability#" + entry)
    wait_for(lambda: "test capability" not in entries(engine), timeout=10, what="removed")


def test_ipc_removal_never_erases_another_source(
    publisher: RawPublisher, engine: CapabilityEngine
) -> None:
    engine.replace_source([{"capability": "zigbee", "capability_type": "hardware"}], "rest")
    publisher.wait_connected(engine)
    zigbee = b'[{"capability": "zigbee", "capability_type": "hardware"}]'
    publisher.send(b"add_capability#" + zigbee)
    wait_for(lambda: "zigbee" in entries(engine), timeout=10, what="ipc zigbee")
    publisher.send(b"remove_capability#" + zigbee)
    publisher.send(b"remove_capability#" + zigbee)  # twice: still only its own entry
    wait_for(lambda: "zigbee" not in entries(engine), timeout=10, what="ipc zigbee removed")
    assert entries(engine, "rest") == {"zigbee": True}
    assert engine.unmet(["zigbee"]) == []


def test_script_adds_and_removes_with_the_original_options(
    subscriber: IPCCapabilitySubscriber, engine: CapabilityEngine
) -> None:
    path = subscriber.path
    added = run_script("--capability=zigbee", "--type=hardware", f"--ipc-path={path}")
    assert added.returncode == 0, added.stderr
    assert "add_capability#" in added.stdout
    # Delivered before the script exited: no waiting needed beyond the engine's write.
    wait_for(lambda: "zigbee" in entries(engine), timeout=5, what="zigbee from the script")
    assert [c for c in engine.all() if c["capability"] == "zigbee"] == [
        {"capability": "zigbee", "capability_type": "hardware", "source": "ipc"}
    ]

    valued = run_script("--capability=camera", "--value=2", "--ipc-path", f"ipc://{path}")
    assert valued.returncode == 0, valued.stderr
    wait_for(lambda: entries(engine).get("camera") == "2", timeout=5, what="camera=2")
    default_type = [c for c in engine.all() if c["capability"] == "camera"][0]
    assert default_type["capability_type"] == "capabilityevent"  # the original's default

    removed = run_script("--capability=zigbee", "--action=remove", f"--ipc-path={path}")
    assert removed.returncode == 0, removed.stderr
    assert "remove_capability#" in removed.stdout
    wait_for(lambda: "zigbee" not in entries(engine), timeout=5, what="zigbee removed")

    thesis = run_script(
        "--capability=camera", "--action=remove", "--topic=capabilityevent", f"--ipc-path={path}"
    )
    assert thesis.returncode == 0, thesis.stderr
    assert '"action": "remove"' in thesis.stdout
    wait_for(lambda: entries(engine) == {}, timeout=5, what="camera removed")

    spaced = run_script("--capability=test capability", f"--ipc-path={path}")
    assert spaced.returncode == 0, spaced.stderr
    wait_for(lambda: "test capability" in entries(engine), timeout=5, what="spaced name")


def test_script_exit_codes_without_a_node_and_on_bad_usage(ipc_dir: Path) -> None:
    started = time.monotonic()
    nobody = run_script("--capability=zigbee", f"--ipc-path={ipc_dir / 'none.ipc'}", "--timeout=1")
    assert nobody.returncode == 1
    assert "nothing sent" in nobody.stderr
    assert time.monotonic() - started < 10
    for args in (
        [],  # --capability is required
        ["--capability=zig  bee"],
        ["--capability=zigbee", "--action=maybe"],
        ["--capability=zigbee", "--timeout=0"],
        ["--capability=zigbee", "--topic=add_capability", "--action=remove"],
    ):
        bad = run_script(*args)
        assert bad.returncode == 2, (args, bad.stderr)
        assert "usage:" in bad.stderr
    helped = run_script("--help")
    assert helped.returncode == 0
    for option in ("--capability", "--type", "--action", "--ipc-path", "exit codes"):
        assert option in helped.stdout
    assert run_script("--version").returncode == 0


def test_many_publishers_at_once(
    subscriber: IPCCapabilitySubscriber, publisher: RawPublisher, engine: CapabilityEngine
) -> None:
    publisher.wait_connected(engine)
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), f"--capability=dev{i}", f"--ipc-path={subscriber.path}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(5)
    ]
    for proc in procs:
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    wait_for(lambda: len(entries(engine)) == 6, timeout=5, what="five script capabilities")


def test_stale_socket_file_is_replaced_and_removed_on_stop(
    ipc_dir: Path, engine: CapabilityEngine, no_thread_leaks: None
) -> None:
    path = ipc_dir / "stale.ipc"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(path))
    leftover.close()  # a crashed node leaves its socket file behind
    assert path.is_socket()
    sub = IPCCapabilitySubscriber(str(path), engine, poll_ms=50)
    sub.start()
    try:
        pub = RawPublisher(sub.endpoint)
        try:
            pub.wait_connected(engine)
        finally:
            pub.close()
    finally:
        sub.stop()
    assert not path.exists()
    sub.stop()  # idempotent
    sub.start()  # and it can start again
    sub.stop()


def test_a_path_in_use_is_refused_and_left_working(
    subscriber: IPCCapabilitySubscriber, engine: CapabilityEngine
) -> None:
    second = IPCCapabilitySubscriber(subscriber.path, engine)
    with pytest.raises(ConfigError, match="in use by another process"):
        second.start()
    second.stop()
    assert Path(subscriber.path).is_socket()
    pub = RawPublisher(subscriber.endpoint)
    try:
        pub.wait_connected(engine)
    finally:
        pub.close()


def test_paths_that_cannot_be_used_are_refused(ipc_dir: Path, engine: CapabilityEngine) -> None:
    regular = ipc_dir / "notes.txt"
    regular.write_text("keep me")
    with pytest.raises(ConfigError, match="not a socket"):
        IPCCapabilitySubscriber(str(regular), engine).start()
    assert regular.read_text() == "keep me"
    with pytest.raises(ConfigError, match="longer than"):
        IPCCapabilitySubscriber(str(ipc_dir / ("x" * 120)), engine).start()
    nested = ipc_dir / "run" / "motey" / "cap.ipc"  # missing folders are created
    sub = IPCCapabilitySubscriber(f"ipc://{nested}", engine)
    sub.start()
    try:
        assert nested.is_socket()
    finally:
        sub.stop()
    assert not nested.exists()
    assert os.listdir(ipc_dir / "run" / "motey") == []


def test_a_shared_context_is_used_and_left_open(ipc_dir: Path, engine: CapabilityEngine) -> None:
    context: zmq.Context[Any] = zmq.Context()
    try:
        sub = IPCCapabilitySubscriber(str(ipc_dir / "shared.ipc"), engine, context=context)
        sub.start()
        pub = RawPublisher(sub.endpoint)
        try:
            pub.wait_connected(engine)
        finally:
            pub.close()
        sub.stop()
        assert not context.closed
        context.socket(zmq.PUB).close()  # still usable by the node's other sockets
    finally:
        context.term()
