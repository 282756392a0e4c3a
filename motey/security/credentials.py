"""A node's credentials folder (from ``motey cell add-node``), loaded and checked at start.

A secure node that cannot use its credentials does not start: :func:`require_credentials`
raises a :class:`ConfigError` whose one line names what is missing and the command that
creates it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import logbook
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from motey.errors import ConfigError
from motey.security import pki
from motey.security.cell import CA_CERT, CURVE_FILE, NODE_CERT, NODE_KEY, REVOCATIONS_FILE

log = logbook.Logger(__name__)


@dataclass(frozen=True)
class NodeCredentials:
    """What a secure node proves itself with and whom it trusts."""

    folder: Path
    name: str
    ca_cert_path: str
    cert_path: str
    key_path: str
    curve_public: str
    curve_secret: str
    curve_signature: str
    ca: x509.Certificate
    revocations: bytes | None

    @property
    def tls_files(self) -> tuple[str, str, str]:
        """(CA certificate, node certificate, node key) paths."""
        return self.ca_cert_path, self.cert_path, self.key_path


def _hint(config: dict[str, Any], folder: str) -> str:
    node = config["NODE"]
    out = f" --out {folder}" if folder else ""
    return (
        f"create them with `motey cell add-node --dir CELL_DIR --name {node['name']} "
        f"--ip {node['ip']}{out}` and set [SECURITY] credentials (or set [SECURITY] mode = open)"
    )


def load_credentials(config: dict[str, Any]) -> NodeCredentials:
    """The credentials of a secure node, or :class:`ConfigError` saying what is wrong."""
    where = config["GENERAL"].get("config_path", "config")
    folder_text = config["SECURITY"]["credentials"]
    if not folder_text:
        raise ConfigError(
            f"{where}: [SECURITY] mode is secure but [SECURITY] credentials is not set; "
            + _hint(config, "")
        )
    folder = Path(folder_text)
    if not folder.is_dir():
        raise ConfigError(
            f"node credentials folder {folder} does not exist; {_hint(config, str(folder))}"
        )
    missing = [n for n in (CA_CERT, NODE_CERT, NODE_KEY, CURVE_FILE) if not (folder / n).is_file()]
    if missing:
        raise ConfigError(
            f"node credentials folder {folder} lacks {', '.join(missing)}; "
            + _hint(config, str(folder))
        )
    try:
        ca = pki.load_cert(folder / CA_CERT)
        cert = pki.load_cert(folder / NODE_CERT)
        key = pki.load_key(folder / NODE_KEY)
        curve = json.loads((folder / CURVE_FILE).read_text(encoding="utf-8"))
        name, public, secret, signature = (
            str(curve[k]) for k in ("name", "public", "secret", "signature")
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"node credentials in {folder} cannot be read ({exc}); {_hint(config, str(folder))}"
        ) from None
    _check(config, folder, ca, cert, key, name, public, signature)
    revocations_path = folder / REVOCATIONS_FILE
    return NodeCredentials(
        folder=folder,
        name=name,
        ca_cert_path=str(folder / CA_CERT),
        cert_path=str(folder / NODE_CERT),
        key_path=str(folder / NODE_KEY),
        curve_public=public,
        curve_secret=secret,
        curve_signature=signature,
        ca=ca,
        revocations=revocations_path.read_bytes() if revocations_path.is_file() else None,
    )


def _check(
    config: dict[str, Any],
    folder: Path,
    ca: x509.Certificate,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    name: str,
    public: str,
    signature: str,
) -> None:
    hint = _hint(config, str(folder))
    ca_key = ca.public_key()
    try:
        if not isinstance(ca_key, ec.EllipticCurvePublicKey):
            raise InvalidSignature
        ca_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ConfigError(
            f"{folder / NODE_CERT} is not signed by {folder / CA_CERT}; {hint}"
        ) from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(
        serialization.Encoding.DER, spki
    ) != cert.public_key().public_bytes(serialization.Encoding.DER, spki):
        raise ConfigError(f"{folder / NODE_KEY} does not belong to {folder / NODE_CERT}; {hint}")
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not common or common[0].value != name:
        raise ConfigError(f"{folder / NODE_CERT} is not the certificate of node {name!r}; {hint}")
    if not pki.verify(ca, pki.curve_message(name, public), signature):
        raise ConfigError(f"{folder / CURVE_FILE} is not signed by the cell CA; {hint}")
    ip = config["NODE"]["ip"]
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ips = [str(a) for a in alt.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        ips = []
    if ip not in ips:
        raise ConfigError(
            f"{folder / NODE_CERT} is for address {', '.join(ips) or '(none)'} but [NODE] ip "
            f"is {ip}; {hint}"
        )


def credentials_for(config: dict[str, Any]) -> NodeCredentials | None:
    """The node's credentials in secure mode; ``None`` (with a loud warning) in open mode."""
    if config["SECURITY"]["mode"] == "open":
        log.warning(
            "SECURITY MODE IS OPEN: no authentication and no encryption on REST, MQTT and "
            "ZeroMQ; anyone who reaches this node controls it and the cell "
            "(set [SECURITY] mode = secure, see docs/security.md)"
        )
        return None
    return load_credentials(config)


def require_credentials(config: dict[str, Any]) -> None:
    """Fail with one line, before anything starts, if a secure node has no usable credentials."""
    if config["SECURITY"]["mode"] != "open":
        load_credentials(config)
