"""The cell's revocation list as nodes read it: a CA-signed JSON document.

``motey cell revoke`` publishes it retained on :data:`TOPIC_REVOCATIONS`; every secure
node verifies the CA's signature, keeps the newest (highest ``sequence``) and from then
on refuses the revoked members' presence and CURVE keys, without a restart. The same
document may sit in a node's credentials folder as ``revocations.json`` (read at start).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from motey.errors import ValidationError
from motey.schemas.limits import loads_json
from motey.security import pki

TOPIC_REVOCATIONS = "motey/v1/cell/revocations"
FORMAT = 1
MAX_PAYLOAD = 1024 * 1024


@dataclass(frozen=True)
class Revocations:
    """Who the cell no longer trusts."""

    sequence: int = 0
    names: frozenset[str] = field(default_factory=frozenset)
    curve_keys: frozenset[str] = field(default_factory=frozenset)


def _signed_part(sequence: int, revoked: list[dict[str, Any]]) -> bytes:
    body = {"format": FORMAT, "sequence": sequence, "revoked": revoked}
    return b"motey-revocations-v1\n" + json.dumps(
        body, sort_keys=True, separators=(",", ":")
    ).encode("utf-8")


def encode(
    ca_key: ec.EllipticCurvePrivateKey, sequence: int, revoked: list[dict[str, Any]]
) -> bytes:
    """The signed document; ``revoked`` entries carry ``name``, ``serial``, ``curve_key``."""
    entries = [
        {"name": e["name"], "serial": str(e["serial"]), "curve_key": e["curve_key"]}
        for e in revoked
    ]
    document = {
        "format": FORMAT,
        "sequence": sequence,
        "revoked": entries,
        "signature": pki.sign(ca_key, _signed_part(sequence, entries)),
    }
    return json.dumps(document, indent=1).encode("utf-8")


def decode(ca_cert: x509.Certificate, payload: bytes) -> Revocations:
    """The revocations in a document signed by the cell CA, or :class:`ValidationError`."""
    if len(payload) > MAX_PAYLOAD:
        raise ValidationError(f"revocation list of {len(payload)} bytes is too long")
    try:
        data = loads_json(payload, "revocation list")
        sequence = int(data["sequence"])
        entries = data["revoked"]
        signature = str(data["signature"])
        names = frozenset(str(e["name"]) for e in entries)
        keys = frozenset(str(e["curve_key"]) for e in entries)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ValidationError(f"revocation list is malformed: {exc}") from None
    if not pki.verify(ca_cert, _signed_part(sequence, entries), signature):
        raise ValidationError("revocation list is not signed by this cell's CA")
    return Revocations(sequence=sequence, names=names, curve_keys=keys)
