"""SigV4 canonicalisation: canonical request, string to sign, signing key.

Tasks 1 to 3 of the IAM User Guide, "Create a signed AWS API request", as functions of plain
values, so they can be checked against AWS's published examples on their own. Where the
documentation leaves room, they do what botocore's signer (``botocore.auth.SigV4Auth``) does,
since that is what reaches the broker. :mod:`fedbroker.credentials.sigv4` builds on them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import NoReturn
from urllib.parse import quote, unquote_to_bytes

from fedbroker.errors import SignatureDoesNotMatchError

ALGORITHM = "AWS4-HMAC-SHA256"
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your"
    " AWS Secret Access Key and signing method. Consult the service documentation for details."
)


def canonical_request(
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
    service: str,
    presigned: bool,
    body_hash: str | None = None,
) -> str:
    """Task 1, "Create a canonical request". ``headers`` must have lower-case names.

    Method, canonical URI, canonical query string, canonical headers (the signed ones only, in
    the listed order, values trimmed with inner whitespace collapsed), signed headers, payload
    hash. Raises SignatureDoesNotMatchError when a signed header is missing or a declared
    ``x-amz-content-sha256`` is not the body's hash.
    """
    lines = []
    for name in signed_headers:
        value = headers.get(name)
        if value is None:
            mismatch(f"signed header `{clip(name)}` is not in the request")
        lines.append(f"{name}:{' '.join(value.split())}\n")
    payload = payload_hash(body, headers.get("x-amz-content-sha256"), service, presigned, body_hash)
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path, service),
            canonical_query(query, presigned),
            "".join(lines),
            ";".join(signed_headers),
            payload,
        )
    )


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    """Task 2, "Create a string to sign": algorithm, date, credential scope, request hash."""
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def derive_signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """Task 3, "Derive a signing key": HMAC chain from ``"AWS4" + secret`` to the terminator."""
    key = f"AWS4{secret_access_key}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def canonical_uri(path: str, service: str) -> str:
    """The path with dot segments and empty segments removed, URI-encoded once more.

    The raw path is already percent-encoded, so "%20" on the wire signs as "%2520": the
    "encoded twice" of the documentation, as ``SigV4Auth._normalize_url_path`` does it. S3 is
    the exception and signs the path as sent.
    """
    if service == "s3":
        return path or "/"
    if path == "/":
        return path
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    normal = ("/" if path.startswith("/") else "") + "/".join(segments)
    if path.endswith("/") and segments:
        normal += "/"
    return quote(normal, safe="/~")


def canonical_query(query: str, presigned: bool) -> str:
    """Parameters decoded, RFC 3986-encoded, sorted by encoded name then value.

    Decoding reads "+" as a space, as the web layer's form parser does and as botocore sends
    GET parameters (``urlencode``), while it signs them as "%20". A presigned URL's own
    ``X-Amz-Signature`` is left out.
    """
    if not query:
        return ""
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            name = _encode(name)
            if not (presigned and name == "X-Amz-Signature"):
                pairs.append((name, _encode(value)))
    pairs.sort()
    return "&".join(f"{name}={value}" for name, value in pairs)


def payload_hash(
    body: bytes, declared: str | None, service: str, presigned: bool, body_hash: str | None = None
) -> str:
    """The hex SHA-256 of the body (``body_hash`` when the caller already knows it), or the
    ``x-amz-content-sha256`` value if it matches it.

    Query-protocol bodies carry the operation's parameters, so the body is always covered:
    ``UNSIGNED-PAYLOAD`` is accepted only where AWS defines it, for S3 (and S3 presigned URLs
    use it implicitly). Other presigned URLs sign the body's hash, as botocore's
    ``SigV4QueryAuth`` does.
    """
    if declared is None:
        if presigned and service == "s3":
            return UNSIGNED_PAYLOAD
        return body_hash or hashlib.sha256(body).hexdigest()
    if declared == UNSIGNED_PAYLOAD and service == "s3":
        return declared
    if declared != (body_hash or hashlib.sha256(body).hexdigest()):
        mismatch(f"x-amz-content-sha256 `{clip(declared)}` is not the hash of the body")
    return declared


def mismatch(detail: str, message: str = SIGNATURE_MISMATCH) -> NoReturn:
    """Raise the one outward signature error, with the precise reason in ``detail``."""
    raise SignatureDoesNotMatchError(message, detail=detail)


def clip(text: str, limit: int = 64) -> str:
    """User input shortened for a message."""
    return text if len(text) <= limit else text[:limit] + "..."


def _encode(component: str) -> str:
    if _UNRESERVED.fullmatch(component):
        return component  # what decoding and encoding again would give, without the work
    return quote(unquote_to_bytes(component.replace("+", " ")), safe="-_.~")
