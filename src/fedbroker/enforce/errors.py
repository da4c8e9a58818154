"""Refusals and how each protocol renders them: the Enforcer decides, a renderer writes.

A :class:`Refusal` carries the outward error (an AWS code, a safe message, an HTTP status) and,
for a denial, the encoded authorization message. Renderers turn it into the status, headers
and body of the protected service's protocol: :func:`s3_error` (S3's ``<Error>`` document, with
S3's codes for authentication failures), :func:`json_error` (AWS JSON protocols) and
:func:`query_error` (the Query protocol's ``ErrorResponse``). Any callable of the same shape
will do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape

from fedbroker.credentials.sigv4 import PRESIGNED_EXPIRED, SKEWED_PREFIXES

Rendered = tuple[int, list[tuple[str, str]], bytes]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused. ``encoded_message`` is set for policy denials only."""

    code: str
    message: str
    status: int
    request_id: str
    action: str = ""
    resource: str = ""
    encoded_message: str | None = None

    @property
    def text(self) -> str:
        """The message with the encoded authorization message, as AWS appends it."""
        if self.encoded_message is None:
            return self.message
        return f"{self.message}. Encoded authorization failure message: {self.encoded_message}"


ErrorRenderer = Callable[[Refusal], Rendered]

# S3 answers authentication failures with its own codes and words ("Error Responses", Amazon
# S3 API Reference).
_S3_CODES: dict[str, tuple[str, int, str | None]] = {
    "InvalidClientTokenId": (
        "InvalidAccessKeyId",
        403,
        "The AWS Access Key Id you provided does not exist in our records.",
    ),
    "SignatureDoesNotMatch": ("SignatureDoesNotMatch", 403, None),
    "ExpiredToken": ("ExpiredToken", 400, "The provided token has expired."),
    "IncompleteSignature": ("AuthorizationHeaderMalformed", 400, None),
    "MissingAuthenticationToken": ("AccessDenied", 403, "Access Denied"),
    "RequestEntityTooLarge": (
        "EntityTooLarge",
        400,
        "Your proposed upload exceeds the maximum allowed size.",
    ),
    "AccessDenied": ("AccessDenied", 403, None),
}


def _s3_code(refusal: Refusal) -> tuple[str, int, str | None]:
    if refusal.code == "SignatureDoesNotMatch":
        # S3 names the time checks apart from a bad signature ("Error Responses").
        if refusal.message == PRESIGNED_EXPIRED:
            return "AccessDenied", 403, "Request has expired"
        if refusal.message.startswith(SKEWED_PREFIXES):
            return (
                "RequestTimeTooSkewed",
                403,
                "The difference between the request time and the current time is too large.",
            )
    return _S3_CODES.get(
        refusal.code, ("InternalError", 500, "We encountered an internal error. Please try again.")
    )


def s3_error(refusal: Refusal) -> Rendered:
    """S3's error document: ``<Error><Code/><Message/><Resource/><RequestId/></Error>``, plus
    ``<EncodedAuthorizationMessage>`` for a denial (botocore returns every child element in
    ``response["Error"]``)."""
    code, status, message = _s3_code(refusal)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>',
        f"<Code>{code}</Code><Message>{escape(message or refusal.text)}</Message>",
    ]
    if refusal.resource:
        parts.append(f"<Resource>{escape(refusal.resource)}</Resource>")
    if refusal.encoded_message is not None:
        parts.append(
            f"<EncodedAuthorizationMessage>{refusal.encoded_message}</EncodedAuthorizationMessage>"
        )
    parts.append(f"<RequestId>{refusal.request_id}</RequestId>")
    parts.append(f"<HostId>{refusal.request_id}</HostId></Error>")
    headers = [("Content-Type", "application/xml"), ("x-amz-request-id", refusal.request_id)]
    return status, headers, "".join(parts).encode()


def json_error(refusal: Refusal) -> Rendered:
    """AWS JSON protocols: ``{"__type": code, "message": …}`` and ``x-amzn-ErrorType``."""
    body: dict[str, str] = {"__type": refusal.code, "message": refusal.text}
    if refusal.encoded_message is not None:
        body["encodedAuthorizationMessage"] = refusal.encoded_message
    headers = [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("x-amzn-RequestId", refusal.request_id),
        ("x-amzn-ErrorType", refusal.code),
    ]
    return refusal.status, headers, json.dumps(body).encode()


def query_error(refusal: Refusal) -> Rendered:
    """The Query protocol's ``<ErrorResponse>`` (as IAM and STS answer)."""
    kind = "Sender" if refusal.status < 500 else "Receiver"
    body = (
        f"<ErrorResponse><Error><Type>{kind}</Type><Code>{escape(refusal.code)}</Code>"
        f"<Message>{escape(refusal.text)}</Message></Error>"
        f"<RequestId>{refusal.request_id}</RequestId></ErrorResponse>"
    )
    return refusal.status, [("Content-Type", "text/xml")], body.encode()
