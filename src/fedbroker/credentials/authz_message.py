"""Encoded authorization messages: why a request was denied, sealed for the caller to pass on.

AWS answers some denials with "Encoded authorization failure message: …", an opaque string
that ``sts:DecodeAuthorizationMessage`` turns back into the decision's details for a caller
allowed to see them (AWS STS API Reference, "DecodeAuthorizationMessage"). The details can
reveal policies, so the requester only gets the sealed form.

Format, version 1 (``fbm1``)::

    fbm1.<kid>.<base64url(nonce || AES-256-GCM(DEFLATE(JSON)))>

sealed with the key ring's current seal key, with ``fedbroker/authorization-message/fbm1.<kid>``
as associated data, so neither a session token nor anything else sealed by the ring opens as a
message. It opens as long as its key is not retired. Messages stay under
:data:`MAX_MESSAGE_LENGTH` (boto3's limit on ``EncodedMessage``): the least useful parts of the
explanation are dropped until it fits, and the message then says ``"truncated": true``.

The decoded JSON has AWS's shape (``allowed``, ``explicitDeny``, ``matchedStatements``,
``failures``, ``context`` with ``principal``, ``action``, ``resource`` and ``conditions``) and
adds ``explanation``: the engine's account of the decision, which policy type decided, which
statement, which condition key failed and with what value.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import zlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag

from fedbroker.credentials.keyring import KeyRing, UnknownKeyError
from fedbroker.errors import FedbrokerError
from fedbroker.policy import Decision, Effect

VERSION = "fbm1"
MAX_MESSAGE_LENGTH = 10_240
_MAX_PLAINTEXT = 256 * 1024
_NONCE = 12
_TAG = 16
_SHAPE = re.compile(r"fbm1\.([a-z0-9-]{1,64})\.([A-Za-z0-9_-]+)")
_AAD = b"fedbroker/authorization-message/"


class InvalidAuthorizationMessageError(FedbrokerError):
    """Not a message this broker sealed (altered, truncated, another broker's, a retired key).

    AWS's ``InvalidAuthorizationMessageException``; the reason stays in ``detail``."""

    code = "InvalidAuthorizationMessageException"
    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__("the message is not a valid encoded authorization message")
        self.detail = detail


def describe(
    decision: Decision,
    *,
    action: str,
    resource: str,
    principal: Mapping[str, str | None],
    context: Mapping[str, object],
) -> dict[str, Any]:
    """The decoded message of ``decision``: AWS's fields plus the engine's explanation.

    ``principal`` holds ``id``, ``arn`` and ``account`` (the account whose callers may decode
    the message)."""
    matched: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for outcome in decision.outcomes:
        for match in outcome.denies if decision.effect is Effect.EXPLICIT_DENY else outcome.allows:
            matched.append(_statement(match.statement, outcome.label))
        for miss in outcome.misses:
            failure = _statement(miss.statement, outcome.label)
            failure["condition"] = miss.condition.to_dict()
            failures.append(failure)
    return {
        "allowed": decision.allowed,
        "explicitDeny": decision.effect is Effect.EXPLICIT_DENY,
        "matchedStatements": {"items": matched},
        "failures": {"items": failures},
        "context": {
            "principal": {k: v for k, v in principal.items() if v is not None},
            "action": action,
            "resource": resource,
            "conditions": {
                "items": [
                    {"key": key, "values": {"items": [{"value": v} for v in _values(value)]}}
                    for key, value in context.items()
                ]
            },
        },
        "explanation": decision.explanation(),
    }


def _statement(stmt: Any, label: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "effect": "ALLOW" if stmt.allow else "DENY",
        "policyType": label,
        "policy": stmt.policy.name if stmt.policy is not None else None,
        "statement": stmt.index + 1,
    }
    if stmt.sid:
        out["statementId"] = stmt.sid
    return out


def _values(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def seal_message(ring: KeyRing, content: Mapping[str, Any], now: datetime) -> str:
    """``content`` (a :func:`describe` result) sealed with the ring's current seal key."""
    key = ring.seal_key(now)
    header = f"{VERSION}.{key.kid}."
    aad = _AAD + header.encode("ascii")
    body = dict(content)
    for trim in _TRIMS:
        plaintext = _pack(body)
        # Sealing adds the nonce and tag; base64 makes every 3 bytes 4 characters.
        if len(header) + (len(plaintext) + _NONCE + _TAG) * 4 // 3 + 4 <= MAX_MESSAGE_LENGTH:
            break
        body = {**trim(body), "truncated": True}
    else:
        plaintext = _pack(body)
    nonce = os.urandom(_NONCE)
    sealed = key.aead.encrypt(nonce, plaintext, aad)
    return header + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")


def open_message(ring: KeyRing, message: str, now: datetime) -> dict[str, Any]:
    """The content of a message :func:`seal_message` made with a key the ring still opens.

    Raises :class:`InvalidAuthorizationMessageError` for anything else."""
    match = _SHAPE.fullmatch(message.strip()) if len(message) <= MAX_MESSAGE_LENGTH else None
    if match is None:
        raise InvalidAuthorizationMessageError("not an fbm1 message (shape or length)")
    kid, body = match.groups()
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise InvalidAuthorizationMessageError("body is not base64url") from None
    if len(raw) < _NONCE + _TAG + 1:
        raise InvalidAuthorizationMessageError("message too short")
    try:
        key = ring.open_key(kid, now)
    except UnknownKeyError:
        raise InvalidAuthorizationMessageError(
            f"sealed with an unknown or retired key `{kid}`"
        ) from None
    aad = _AAD + f"{VERSION}.{kid}.".encode("ascii")
    try:
        plaintext = key.aead.decrypt(raw[:_NONCE], raw[_NONCE:], aad)
    except InvalidTag:
        raise InvalidAuthorizationMessageError("failed authentication (altered)") from None
    try:
        unpacker = zlib.decompressobj(-15)
        text = unpacker.decompress(plaintext, _MAX_PLAINTEXT)
        if unpacker.unconsumed_tail or not unpacker.eof:
            raise ValueError("too large or truncated")
        content = json.loads(text)
        if not isinstance(content, dict):
            raise ValueError("not an object")
    except (ValueError, zlib.error) as error:
        raise InvalidAuthorizationMessageError(f"content unreadable ({error})") from None
    return content


def message_account(content: Mapping[str, Any]) -> str | None:
    """The account of the principal a message is about: only its callers may decode it."""
    context = content.get("context")
    principal = context.get("principal") if isinstance(context, dict) else None
    account = principal.get("account") if isinstance(principal, dict) else None
    return account if isinstance(account, str) else None


def _pack(content: Mapping[str, Any]) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    text = json.dumps(content, separators=(",", ":"), ensure_ascii=False, default=str)
    return packer.compress(text.encode()) + packer.flush()


# What goes first when a message would be too long, least useful first.


def _without_near_misses(content: dict[str, Any]) -> dict[str, Any]:
    explanation = dict(content.get("explanation") or {})
    types = {
        label: {k: v for k, v in outcome.items() if k != "not_matched"}
        for label, outcome in dict(explanation.get("policy_types") or {}).items()
    }
    explanation["policy_types"] = types
    return {**content, "explanation": explanation, "failures": {"items": []}}


def _without_conditions(content: dict[str, Any]) -> dict[str, Any]:
    context = {**content["context"], "conditions": {"items": [], "truncated": True}}
    return {**content, "context": context}


def _summary_only(content: dict[str, Any]) -> dict[str, Any]:
    explanation = content.get("explanation") or {}
    return {
        **content,
        "matchedStatements": {"items": content["matchedStatements"]["items"][:5]},
        "explanation": {
            "summary": explanation.get("summary"),
            "decided_by": explanation.get("decided_by"),
            "truncated": True,
        },
    }


def _bare(content: dict[str, Any]) -> dict[str, Any]:
    explanation = content.get("explanation") or {}
    summary = str(explanation.get("summary") or "")[:2000]
    context = content["context"]
    return {
        "allowed": content["allowed"],
        "explicitDeny": content["explicitDeny"],
        "truncated": True,
        "matchedStatements": {"items": []},
        "failures": {"items": []},
        "context": {
            "principal": context["principal"],
            "action": str(context["action"])[:256],
            "resource": str(context["resource"])[:2048],
            "conditions": {"items": [], "truncated": True},
        },
        "explanation": {"summary": summary, "truncated": True},
    }


_TRIMS = (_without_near_misses, _without_conditions, _summary_only, _bare)
