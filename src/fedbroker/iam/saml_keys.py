"""The broker's own SAML keys for one SAML provider: the keys IdPs encrypt assertions to
(IAM's ``PrivateKeyList``, at most two, so that a rotation loses no sign-in) and the key the
broker signs its metadata and ``AuthnRequest``s with.

They live in the provider entity's attributes, each private key sealed under the master key
with the provider's ARN, the key's use and its id as associated data (a sealed key copied to
another provider or use does not open), beside a self-signed certificate for the SP metadata:

    "private_keys":   [{"key_id", "created", "sealed", "certificate", "development"}, ...]
    "sp_signing_key": {"key_id", "created", "sealed", "certificate", "development"}

Keys are made here (RSA 3072), or uploaded through IAM's ``AddPrivateKey``. Certificates made
under a development master key say so in their subject (``O=fedbroker DEVELOPMENT KEY - not
for production``). Key ids are IAM's shape (``[A-Z0-9]{22,64}``): the base32 SHA-256 of the
public key.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from fedbroker.credentials.sealing import MasterKey
from fedbroker.directory.model import Entity
from fedbroker.errors import FedbrokerError, InvalidInputError

MAX_PRIVATE_KEYS = 2
KEY_BITS = 3072
CERT_VALIDITY = timedelta(days=3650)
DEVELOPMENT_MARK = "fedbroker DEVELOPMENT KEY - not for production"
ENCRYPTION = "encryption"
SIGNING = "signing"


@dataclass(frozen=True, slots=True)
class SpKey:
    key_id: str
    created: datetime
    certificate: str
    development: bool


def _key_id(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b32encode(hashlib.sha256(der).digest()).decode().rstrip("=")[:32]


def _context(provider_arn: str, use: str, key_id: str) -> bytes:
    return f"fedbroker/saml-sp-key/{provider_arn}/{use}/{key_id}".encode()


def _certificate(key: rsa.RSAPrivateKey, subject: str, development: bool, now: datetime) -> str:
    names = [x509.NameAttribute(NameOID.COMMON_NAME, subject[:64])]
    if development:
        names.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEVELOPMENT_MARK))
    name = x509.Name(names)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CERT_VALIDITY)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _entry(
    master_key: MasterKey, provider: Entity, use: str, key: rsa.RSAPrivateKey, now: datetime
) -> dict[str, Any]:
    key_id = _key_id(key)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    sealed = master_key.seal(pem, _context(provider.arn, use, key_id))
    subject = f"fedbroker SAML SP {use} {provider.name}"
    return {
        "key_id": key_id,
        "created": now.isoformat(),
        "sealed": base64.b64encode(sealed).decode(),
        "certificate": _certificate(key, subject, master_key.development, now),
        "development": master_key.development,
    }


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def parse_private_key(pem: str) -> rsa.RSAPrivateKey:
    """An uploaded private key (IAM's ``AddPrivateKey``): unencrypted PEM, RSA 2048 or more."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise InvalidInputError("the private key is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise InvalidInputError("the private key must be an RSA key of at least 2048 bits")
    return key


def add_private_key(
    master_key: MasterKey, provider: Entity, now: datetime, pem: str | None = None
) -> tuple[Entity, str]:
    """``provider`` with a new decryption key first (generated, or ``pem``); the oldest of
    more than :data:`MAX_PRIVATE_KEYS` is not dropped: that is refused (IAM's limit)."""
    key = parse_private_key(pem) if pem is not None else _new_key()
    entries = list(_list(provider.attrs.get("private_keys")))
    key_id = _key_id(key)
    if any(e.get("key_id") == key_id for e in entries):
        raise InvalidInputError(f"the SAML provider already has the private key `{key_id}`")
    if len(entries) >= MAX_PRIVATE_KEYS:
        raise InvalidInputError(
            f"a SAML provider holds at most {MAX_PRIVATE_KEYS} private keys; remove one first"
        )
    entries.insert(0, _entry(master_key, provider, ENCRYPTION, key, now))
    return replace(provider, attrs={**provider.attrs, "private_keys": entries}), key_id


def remove_private_key(provider: Entity, key_id: str) -> Entity:
    entries = list(_list(provider.attrs.get("private_keys")))
    kept = [e for e in entries if e.get("key_id") != key_id]
    if len(kept) == len(entries):
        raise InvalidInputError(f"the SAML provider has no private key `{key_id[:64]}`")
    return replace(provider, attrs={**provider.attrs, "private_keys": kept})


def rotate_signing_key(master_key: MasterKey, provider: Entity, now: datetime) -> Entity:
    entry = _entry(master_key, provider, SIGNING, _new_key(), now)
    return replace(provider, attrs={**provider.attrs, "sp_signing_key": entry})


def ensure_sp_keys(master_key: MasterKey, provider: Entity, now: datetime) -> Entity | None:
    """``provider`` with a signing key and a decryption key made where it has none (first
    use); ``None`` when it has both already."""
    changed = provider
    if not isinstance(provider.attrs.get("sp_signing_key"), dict):
        changed = rotate_signing_key(master_key, changed, now)
    if not _list(changed.attrs.get("private_keys")):
        changed, _ = add_private_key(master_key, changed, now)
    return None if changed is provider else changed


def _list(value: object) -> list[dict[str, Any]]:
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def _describe(entry: dict[str, Any]) -> SpKey:
    return SpKey(
        str(entry["key_id"]),
        datetime.fromisoformat(str(entry["created"])),
        str(entry["certificate"]),
        bool(entry.get("development")),
    )


def private_keys(provider: Entity) -> list[SpKey]:
    """The decryption keys, newest first (no key material)."""
    return [_describe(e) for e in _list(provider.attrs.get("private_keys"))]


def signing_key(provider: Entity) -> SpKey | None:
    entry = provider.attrs.get("sp_signing_key")
    return _describe(entry) if isinstance(entry, dict) else None


def _open(master_key: MasterKey, provider: Entity, use: str, entry: dict[str, Any]) -> str:
    try:
        sealed = base64.b64decode(str(entry["sealed"]))
        return master_key.open(sealed, _context(provider.arn, use, str(entry["key_id"]))).decode()
    except (FedbrokerError, ValueError, KeyError) as error:
        raise SpKeyError(f"a SAML key of `{provider.arn}` cannot be opened: {error}") from None


class SpKeyError(FedbrokerError):
    code = "InternalFailure"
    status = 500


def open_private_keys(master_key: MasterKey, provider: Entity) -> tuple[tuple[str, str], ...]:
    """The decryption keys as (PEM private key, PEM certificate), newest first, for one
    verification."""
    entries = _list(provider.attrs.get("private_keys"))
    return tuple(
        (_open(master_key, provider, ENCRYPTION, e), str(e["certificate"])) for e in entries
    )


def open_signing_key(master_key: MasterKey, provider: Entity) -> tuple[str, str]:
    """(PEM private key, PEM certificate) of the SP signing key; the provider must have one."""
    entry = provider.attrs.get("sp_signing_key")
    if not isinstance(entry, dict):
        raise SpKeyError(f"the SAML provider `{provider.arn}` has no SP signing key")
    return _open(master_key, provider, SIGNING, entry), str(entry["certificate"])
