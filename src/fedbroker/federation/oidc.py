"""Verifying an OpenID Connect token (a JWT) from a registered provider.

RFC 7515 (JWS compact serialisation), RFC 7519 (JWT claims), OpenID Connect Core 1.0 §3.1.3.7
(ID token validation), as AWS applies them in ``AssumeRoleWithWebIdentity``. In order:

1. size (``MAX_TOKEN_LENGTH``) and shape: three base64url segments, header and payload JSON
   objects without duplicate names;
2. header: ``alg`` on the allow-list (:data:`ALGORITHMS`: never ``none``, never an HMAC
   algorithm, whose "secret" would be the provider's public key), no ``crit`` extensions;
3. ``iss`` names a registered provider (looked up by the URL without its scheme, as IAM
   names providers): the broker fetches keys only for providers it was told to trust;
4. the key: the JWKS member whose ``kid`` the header names (one refresh, rate-limited, when the
   cached set lacks it), or the only key when the header has no ``kid``; its type, curve and
   own ``alg`` must fit the header's ``alg``;
5. the signature, with the algorithm pinned to that one ``alg`` (``cryptography`` directly on
   the segments already split: :func:`_signature_valid`);
6. claims, with ``now`` and ``leeway`` injected: ``exp`` required, ``nbf`` and ``iat`` not in
   the future, ``sub`` a non-empty string, ``aud`` (string or list) or ``azp`` one of the
   provider's client ids.

Every failure is :class:`InvalidIdentityTokenError` with one outward message, except a genuine
token past its ``exp`` (:class:`ExpiredIdentityTokenError`) and keys that cannot be fetched
with none cached (:class:`IdpCommunicationError`); ``detail`` says precisely what failed, for
the audit, and never holds the token.

The JWKS is read with joserfc (:mod:`fedbroker.federation.jwks`), the broker's JOSE library
(``credentials/jws.py`` says why).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from fedbroker.errors import ExpiredIdentityTokenError, InvalidIdentityTokenError
from fedbroker.federation.jwks import JwksCache, KeySet, ProviderKey

INVALID = "the web identity token could not be validated"
EXPIRED = "the web identity token has expired"
# ID tokens are a few hundred bytes to a few KB; AWS takes up to 20,000 characters.
MAX_TOKEN_LENGTH = 16 * 1024
MAX_HEADER_LENGTH = 2048
MAX_SUBJECT = 255
DEFAULT_LEEWAY = timedelta(seconds=60)
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
_CURVE_OF = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_SCHEME = re.compile(r"(https?)://(.+)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class TrustedProvider:
    """A registered OIDC provider as the verifier needs it: ``name`` is its URL without the
    scheme (IAM's provider name), ``url`` the registered URL, ``client_ids`` the audiences it
    accepts. ``ref`` is whatever the caller wants back with the result (an entity, an ARN)."""

    name: str
    url: str
    client_ids: tuple[str, ...]
    ref: object = field(default=None, compare=False, repr=False)


ProviderLookup = Callable[[str], TrustedProvider | None]


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token that passed every check: who issued it, about whom, for whom."""

    provider: TrustedProvider
    issuer: str  # the ``iss`` claim, verbatim
    subject: str
    audience: str  # ``azp`` when present (AWS's ``<provider>:aud``), else the matching ``aud``
    audiences: tuple[str, ...]  # the ``aud`` claim (AWS's ``<provider>:oaud``)
    claims: Mapping[str, Any]
    kid: str | None
    algorithm: str


def _invalid(detail: str) -> InvalidIdentityTokenError:
    return InvalidIdentityTokenError(INVALID, detail=detail)


def _b64json(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = _DECODER.decode(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise _invalid(f"the token's {what} is not base64url JSON ({error})") from None
    if not isinstance(value, dict):
        raise _invalid(f"the token's {what} is not a JSON object")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise ValueError(f"duplicate member `{name[:64]}`")
        out[name] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"`{name}` is not a JSON number")


# One decoder for every token (json.loads would build one per call with these hooks).
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


class OidcVerifier:
    """Verifies web identity tokens against registered providers' JWKS (module docstring).

    Long-lived: one per process, so that the key cache is shared by every request.
    """

    def __init__(self, jwks: JwksCache | None = None, *, leeway: timedelta = DEFAULT_LEEWAY):
        self.jwks = jwks or JwksCache()
        self.leeway = leeway

    def verify(self, token: str, lookup: ProviderLookup, now: datetime) -> VerifiedToken:
        """Check ``token`` at ``now``; ``lookup`` finds a registered provider by name."""
        header, claims = self._parse(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            shown = alg if isinstance(alg, str) else type(alg).__name__
            raise _invalid(f"algorithm `{str(shown)[:32]}` is not allowed")
        if "crit" in header:
            raise _invalid("the token's header has critical extensions (`crit`)")
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or not 0 < len(kid) <= 256):
            raise _invalid("the token's `kid` is not a string of 1 to 256 characters")
        provider, issuer = self._provider(claims, lookup)
        key = self._key(provider, kid, alg, now)
        if not _signature_valid(token, key, alg):
            raise _invalid(
                f"signature check failed (bad signature) for issuer `{issuer}`, kid `{kid}`"
            )
        subject = self._check_claims(claims, now)
        audience, audiences = self._audience(claims, provider)
        return VerifiedToken(provider, issuer, subject, audience, audiences, claims, kid, alg)

    # --- steps ---------------------------------------------------------------------------------

    def _parse(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        if not isinstance(token, str) or not token:
            raise _invalid("empty token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise _invalid(f"token of {len(token)} characters is over {MAX_TOKEN_LENGTH}")
        parts = token.split(".")
        if len(parts) != 3:
            raise _invalid(
                f"not a JWS compact serialisation ({len(parts)} segments; 5 would be a JWE)"
            )
        if not all(_SEGMENT.fullmatch(part) for part in parts):
            raise _invalid("a token segment is empty or not base64url")
        if len(parts[0]) > MAX_HEADER_LENGTH:
            raise _invalid(f"token header over {MAX_HEADER_LENGTH} characters")
        return _b64json(parts[0], "header"), _b64json(parts[1], "payload")

    def _provider(
        self, claims: Mapping[str, Any], lookup: ProviderLookup
    ) -> tuple[TrustedProvider, str]:
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise _invalid("the token has no `iss` claim")
        match = _SCHEME.fullmatch(issuer)
        if match is None:
            raise _invalid(f"issuer `{issuer[:256]}` is not an http(s) URL")
        scheme, name = match.groups()
        provider = lookup(name) if len(name) <= 255 else None
        if provider is None and name.endswith("/"):
            provider = lookup(name.rstrip("/"))
        if provider is None:
            raise _invalid(f"no OpenID Connect provider is registered for `{issuer[:256]}`")
        if not provider.url.startswith(f"{scheme}://"):
            raise _invalid(f"issuer `{issuer}` does not use the scheme of `{provider.url}`")
        return provider, issuer

    def _key(
        self, provider: TrustedProvider, kid: str | None, alg: str, now: datetime
    ) -> ProviderKey:
        keys = self.jwks.keys(provider.url, now)
        key = self._pick(keys, kid)
        if key is None and kid is not None:
            refreshed = self.jwks.refresh(provider.url, now)
            if refreshed is None:
                raise _invalid(
                    f"unknown kid `{kid}` for `{provider.url}` (the keys were fetched less than "
                    f"{self.jwks.cooldown.total_seconds():g} s ago: not fetched again)"
                )
            key = self._pick(refreshed, kid)
            if key is None:
                raise _invalid(f"unknown kid `{kid}` for `{provider.url}`, even after a refresh")
        if key is None:
            raise _invalid(
                f"the token has no `kid` and the JWKS of `{provider.url}` holds "
                f"{len(keys.keys)} keys (a `kid` is needed unless it holds exactly one)"
            )
        problem = _misfit(key, alg)
        if problem:
            raise _invalid(f"key `{key.kid}` of `{provider.url}` cannot verify {alg}: {problem}")
        return key

    @staticmethod
    def _pick(keys: KeySet, kid: str | None) -> ProviderKey | None:
        if kid is not None:
            return keys.by_kid(kid)
        return keys.keys[0] if len(keys.keys) == 1 else None

    def _check_claims(self, claims: Mapping[str, Any], now: datetime) -> str:
        epoch = now.timestamp()
        leeway = self.leeway.total_seconds()
        exp = _time(claims, "exp", required=True)
        assert exp is not None
        if epoch >= exp + leeway:
            raise ExpiredIdentityTokenError(
                EXPIRED,
                detail=f"token expired at {int(exp)}, checked at {int(epoch)} "
                f"(leeway {leeway:g} s)",
            )
        nbf = _time(claims, "nbf")
        if nbf is not None and epoch + leeway < nbf:
            raise _invalid(f"token not valid before {int(nbf)}, checked at {int(epoch)}")
        iat = _time(claims, "iat")
        if iat is not None and epoch + leeway < iat:
            raise _invalid(f"token issued in the future ({int(iat)}), checked at {int(epoch)}")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise _invalid("the token has no `sub` claim (or it is not a string)")
        if len(subject) > MAX_SUBJECT:
            raise _invalid(f"the token's `sub` is over {MAX_SUBJECT} characters")
        return subject

    @staticmethod
    def _audience(
        claims: Mapping[str, Any], provider: TrustedProvider
    ) -> tuple[str, tuple[str, ...]]:
        raw = claims.get("aud")
        if isinstance(raw, str):
            audiences: tuple[str, ...] = (raw,)
        elif isinstance(raw, list) and raw and all(isinstance(a, str) for a in raw):
            audiences = tuple(raw)
        else:
            raise _invalid("the token's `aud` is missing or not a string or list of strings")
        azp = claims.get("azp")
        if azp is not None and not isinstance(azp, str):
            raise _invalid("the token's `azp` is not a string")
        accepted = set(provider.client_ids)
        matching = next((a for a in audiences if a in accepted), None)
        if matching is None and azp not in accepted:
            shown = ", ".join(f"`{a[:64]}`" for a in audiences[:5])
            if azp is not None:
                shown += f" (azp `{azp[:64]}`)"
            raise _invalid(
                f"incorrect token audience: {shown} is not a client id of `{provider.name}`"
            )
        return (azp if azp is not None else matching or audiences[0]), audiences


def _time(claims: Mapping[str, Any], name: str, *, required: bool = False) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise _invalid(f"the token has no `{name}` claim")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(f"the token's `{name}` is not a NumericDate")
    return float(value)


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_EC_SIZES = {"ES256": 32, "ES384": 48, "ES512": 66}


def _signature_valid(token: str, key: ProviderKey, alg: str) -> bool:
    """RFC 7518 §3.3-3.5: the JWS signature of the compact ``token`` (already split and shown
    to be three base64url segments) by ``key`` under ``alg``, which :func:`_misfit` has matched
    to the key. Straight onto ``cryptography``: joserfc would parse and decode the token a
    second time, which cost more than the RSA check itself (bench/RESULTS.md)."""
    head, _, signature_b64 = token.rpartition(".")
    try:
        signature = base64.urlsafe_b64decode(signature_b64 + "=" * (-len(signature_b64) % 4))
    except (binascii.Error, ValueError):
        return False
    digest = _HASHES[alg[2:]]()
    public = key.key.raw_value
    signed = head.encode("ascii")
    try:
        if isinstance(public, rsa.RSAPublicKey) and alg.startswith("RS"):
            public.verify(signature, signed, padding.PKCS1v15(), digest)
        elif isinstance(public, rsa.RSAPublicKey) and alg.startswith("PS"):
            pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
            public.verify(signature, signed, pss, digest)
        elif isinstance(public, ec.EllipticCurvePublicKey) and alg.startswith("ES"):
            size = _EC_SIZES[alg]
            if len(signature) != 2 * size:
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            public.verify(encode_dss_signature(r, s), signed, ec.ECDSA(digest))
        else:  # _misfit matched key and algorithm: not reached
            return False
    except InvalidSignature:
        return False
    return True


def _misfit(key: ProviderKey, alg: str) -> str | None:
    """Why ``key`` cannot verify ``alg`` (RFC 7518 §3.1), or ``None``."""
    if key.alg is not None and key.alg != alg:
        return f"the key is for `{key.alg}`"
    if alg.startswith(("RS", "PS")):
        return None if key.kty == "RSA" else f"a {key.kty} key"
    if key.kty != "EC":
        return f"a {key.kty} key"
    if key.crv != _CURVE_OF[alg]:
        return f"curve {key.crv}"
    return None
