"""JWTs made by hand for the tests, with ``cryptography`` only (not the library under test).

Signing keys here are generated per test session and are not secret. The attack tokens of
issue 4's "Bad input" list (``alg: none``, HS256 keyed with the provider's public key, ...)
are made with the same helpers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def _int(value: int, length: int | None = None) -> str:
    size = length or (value.bit_length() + 7) // 8
    return b64(value.to_bytes(size, "big"))


@dataclass(frozen=True)
class JwtKey:
    """A signing key and its public JWK."""

    kid: str | None
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @staticmethod
    def rsa(kid: str | None, bits: int = 2048) -> JwtKey:
        return JwtKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=bits))

    @staticmethod
    def ec(kid: str | None) -> JwtKey:
        return JwtKey(kid, ec.generate_private_key(ec.SECP256R1()))

    def jwk(self, **extra: str) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            out: dict[str, Any] = {"kty": "RSA", "n": _int(numbers.n), "e": _int(numbers.e)}
        else:
            point = public.public_numbers()
            out = {"kty": "EC", "crv": "P-256", "x": _int(point.x, 32), "y": _int(point.y, 32)}
        if self.kid is not None:
            out["kid"] = self.kid
        out.update(extra)
        return out

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], alg: str | None = None, **header: Any) -> str:
        """A compact JWS of ``claims``; ``kid`` goes in the header unless overridden."""
        default = "RS256" if isinstance(self.private, rsa.RSAPrivateKey) else "ES256"
        alg = alg or default
        head: dict[str, Any] = {"alg": alg, "typ": "JWT"}
        if self.kid is not None:
            head["kid"] = self.kid
        head.update(header)
        head = {k: v for k, v in head.items() if v is not None}
        signing_input = f"{b64json(head)}.{b64json(claims)}".encode()
        return f"{signing_input.decode()}.{b64(self._signature(signing_input, alg))}"

    def _signature(self, data: bytes, alg: str) -> bytes:
        if isinstance(self.private, rsa.RSAPrivateKey):
            digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[
                alg[2:]
            ]
            if alg.startswith("PS"):
                pad: padding.AsymmetricPadding = padding.PSS(
                    padding.MGF1(digest), padding.PSS.DIGEST_LENGTH
                )
            else:
                pad = padding.PKCS1v15()
            return self.private.sign(data, pad, digest)
        der = self.private.sign(data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def unsigned(claims: dict[str, Any], signature: str = "", **header: Any) -> str:
    """``alg: none`` (RFC 7519 §6): an empty signature, or ``signature`` if given."""
    head = {"alg": "none", "typ": "JWT", **header}
    return f"{b64json(head)}.{b64json(claims)}.{signature}"


def hmac_signed(claims: dict[str, Any], secret: bytes, **header: Any) -> str:
    """HS256 keyed with ``secret``: with a provider's public key as the secret, the classic
    algorithm-confusion forgery (CVE-2015-9235 and its many siblings)."""
    head = {"alg": "HS256", "typ": "JWT", **header}
    signing_input = f"{b64json(head)}.{b64json(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"
