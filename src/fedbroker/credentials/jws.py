"""Signing keys of the key ring: generation, loading, JWK export and compact JWT signing.

This module is joserfc's one home in the broker. joserfc over PyJWT because:

- it is typed (``py.typed``) and mypy-strict clean, where PyJWT's key handling is ``Any``;
- every call pins its algorithms (``algorithms=[...]``), the habit STYLE.md asks for, and its
  registries cap header, payload and signature sizes;
- one library covers JWS, JWK import/export for RSA, EC and OKP keys and the JWKS we publish,
  and is the natural choice for the federation layer's ID-token verification too (89 µs per
  RS256 verify here against PyJWT's 125 µs, PERFORMANCE.md).

Keys are generated and loaded with ``cryptography``. Private material is PKCS#8 DER (what the
key ring seals at rest); it is loaded once per key and per process, never per request. RSA
keys are loaded without cryptography's consistency check (about 0.1 s per key here, against
5 µs without): the material was generated here and is authenticated by AES-GCM under the
master key before it is parsed, so the check cannot find anything and would only slow every
replica's start-up and reload.

RFC 8037's ``EdDSA`` name is what JWT libraries and relying parties know; RFC 9864 deprecates
it in favour of curve-specific names because ``EdDSA`` does not say which curve. Our EdDSA keys
are always Ed25519, so the ambiguity does not arise, and the library's deprecation warning is
switched off for our own registry only.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jwt
from joserfc.jwk import ECKey, KeyParameters, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from fedbroker.directory.model import KeyAlgorithm

# 2048-bit RSA: what relying parties expect of RS256, and far cheaper to sign with than 4096.
RSA_KEY_BITS = 2048

JoseKey = ECKey | RSAKey | OKPKey


_EDDSA = copy.copy(JWSRegistry.algorithms["EdDSA"])
_EDDSA.security_warning = None


def _registry(algorithm: KeyAlgorithm) -> JWSRegistry:
    """A registry that allows exactly ``algorithm`` (EdDSA without RFC 9864's warning)."""
    registry = JWSRegistry(algorithms=[algorithm.value])
    registry.algorithms = {**JWSRegistry.algorithms, "EdDSA": _EDDSA}
    return registry


def generate_private(algorithm: KeyAlgorithm) -> bytes:
    """Fresh private material: 32 raw bytes for AES-256-GCM, PKCS#8 DER for a signing key."""
    if algorithm is KeyAlgorithm.A256GCM:
        return AESGCM.generate_key(bit_length=256)
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm is KeyAlgorithm.ES256:
        key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm is KeyAlgorithm.ES384:
        key = ec.generate_private_key(ec.SECP384R1())
    elif algorithm is KeyAlgorithm.RS256:
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(private_der: bytes) -> str:
    """The SubjectPublicKeyInfo PEM of a signing key's private material."""
    key = _load(private_der)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A loaded signing key: signs compact JWTs with ``kid`` in the header."""

    kid: str
    algorithm: KeyAlgorithm
    _key: JoseKey = field(repr=False)
    _registry: JWSRegistry = field(repr=False)
    public_jwk: Mapping[str, str]

    def sign(self, claims: Mapping[str, Any]) -> str:
        """A compact JWS (RFC 7515 §7.1) of ``claims`` as a JWT (RFC 7519)."""
        header = {"alg": self.algorithm.value, "kid": self.kid, "typ": "JWT"}
        return jwt.encode(header, dict(claims), self._key, registry=self._registry)


def load_signing_key(kid: str, algorithm: KeyAlgorithm, private_der: bytes) -> SigningKey:
    """Parse private material once; the result signs and knows its public JWK (RFC 7517)."""
    private = _load(private_der)
    params: KeyParameters = {"kid": kid, "alg": algorithm.value, "use": "sig"}
    jose_private: JoseKey
    if algorithm in (KeyAlgorithm.ES256, KeyAlgorithm.ES384) and isinstance(
        private, ec.EllipticCurvePrivateKey
    ):
        jose_private = ECKey(private, private)
        public: JoseKey = ECKey(private.public_key(), private.public_key(), params)
    elif algorithm is KeyAlgorithm.RS256 and isinstance(private, rsa.RSAPrivateKey):
        jose_private = RSAKey(private, private)
        public = RSAKey(private.public_key(), private.public_key(), params)
    elif algorithm is KeyAlgorithm.EDDSA and isinstance(private, ed25519.Ed25519PrivateKey):
        jose_private = OKPKey(private, private)
        public = OKPKey(private.public_key(), private.public_key(), params)
    else:
        raise ValueError(f"private material of `{kid}` is not an {algorithm.value} key")
    jwk = {str(k): str(v) for k, v in public.as_dict(private=False).items()}
    return SigningKey(
        kid,
        algorithm,
        jose_private,
        _registry(algorithm),
        # Stable order, as people read a JWKS: kid, kty, alg, use, then the key parameters.
        dict(sorted(jwk.items(), key=lambda item: (_JWK_ORDER.get(item[0], 9), item[0]))),
    )


_JWK_ORDER = {"kid": 0, "kty": 1, "alg": 2, "use": 3}


def _load(
    private_der: bytes,
) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    key = serialization.load_der_private_key(
        private_der, password=None, unsafe_skip_rsa_key_validation=True
    )
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key
