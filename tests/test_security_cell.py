"""The secure cell against an attacker on the network: real nodes, real Mosquitto with the
generated configuration and ACL, real sockets (issue 8)."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import paho.mqtt.client as mqtt
import pytest
import requests
import zmq
from paho.mqtt.enums import CallbackAPIVersion

from motey.communication.mqtt_tls import use_tls
from motey.communication.protocol import discovery as proto
from motey.models.node import Node
from motey.security.tokens import hash_token, read_token_file
from tests.cluster_helpers import RawMQTT, wait_nodes
from tests.helpers import (
    REPO_ROOT,
    Mosquitto,
    MoteyNode,
    client_tls,
    free_port,
    next_loopback,
    session_cell,
    wait_for,
)

REPLIERS = (
    "capabilities_replier",
    "deploy_image_replier",
    "image_status_replier",
    "image_terminate_replier",
)
NO_REPLY_MS = 1500


def motey(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTEY_")}
    return subprocess.run(
        [sys.executable, "-m", "motey", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd or REPO_ROOT,
        env=env,
    )


class Cell:
    def __init__(self, broker: Mosquitto, a: MoteyNode, b: MoteyNode) -> None:
        self.broker, self.a, self.b = broker, a, b


@pytest.fixture(scope="module")
def cell(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Cell]:
    """Two secure nodes (b has a camera) on the cell's TLS broker."""
    workdir = tmp_path_factory.mktemp("secure-cell")
    broker = Mosquitto(workdir / "mosquitto").start()
    nodes = []
    try:
        for name, caps in (("sec-a", []), ("sec-b", ["camera"])):
            node = MoteyNode(
                workdir, name=name, mqtt=(broker.ip, broker.port), capabilities=caps
            ).start()
            nodes.append(node)
        for node in nodes:
            other = next(n for n in nodes if n is not node)
            wait_nodes(node, lambda seen, o=other: o.ip in seen, what=f"{node.name} sees peer")
        yield Cell(broker, *nodes)
    finally:
        for node in nodes:
            node.stop()
        for node in nodes:
            for c in docker_client.containers.list(
                all=True, filters={"label": f"motey.node_id={node.node_id}"}
            ):
                c.remove(force=True)
        broker.stop()


def nodes_view(node: MoteyNode) -> dict[str, tuple[Any, ...]]:
    """What ``node`` knows of the cell, without the fields that change by themselves."""
    return {
        e["ip"]: (e["id"], e["name"], e["ports"]["deploy_image_replier"], e["curve_key"])
        for e in node.get("/v1/nodes").json()
    }


def curve_of(node: MoteyNode) -> dict[str, str]:
    return dict(json.loads((node.dir / "credentials" / "curve.json").read_text()))


def zmq_request(
    ctx: zmq.Context,
    node: MoteyNode,
    port_key: str,
    payload: bytes,
    curve: tuple[str, str] | None = None,
    timeout_ms: int = NO_REPLY_MS,
) -> bytes | None:
    """One raw REQ exchange; ``curve`` = (public, secret) of the client, else plain."""
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        sock.curve_serverkey = curve_of(node)["public"].encode()
        sock.curve_publickey, sock.curve_secretkey = curve[0].encode(), curve[1].encode()
    port = node.get("/v1/node").json()["ports"][port_key]
    sock.connect(f"tcp://{node.ip}:{port}")
    try:
        sock.send(payload)
        return sock.recv() if sock.poll(timeout_ms) else None
    finally:
        sock.close(linger=0)


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


