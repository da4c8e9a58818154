"""Provider signing keys: OIDC discovery, the JWKS it names, and a cache in front of both.

OpenID Connect Discovery 1.0 §4 (``<issuer>/.well-known/openid-configuration`` → ``jwks_uri``)
and RFC 7517 (the JWK Set). Keys are cached per issuer:

- for as long as the JWKS response's ``Cache-Control: max-age`` says, clamped to
  [``min_ttl``, ``max_ttl``] (``no-store``/``no-cache`` count as ``min_ttl``: every token
  check cannot cost a fetch), or ``default_ttl`` without the header;
- a token with an unknown ``kid`` may trigger one early refresh, but fetches of one issuer are
  at least ``cooldown`` apart, whatever their cause, so tokens with made-up ``kid`` values
  cannot make the broker hammer the provider;
- when a refresh fails, the keys already held stay in use for up to ``max_stale`` past their
  lifetime, so a provider whose JWKS endpoint is down or slow does not stop sign-ins;
- only a failure with nothing cached is an error (:class:`IdpCommunicationError`).

Times are the caller's ``now`` (the clock is injected, as for every check in the broker).
Usable keys are RSA (2048 bits or more) and EC P-256/P-384/P-521 signature keys; others in the
set (symmetric ``oct`` keys above all: a published HMAC key would let anyone forge tokens,
OKP, encryption keys) are skipped.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from fedbroker.errors import IdpCommunicationError
from fedbroker.federation.http import FetchError, HttpFetcher, HttpResponse, StdlibFetcher

COMMUNICATION = (
    "Couldn't retrieve verification key from your identity provider, please reference "
    "AssumeRoleWithWebIdentity documentation for requirements"
)
DISCOVERY_PATH = "/.well-known/openid-configuration"
MIN_RSA_BITS = 2048
MAX_KEYS = 100
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)", re.IGNORECASE)
_CURVES = {"P-256", "P-384", "P-521"}

JoseKey = RSAKey | ECKey


@dataclass(frozen=True, slots=True)
class ProviderKey:
    """One usable verification key of a provider's JWKS."""

    kid: str | None
    kty: str  # RSA or EC
    alg: str | None  # the key's own ``alg`` if the JWKS pins one
    crv: str | None  # EC only
    key: JoseKey = field(repr=False)


@dataclass(frozen=True, slots=True)
class KeySet:
    """The usable keys of one fetch, in JWKS order, and when they were fetched."""

    keys: tuple[ProviderKey, ...]
    fetched: datetime
    expires: datetime

    def by_kid(self, kid: str) -> ProviderKey | None:
        return next((k for k in self.keys if k.kid == kid), None)


