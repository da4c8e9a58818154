"""AWS Signature Version 4, verified on the server side.

Follows the IAM User Guide, "AWS Signature Version 4 for API requests": "Elements of an AWS
API request signature", "Create a signed AWS API request" and "Authentication methods" (the
``Authorization`` header, or query parameters for presigned URLs). The canonical forms live in
:mod:`fedbroker.credentials.sigv4_canonical`. Standard library only, no I/O, no clock: the
caller passes ``now``.

    auth = parse_auth(request)                      # None: the request is not signed at all
    secret = ...                                    # the caller looks up auth.access_key_id
    verifier.verify(request, auth, secret, now, service="sts", regions={"us-east-1"})

The web layer hands over the request as received: the raw (still percent-encoded) path and
query string. The canonical path is normalised ("/a/./b/../c" signs as "/a/c"), so whatever
routes the request must route on the normalised path too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import NoReturn

from fedbroker.credentials.sigv4_canonical import (
    ALGORITHM,
    SIGNATURE_MISMATCH,
    canonical_request,
    clip,
    derive_signing_key,
    string_to_sign,
)
from fedbroker.credentials.sigv4_parse import (
    MAX_PRESIGNED_EXPIRES,
    HttpRequest,
    SigV4Auth,
    amz_stamp,
    lowered,
    parse_auth,
)
from fedbroker.errors import SignatureDoesNotMatchError

__all__ = [
    "ALGORITHM",
    "MAX_PRESIGNED_EXPIRES",
    "PRESIGNED_EXPIRED",
    "SKEWED_PREFIXES",
    "HttpRequest",
    "SigV4Auth",
    "SigV4Verifier",
    "canonical_request",
    "derive_signing_key",
    "parse_auth",
    "string_to_sign",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")
# The outward messages of the time checks, AWS's words for the Query protocols; services with
# their own words for them (S3: ``RequestTimeTooSkewed``, "Request has expired") tell them
# apart by these.
PRESIGNED_EXPIRED = "Request has expired."
SKEWED_PREFIXES = ("Signature expired:", "Signature not yet current:")


class SigV4Verifier:
    """Checks SigV4 claims, keeping derived signing keys so that a check costs one HMAC.

    As in pyca/cryptography's ``Fernet.decrypt_at_time``, verification raises (never returns
    False) and the time is a parameter. Thread-safe. Only keys proven by a valid signature are
    cached, found by a hash of the secret, never by the secret itself.
    """

    __slots__ = ("_keys", "_lock", "_max_keys", "max_skew")

    def __init__(self, max_skew: timedelta = timedelta(minutes=5), max_keys: int = 4096) -> None:
        self.max_skew = max_skew
        self._max_keys = max_keys
        self._keys: dict[tuple[bytes, str, str, str], bytes] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SigV4Verifier(max_skew={self.max_skew!r}, cached_keys={len(self._keys)})"

    def verify(
        self,
        request: HttpRequest,
        auth: SigV4Auth,
        secret_access_key: str,
        now: datetime,
        *,
        service: str | None = None,
        regions: Collection[str] | None = None,
    ) -> None:
        """Raise SignatureDoesNotMatchError unless ``auth`` is a valid signature of ``request``.

        In order: ``host`` is signed, and so is a session token sent as a header; the scope
        names ``service`` and one of ``regions`` when given; the scope date is the request's;
        the request time is within ``max_skew`` of ``now`` (a presigned URL: not beyond the
        skew in the future, not past X-Amz-Expires); the signature is the one computed
        ("Create a signed AWS API request", tasks 1 to 4).
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if "host" not in auth.signed_headers:
            _fail("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
        if not (auth.presigned or auth.security_token is None) and (
            "x-amz-security-token" not in auth.signed_headers
        ):
            _fail(SIGNATURE_MISMATCH, "x-amz-security-token is sent but not signed")
        if service is not None and auth.service != service:
            _fail(f"Credential should be scoped to correct service: '{service}'.")
        if regions is not None and auth.region not in regions:
            _fail(f"Credential should be scoped to a valid region, not '{clip(auth.region)}'.")
        stamp = amz_stamp(auth.amz_date)
        if auth.date != stamp[:8]:
            _fail(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date"
                f" from HTTP: '{auth.date}' != '{stamp[:8]}', from '{stamp}'."
            )
        self._check_time(auth, stamp, now)
        canonical = canonical_request(
            method=request.method,
            path=request.path,
            query=request.query,
            headers=lowered(request.headers),
            signed_headers=auth.signed_headers,
            body=request.body,
            service=auth.service,
            presigned=auth.presigned,
            body_hash=request.body_hash,
        )
        to_sign = string_to_sign(stamp, auth.scope, canonical)
        secret_hash = hashlib.sha256(secret_access_key.encode()).digest()
        cache_key = (secret_hash, auth.date, auth.region, auth.service)
        key = self._keys.get(cache_key)
        cached = key is not None
        if key is None:
            key = derive_signing_key(secret_access_key, auth.date, auth.region, auth.service)
        expected = hmac.digest(key, to_sign.encode(), "sha256").hex()
        if not (_HEX64.fullmatch(auth.signature) and hmac.compare_digest(expected, auth.signature)):
            _fail(
                SIGNATURE_MISMATCH,
                f"signature mismatch for `{clip(auth.access_key_id)}`, string to sign {to_sign!r}",
            )
        if not cached:
            with self._lock:
                if len(self._keys) >= self._max_keys:
                    del self._keys[next(iter(self._keys))]  # the oldest
                self._keys[cache_key] = key

    def _check_time(self, auth: SigV4Auth, stamp: str, now: datetime) -> None:
        skew = f"{self.max_skew.total_seconds() / 60:g} min."
        if auth.amz_date > now + self.max_skew:
            _fail(
                f"Signature not yet current: {stamp} is still later than"
                f" {amz_stamp(now + self.max_skew)} ({amz_stamp(now)} + {skew})"
            )
        if auth.presigned:
            expiry = auth.amz_date + timedelta(seconds=auth.expires or 0)
            if now > expiry:
                _fail(
                    PRESIGNED_EXPIRED,
                    f"presigned at {stamp} for {auth.expires} s,"
                    f" expired at {amz_stamp(expiry)}, now {amz_stamp(now)}",
                )
        elif auth.amz_date < now - self.max_skew:
            _fail(
                f"Signature expired: {stamp} is now earlier than"
                f" {amz_stamp(now - self.max_skew)} ({amz_stamp(now)} - {skew})"
            )


def _fail(message: str, detail: str | None = None) -> NoReturn:
    raise SignatureDoesNotMatchError(message, detail=detail)