# -- motey cell --------------------------------------------------------------------------
def test_cell_init_and_add_node_issue_what_a_node_needs_and_nothing_more(tmp_path: Path) -> None:
    cell_dir = tmp_path / "factory"
    made = motey("cell", "init", "--dir", str(cell_dir), "--broker", "127.0.0.1:18883")
    assert made.returncode == 0, made.stderr
    token = (cell_dir / "admin.token").read_text().strip()
    assert token in made.stdout  # printed once
    assert stat.S_IMODE((cell_dir / "admin.token").stat().st_mode) == 0o600
    assert stat.S_IMODE((cell_dir / "ca.key").stat().st_mode) == 0o600
    [record] = read_token_file(cell_dir / "tokens.json")
    assert (record.name, record.role, record.sha256) == ("admin", "admin", hash_token(token))
    conf = (cell_dir / "broker" / "mosquitto.conf").read_text()
    assert "require_certificate true" in conf and "use_identity_as_username true" in conf
    assert "listener 18883 127.0.0.1" in conf and "allow_anonymous false" in conf

    out = tmp_path / "node-creds"
    added = motey(
        "cell", "add-node", "--dir", str(cell_dir), "--name", "press-1", "--ip", "127.0.3.7",
        "--out", str(out),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert f"credentials = {out}" in added.stdout and "mode = secure" in added.stdout
    files = {p.name for p in out.iterdir()}
    assert files == {
        "ca.crt",
        "node.crt",
        "node.key",
        "curve.json",
        "tokens.json",
        "revocations.json",
    }
    assert "ca.key" not in files
    for name in files - {"ca.crt"}:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    assert (out / "tokens.json").read_bytes() == (cell_dir / "tokens.json").read_bytes()

    again = motey(
        "cell", "add-node", "--dir", str(cell_dir), "--name", "press-1", "--ip", "127.0.3.7"
    )
    assert again.returncode == 1 and "already has credentials" in again.stderr


def write_config(folder: Path, security: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.ini"
    config.write_text(
        f"[NODE]\nip = 127.0.3.9\nname = lonely\n[DATABASE]\npath = db\n"
        f"[LOGGER]\nlog_path = log\n[SECURITY]\n{security}\n"
    )
    return config


@pytest.mark.parametrize(
    ("security", "expected"),
    [
        ("mode = secure", "[SECURITY] credentials is not set"),
        ("credentials = nowhere", "does not exist"),
        ("credentials = partial", "lacks node.key"),
    ],
)
def test_secure_node_without_credentials_refuses_to_start_with_one_line(
    tmp_path: Path, security: str, expected: str
) -> None:
    session_cell().add_node("lonely", "127.0.3.9", out=tmp_path / "partial", replace=True)
    (tmp_path / "partial" / "node.key").unlink()
    result = motey("run", "--config", str(write_config(tmp_path, security)))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0] and "motey cell add-node" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


# -- MQTT ---------------------------------------------------------------------------------
def connects(broker: Mosquitto, tls: tuple[str, str, str] | None, plain_ca: bool = False) -> bool:
    """Whether a client gets a successful CONNACK from the broker."""
    ok = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{time.monotonic_ns()}")
    client.on_connect = lambda *a: a[3].is_failure or ok.set()
    if tls is not None:
        use_tls(client, *tls)
    elif plain_ca:
        client.tls_set(ca_certs=str(session_cell().dir / "ca.crt"), cert_reqs=ssl.CERT_REQUIRED)
    try:
        client.connect(broker.ip, broker.port, keepalive=5)
        client.loop_start()
        return ok.wait(2)
    except (OSError, ssl.SSLError):
        return False
    finally:
        client.disconnect()
        client.loop_stop()


def test_broker_refuses_clients_without_a_cell_certificate(cell: Cell) -> None:
    assert connects(cell.broker, client_tls())  # control: a cell certificate connects
    assert not connects(cell.broker, None)  # plain MQTT on the TLS port
    assert not connects(cell.broker, None, plain_ca=True)  # TLS without a client certificate


def test_a_valid_certificate_cannot_forge_presence_or_bare_ip_messages(cell: Cell) -> None:
    a, b = cell.a, cell.b
    before_a, before_b = nodes_view(a), nodes_view(b)
    raw = RawMQTT(cell.broker.ip, cell.broker.port, topics=("motey/#",))
    try:
        forged_b = Node(ip="127.0.3.66", id=b.node_id, name="sec-b", version="1.0.0")
        forged_b.capabilities = [{"capability": "camera", "capability_type": "hardware"}]
        for topic, payload in (
            (proto.presence_topic(b.node_id or ""), proto.encode_presence(forged_b)),
            (proto.presence_topic("fake-node"), proto.encode_presence(forged_b)),
            ("motey/v1/register", b"127.0.3.67"),
            ("motey/v1/remove", b.ip.encode()),
            ("motey/v1/nodes_request", b"127.0.3.68"),
            ("motey/v1/cell/revocations", b'{"sequence": 99, "revoked": []}'),
        ):
            raw.publish(topic, payload, retain=topic.startswith("motey/v1/nodes/"))
        # Its own presence is the one topic the ACL lets it write: it comes back after
        # everything above (one connection, in order), and carries no CA-signed CURVE key.
        own = Node(ip="127.0.3.69", id="test-observer", name="observer", version="1.0.0")
        raw.publish(proto.presence_topic("test-observer"), proto.encode_presence(own), retain=True)
        raw.expect(lambda topic, *_: topic == proto.presence_topic("test-observer"))
        # ... nor with b's CA-signed key: the signature names b
        b_curve = curve_of(b)
        own.curve_key, own.curve_signature = b_curve["public"], b_curve["signature"]
        raw.publish(proto.presence_topic("test-observer"), proto.encode_presence(own), retain=True)
        assert not [p for _, p, _ in raw.messages if b"127.0.3.66" in p]  # forged b: dropped
        delivered = {t for t, *_ in raw.messages}
        assert not delivered & {
            "motey/v1/register",
            "motey/v1/remove",
            "motey/v1/nodes_request",
            "motey/v1/nodes/fake-node",
            "motey/v1/cell/revocations",
        }
        wait_for(lambda: "test-observer" in a.log(), timeout=10, what="a saw the observer")
        assert nodes_view(a) == before_a and nodes_view(b) == before_b
        assert "carries no CA-signed CURVE key" in a.log()
        wait_for(
            lambda: "the CURVE key in the presence of test-observer is not signed" in a.log(),
            timeout=10,
            what="a refuses b's key under another name",
        )
        assert nodes_view(a) == before_a
    finally:
        raw.publish(proto.presence_topic("test-observer"), b"", retain=True)
        raw.close()


# -- ZeroMQ ---------------------------------------------------------------------------------
def test_plain_and_foreign_zeromq_clients_get_no_reply(
    cell: Cell, ctx: zmq.Context, docker_client: docker.DockerClient
) -> None:
    b = cell.b
    deploy = json.dumps({"id": "x1", "name": "motey-test/busybox:latest", "engine": "docker",
                         "parameters": {"volumes": ["/:/host:rw"]}}).encode()  # fmt: skip
    foreign = zmq.curve_keypair()
    for port_key in REPLIERS:
        payload = deploy if port_key == "deploy_image_replier" else b"x1"
        assert zmq_request(ctx, b, port_key, payload) is None, port_key
        foreign_key = (foreign[0].decode(), foreign[1].decode())
        assert zmq_request(ctx, b, port_key, payload, curve=foreign_key) is None, port_key
    # a member's key (here a's, as a peer would use it) is answered: the control
    a_curve = curve_of(cell.a)
    reply = zmq_request(
        ctx, b, "capabilities_replier", b"", curve=(a_curve["public"], a_curve["secret"]),
        timeout_ms=5000,
    )  # fmt: skip
    assert reply is not None and b"camera" in reply
    assert not docker_client.containers.list(
        all=True, filters={"label": f"motey.node_id={b.node_id}"}
    )
    assert b.get("/v1/service").json() == []
    log = b.log()
    assert log.count("is not a cell member's") == 1  # four refusals, one line a minute
    assert "its handshake is not CURVE" in log


# -- REST -----------------------------------------------------------------------------------
def test_rest_is_https_only_with_the_cell_certificate(cell: Cell) -> None:
    a = cell.a
    assert a.url.startswith("https://")
    assert a.get("/v1/node").json()["security_mode"] == "secure"  # verified against the CA
    try:
        plain = requests.get(f"http://{a.ip}:{a.port}/v1/node", timeout=5)
    except requests.ConnectionError:
        pass
    else:
        assert plain.status_code == 400 and "HTTPS" in plain.text
    with pytest.raises(requests.exceptions.SSLError):
        a.get("/v1/node", verify=True)  # the system's CAs do not vouch for a cell node


def test_open_mode_is_chosen_explicitly_and_says_so(node_factory: Any) -> None:
    node = node_factory(extra={"SECURITY": {"mode": "open"}})
    assert node.url.startswith("http://")
    assert node.get("/v1/node").json()["security_mode"] == "open"
    assert "SECURITY MODE IS OPEN" in node.log()


# -- revocation -----------------------------------------------------------------------------
def test_a_revoked_node_is_dropped_by_its_peers_without_a_restart(
    cell: Cell, ctx: zmq.Context, tmp_path: Path
) -> None:
    a = cell.a
    c = MoteyNode(
        tmp_path,
        name=f"sec-c-{time.monotonic_ns() % 100000}",
        ip=next_loopback(),
        mqtt=(cell.broker.ip, cell.broker.port),
    ).start()
    try:
        wait_nodes(a, lambda seen: c.ip in seen, what="a sees c")
        c_curve = curve_of(c)
        keys = (c_curve["public"], c_curve["secret"])
        assert zmq_request(ctx, a, "capabilities_replier", b"", curve=keys, timeout_ms=5000)

        revoked = motey(
            "cell", "revoke", "--dir", str(session_cell().dir), "--name", c.node_id or "",
            "--broker", f"{cell.broker.ip}:{cell.broker.port}",
        )  # fmt: skip
        assert revoked.returncode == 0, revoked.stderr

        wait_nodes(a, lambda seen: c.ip not in seen, timeout=10, what="a drops c")
        assert zmq_request(ctx, a, "capabilities_replier", b"", curve=keys) is None
        # c republishes its presence on every lifecycle change; a refuses each one
        refused = f"the CURVE key of {c.node_id} is revoked"
        for phase in ("RECOVER", "OPERATE", "RECOVER", "OPERATE"):
            assert c.put_json("/v1/node", {"lifecycle": phase}).status_code == 200
        wait_for(lambda: a.log().count(refused) >= 3, timeout=10, what="a refuses c again")
        assert c.ip not in nodes_view(a)

        # rotation: the same name issued again (new keys) is a member again
        c.stop()
        session_cell().add_node(c.name, c.ip, out=c.dir / "credentials")  # no replace needed
        c.start()
        wait_nodes(a, lambda seen: c.ip in seen, timeout=20, what="a accepts c's new key")
    finally:
        c.stop()


def test_the_broker_refuses_a_revoked_certificate_once_it_reloads_the_crl(
    tmp_path: Path,
) -> None:
    from motey.security.cell import Cell as CellDir
    from motey.security.cell import broker_config

    port = free_port("127.0.0.1")
    cell_dir, _token = CellDir.init(tmp_path / "cell", broker=f"127.0.0.1:{port}")
    creds = {n: cell_dir.add_node(n, "127.0.3.20", out=tmp_path / n) for n in ("keep", "gone")}
    cell_dir.revoke("gone")
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(broker_config(cell_dir.dir, "127.0.0.1", port) + "user root\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    process = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        broker = Mosquitto.__new__(Mosquitto)
        broker.ip, broker.port = "127.0.0.1", port
        ca = str(cell_dir.dir / "ca.crt")

        def tls(name: str) -> tuple[str, str, str]:
            return ca, str(creds[name] / "node.crt"), str(creds[name] / "node.key")

        wait_for(lambda: connects(broker, tls("keep")), timeout=10, what="broker up")
        assert not connects(broker, tls("gone"))
    finally:
        process.terminate()
        process.wait(timeout=10)