@dataclass(slots=True)
class _Entry:
    keys: KeySet | None = None
    last_attempt: datetime | None = None  # of any fetch, successful or not
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class JwksCache:
    """Discovery + JWKS per issuer URL, cached and rate-limited (module docstring)."""

    def __init__(
        self,
        fetcher: HttpFetcher | None = None,
        *,
        timeout: float = 3.0,
        max_bytes: int = 256 * 1024,
        cooldown: timedelta = timedelta(seconds=30),
        default_ttl: timedelta = timedelta(hours=1),
        min_ttl: timedelta = timedelta(minutes=5),
        max_ttl: timedelta = timedelta(hours=24),
        max_stale: timedelta = timedelta(hours=24),
    ) -> None:
        self.fetcher: HttpFetcher = fetcher or StdlibFetcher()
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.cooldown = cooldown
        self.default_ttl = default_ttl
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.max_stale = max_stale
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def keys(self, issuer_url: str, now: datetime) -> KeySet:
        """The issuer's keys: cached while fresh, fetched when not (at most once per
        ``cooldown``), stale ones while the provider cannot be reached.

        Raises :class:`IdpCommunicationError` when there is nothing usable to answer with.
        """
        entry = self._entry(issuer_url)
        held = entry.keys
        if held is not None and now < held.expires:
            return held
        with entry.lock:
            held = entry.keys
            if held is not None and now < held.expires:
                return held  # another thread refreshed meanwhile
            if not self._cooling(entry, now):
                self._fetch(issuer_url, entry, now)
                held = entry.keys
                if held is not None and now < held.expires:
                    return held
            if held is not None and now < held.expires + self.max_stale:
                return held
            raise IdpCommunicationError(
                COMMUNICATION,
                detail=f"no keys for `{issuer_url}`: {entry.last_error or 'never fetched'}",
            )

    def refresh(self, issuer_url: str, now: datetime) -> KeySet | None:
        """Fetch again now (a token names a ``kid`` the cached set lacks), unless the last
        fetch of this issuer was less than ``cooldown`` ago: then ``None``, and nothing is
        fetched. A failed fetch raises :class:`IdpCommunicationError`."""
        entry = self._entry(issuer_url)
        with entry.lock:
            if self._cooling(entry, now):
                return None
            if not self._fetch(issuer_url, entry, now):
                raise IdpCommunicationError(
                    COMMUNICATION,
                    detail=f"refreshing the keys of `{issuer_url}` failed: {entry.last_error}",
                )
            return entry.keys

    def _entry(self, issuer_url: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(issuer_url)
            if entry is None:
                entry = self._entries[issuer_url] = _Entry()
            return entry

    def _cooling(self, entry: _Entry, now: datetime) -> bool:
        last = entry.last_attempt
        return last is not None and abs(now - last) < self.cooldown

    def _fetch(self, issuer_url: str, entry: _Entry, now: datetime) -> bool:
        """One attempt (under ``entry.lock``); records the outcome on ``entry``."""
        entry.last_attempt = now
        try:
            discovery = self._document(issuer_url.rstrip("/") + DISCOVERY_PATH)
            jwks_uri = _jwks_uri(issuer_url, discovery[0])
            document, response = self._document(jwks_uri)
            keys = parse_jwks(document)
        except FetchError as error:
            entry.last_error = str(error)
            return False
        if not keys:
            entry.last_error = f"the JWKS at `{jwks_uri}` holds no usable signature key"
            return False
        entry.keys = KeySet(keys, now, now + self._lifetime(response))
        entry.last_error = None
        return True

    def _document(self, url: str) -> tuple[dict[str, Any], HttpResponse]:
        response = self.fetcher.get(url, timeout=self.timeout, max_bytes=self.max_bytes)
        if response.status != 200:
            raise FetchError(f"`{url}` answered HTTP {response.status}")
        try:
            document = json.loads(response.body)
        except (ValueError, UnicodeDecodeError):
            raise FetchError(f"`{url}` did not answer with JSON") from None
        if not isinstance(document, dict):
            raise FetchError(f"`{url}` did not answer with a JSON object")
        return document, response

    def _lifetime(self, response: HttpResponse) -> timedelta:
        control = response.headers.get("cache-control", "")
        if _NO_CACHE.search(control):
            return self.min_ttl
        match = _MAX_AGE.search(control)
        if match is None:
            return self.default_ttl
        return min(self.max_ttl, max(self.min_ttl, timedelta(seconds=int(match.group(1)))))


def _jwks_uri(issuer_url: str, discovery: Mapping[str, Any]) -> str:
    """The discovery document's ``jwks_uri``: http(s) only, and https unless the issuer
    itself is plain http (a loopback development provider)."""
    uri = discovery.get("jwks_uri")
    if not isinstance(uri, str) or not uri:
        raise FetchError("the discovery document has no `jwks_uri`")
    scheme = urllib.parse.urlsplit(uri).scheme
    issuer_scheme = urllib.parse.urlsplit(issuer_url).scheme
    if scheme != "https" and not (scheme == "http" and issuer_scheme == "http"):
        raise FetchError(f"the `jwks_uri` `{uri[:200]}` is not an https URL")
    return uri


def parse_jwks(document: Mapping[str, Any]) -> tuple[ProviderKey, ...]:
    """The usable signature keys of a JWK Set (RFC 7517 §5); unusable members are skipped."""
    members = document.get("keys")
    if not isinstance(members, list):
        raise FetchError("the JWKS has no `keys` list")
    out: list[ProviderKey] = []
    for member in members[:MAX_KEYS]:
        key = _usable(member)
        if key is not None:
            out.append(key)
    return tuple(out)


def _usable(member: object) -> ProviderKey | None:
    if not isinstance(member, dict):
        return None
    kty, kid, alg = member.get("kty"), member.get("kid"), member.get("alg")
    use, ops = member.get("use"), member.get("key_ops")
    if use is not None and use != "sig":
        return None
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    if (kid is not None and not isinstance(kid, str)) or (
        alg is not None and not isinstance(alg, str)
    ):
        return None
    public = {k: v for k, v in member.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
    try:
        if kty == "RSA":
            if _modulus_bits(member.get("n")) < MIN_RSA_BITS:
                return None  # refused before import (joserfc would only warn)
            return ProviderKey(kid, "RSA", alg, None, RSAKey.import_key(public))
        if kty == "EC" and member.get("crv") in _CURVES:
            ec = ECKey.import_key(public)
            return ProviderKey(kid, "EC", alg, str(member["crv"]), ec)
    except (JoseError, ValueError, TypeError, KeyError):
        return None
    return None


def _modulus_bits(n: object) -> int:
    if not isinstance(n, str) or len(n) > 2048:
        return 0
    try:
        raw = base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))
    except (binascii.Error, ValueError):
        return 0
    return int.from_bytes(raw, "big").bit_length()
