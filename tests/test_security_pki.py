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
