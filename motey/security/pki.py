"""The cell's public-key primitives: keys, certificates, signatures (with ``cryptography``).

Every key is ECDSA P-256: what Mosquitto, Python's ``ssl`` and every browser accept, and
small enough that a signature fits in a presence message. What a node needs at run time
(verifying a CA signature) is here too; what only the operator's ``motey cell`` command
does (issuing) is in :mod:`motey.security.cell`.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import re
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: A cell member's name: its certificate's common name, its MQTT identity and, in secure
#: mode, its node id. A DNS label set, so it is also a valid ``subjectAltName``.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$"
_NAME = re.compile(NAME_PATTERN)

#: Names the cell uses for itself; no node may take them.
RESERVED_NAMES = ("motey-admin", "motey-broker", "motey-cell-ca")

#: What a CA signature over a node's CURVE key covers (domain-separated from TLS use).
CURVE_SIGNATURE_CONTEXT = b"motey-curve-v1\n"

CA_DAYS = 3650
LEAF_DAYS = 825


def check_name(name: str) -> str:
    """``name`` if it can be a member's name, else ``ValueError`` saying why."""
    if not _NAME.match(name):
        raise ValueError(
            f"name {name!r} must be 1-63 letters, digits, dots or dashes, starting with a "
            "letter or digit"
        )
    if name in RESERVED_NAMES:
        raise ValueError(f"name {name!r} is reserved for the cell itself")
    return name


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} does not hold an EC private key")
    return key


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_ca(cell_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new self-signed cell CA."""
    key = new_key()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Motey cell"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"motey-cell-ca {cell_name}"[:64]),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _alt_names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def issue_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    hosts: list[str],
    key: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A leaf certificate for TLS server and client use, signed by the cell CA."""
    key = key or new_key()
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Motey cell"),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_alt_names(hosts)), critical=False
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def make_crl(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, serials: list[int]
) -> x509.CertificateRevocationList:
    """The cell's X.509 revocation list (the broker's ``crlfile``)."""
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=CA_DAYS))
    )
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    return builder.sign(ca_key, hashes.SHA256())


def curve_message(name: str, curve_public: str) -> bytes:
    """What the CA signs to say: this CURVE public key belongs to member ``name``."""
    return CURVE_SIGNATURE_CONTEXT + name.encode("ascii") + b"\n" + curve_public.encode("ascii")


def sign(ca_key: ec.EllipticCurvePrivateKey, message: bytes) -> str:
    """A base64 ECDSA-SHA256 signature of ``message``."""
    return base64.b64encode(ca_key.sign(message, ec.ECDSA(hashes.SHA256()))).decode("ascii")


def verify(ca_cert: x509.Certificate, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is the cell CA's over ``message``."""
    public = ca_cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return False
    try:
        public.verify(
            base64.b64decode(signature, validate=True), message, ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_public(path: Path, data: bytes) -> None:
    """Write a file anyone may read (certificates, configs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, 0o644)


_Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"


def z85_encode(data: bytes) -> str:
    """ZeroMQ's Z85 text form of ``data`` (a multiple of 4 bytes), as CURVE keys are written."""
    if len(data) % 4:
        raise ValueError("Z85 encodes multiples of 4 bytes")
    out: list[str] = []
    for i in range(0, len(data), 4):
        value = int.from_bytes(data[i : i + 4], "big")
        chunk = []
        for _ in range(5):
            value, digit = divmod(value, 85)
            chunk.append(_Z85[digit])
        out.extend(reversed(chunk))
    return "".join(out)


def curve_keypair() -> tuple[str, str]:
    """A ZeroMQ CURVE key pair (public, secret) in Z85, from an X25519 key."""
    from cryptography.hazmat.primitives.asymmetric import x25519

    secret = x25519.X25519PrivateKey.generate()
    raw_secret = secret.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    raw_public = secret.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return z85_encode(raw_public), z85_encode(raw_secret)
