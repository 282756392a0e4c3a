"""The cell's keys, signatures, revocation list and membership registry, in-process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import zmq

from motey.errors import ConfigError, ValidationError
from motey.security import pki, revocation
from motey.security.cell import Cell
from motey.security.credentials import load_credentials
from motey.security.membership import CellMembers


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Cell:
    made, _token = Cell.init(tmp_path_factory.mktemp("pki") / "cell", broker="127.0.0.1:18883")
    return made


def config_for(folder: Path, name: str, ip: str) -> dict[str, Any]:
    return {
        "GENERAL": {"config_path": "test.ini"},
        "NODE": {"name": name, "ip": ip},
        "SECURITY": {"mode": "secure", "credentials": str(folder)},
    }


def test_curve_keys_are_what_libzmq_derives() -> None:
    public, secret = pki.curve_keypair()
    assert zmq.curve_public(secret.encode()).decode() == public
    from zmq.utils import z85

    assert pki.z85_encode(bytes(range(32))) == z85.encode(bytes(range(32))).decode()


def test_credentials_load_and_each_mismatch_is_named(cell: Cell, tmp_path: Path) -> None:
    folder = cell.add_node("press-1", "127.0.5.1", out=tmp_path / "press-1")
    loaded = load_credentials(config_for(folder, "press-1", "127.0.5.1"))
    assert loaded.name == "press-1" and loaded.revocations is not None

    with pytest.raises(
        ConfigError, match="is for address 127.0.5.1 but \\[NODE\\] ip is 127.0.5.2"
    ):
        load_credentials(config_for(folder, "press-1", "127.0.5.2"))

    other = cell.add_node("press-2", "127.0.5.2", out=tmp_path / "press-2")
    mixed = tmp_path / "mixed"
    shutil.copytree(folder, mixed)
    shutil.copy(other / "node.key", mixed / "node.key")
    with pytest.raises(ConfigError, match="does not belong to"):
        load_credentials(config_for(mixed, "press-1", "127.0.5.1"))

    foreign, _ = Cell.init(tmp_path / "foreign", broker="127.0.0.1:18884")
    shutil.copy(foreign.dir / "ca.crt", mixed / "ca.crt")
    shutil.copy(folder / "node.key", mixed / "node.key")
    with pytest.raises(ConfigError, match="is not signed by"):
        load_credentials(config_for(mixed, "press-1", "127.0.5.1"))


def test_revocation_list_must_carry_the_cell_signature(cell: Cell, tmp_path: Path) -> None:
    ca_key, ca_cert = cell.ca()
    entry = {"name": "x", "serial": 7, "curve_key": "k" * 40}
    document = revocation.encode(ca_key, 3, [entry])
    assert revocation.decode(ca_cert, document).curve_keys == {"k" * 40}

    tampered = json.loads(document)
    tampered["revoked"] = []
    with pytest.raises(ValidationError, match="not signed"):
        revocation.decode(ca_cert, json.dumps(tampered).encode())
    foreign_key, _cert = pki.make_ca("foreign")
    with pytest.raises(ValidationError, match="not signed"):
        revocation.decode(ca_cert, revocation.encode(foreign_key, 3, [entry]))
    with pytest.raises(ValidationError, match="malformed"):
        revocation.decode(ca_cert, b"[]")


def test_membership_admits_signed_keys_and_forgets_revoked_ones(cell: Cell, tmp_path: Path) -> None:
    me = load_credentials(
        config_for(cell.add_node("self", "127.0.5.9", out=tmp_path / "self"), "self", "127.0.5.9")
    )
    peer_folder = cell.add_node("peer", "127.0.5.8", out=tmp_path / "peer")
    peer = json.loads((peer_folder / "curve.json").read_text())
    members = CellMembers(me)
    revoked: list[frozenset[str]] = []
    members.subscribe(revoked.append)

    assert members.member_for_key(me.curve_public) == "self"
    assert "not signed" in (members.admit("impostor", peer["public"], peer["signature"]) or "")
    assert "no CA-signed" in (members.admit("peer", peer["public"], None) or "")
    assert members.member_for_key(peer["public"]) is None
    assert members.admit("peer", peer["public"], peer["signature"]) is None
    assert members.member_for_key(peer["public"]) == "peer"

    ca_key, _ca = cell.ca()
    entry = {"name": "peer", "serial": 1, "curve_key": peer["public"]}
    assert members.apply_revocations(revocation.encode(ca_key, 50, [entry])) == {peer["public"]}
    assert revoked == [frozenset({peer["public"]})]
    assert members.member_for_key(peer["public"]) is None
    assert "revoked" in (members.admit("peer", peer["public"], peer["signature"]) or "")
    # an older list (replayed) changes nothing
    assert members.apply_revocations(revocation.encode(ca_key, 49, [])) == frozenset()
    assert "revoked" in (members.admit("peer", peer["public"], peer["signature"]) or "")

    assert CellMembers(None).admit("anyone", None, None) is None  # open mode: inert


class EchoHandler:
    """Answers every request kind with the request itself (the repliers' plumbing only)."""

    def handler(self, kind: Any) -> Any:
        return lambda raw, peer="", address="": b"echo:" + raw + b" from " + peer.encode()


def test_curve_repliers_answer_members_only_and_stop_cleanly(
    cell: Cell, tmp_path: Path, no_thread_leaks: None
) -> None:
    from motey.communication.zeromq_server import ZeroMQServer
    from tests.helpers import free_port

    ip = "127.0.5.20"
    me = load_credentials(config_for(cell.add_node("srv", ip, out=tmp_path / "srv"), "srv", ip))
    peer = json.loads((cell.add_node("cli", ip, out=tmp_path / "cli") / "curve.json").read_text())
    members = CellMembers(me)
    assert members.admit("cli", peer["public"], peer["signature"]) is None
    keys = ("capabilities_replier", "deploy_image_replier")
    keys += ("image_status_replier", "image_terminate_replier")
    ports: dict[str, int] = {}
    for key in keys:
        while (port := free_port(ip)) in ports.values():
            pass
        ports[key] = port
    context = zmq.Context()
    server = ZeroMQServer(context, EchoHandler(), ip, ports, credentials=me, members=members)  # type: ignore[arg-type]
    server.start()
    try:

        def ask(curve: tuple[str, str] | None) -> bytes | None:
            sock = context.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            if curve is not None:
                sock.curve_serverkey = me.curve_public.encode()
                sock.curve_publickey, sock.curve_secretkey = (k.encode() for k in curve)
            sock.connect(f"tcp://{ip}:{ports['capabilities_replier']}")
            try:
                sock.send(b"hi")
                return sock.recv() if sock.poll(1500) else None
            finally:
                sock.close(linger=0)

        # answered, and the request carries the member's name as its authenticated identity
        assert ask((peer["public"], peer["secret"])) == b"echo:hi from cli"
        foreign = zmq.curve_keypair()
        assert ask((foreign[0].decode(), foreign[1].decode())) is None
        assert ask(None) is None
    finally:
        server.stop()
        server.stop()  # idempotent
        context.destroy(linger=0)
