"""Temporary credentials and the session token that carries a session's claims.

``issue_credentials`` mints an AWS-shaped triple (``ASIA…`` access key id, 40-character secret,
session token) plus its expiration; ``open_session_token`` gives the claims back to whoever
checks a request signed with them, with no database read (ARCHITECTURE.md, "Credentials").

Token format, version 1 (``fb1``)::

    fb1.<kid>.<base64url(nonce || AES-256-GCM(flag || payload))>

- ``kid`` names the key-ring seal key, readable without any key so the ring can pick the key
  (and so operators can see which key a token needs before retiring it);
- the associated data is ``fb1.<kid>.`` followed by the access key id: the token opens only
  with the access key id it was issued with, and neither its version nor its kid can be
  swapped;
- ``payload`` is the claims as JSON with one-letter keys, empty values left out, times in
  whole seconds since the epoch; ``flag`` says whether it is compressed (raw DEFLATE, RFC 1951,
  by zlib, with a preset dictionary of ARN fragments and keys that is part of version 1), which
  is used only when it is shorter. Compressing before encrypting leaks the compressed length,
  so an attacker could learn something about a secret only if the secret shared the
  compressed stream with text he chooses across many tokens; here the only secret is the
  session's own secret access key, fresh for every token and handed to the same caller anyway.

Every failure to open collapses to ``InvalidClientTokenId`` (or ``ExpiredToken`` for a token
that authenticates but has expired) with AWS's wording; the precise reason is in ``detail``,
for the log and the audit event, and never includes the token or the secret.
"""

from __future__ import annotations

import base64
import json
import os
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from cryptography.exceptions import InvalidTag

from fedbroker.credentials.access_key_ids import temporary_access_key_id
from fedbroker.credentials.keyring import KeyRing, UnknownKeyError
from fedbroker.errors import ExpiredTokenError, FedbrokerError, InvalidClientTokenIdError

VERSION = "fb1"
INVALID = "The security token included in the request is invalid."
EXPIRED = "The security token included in the request is expired"
# The largest session AWS allows (2048-character session policy, 10 policy ARNs of 2048
# characters, 50 tags at the maximum key and value lengths, a source identity) fits, with a
# margin; anything longer is garbage and is refused before any work is done.
MAX_TOKEN_LENGTH = 8000
_MAX_PLAINTEXT = 64 * 1024
_NONCE = 12
_TAG = 16
_RAW, _ZLIB = b"\x00", b"\x01"
_BODY = re.compile(r"[A-Za-z0-9_-]+")
_KID = re.compile(r"[a-z0-9-]{1,64}")
_TEMPORARY_KEY_ID = re.compile(r"ASIA[A-Z0-9]{16}")
# Preset zlib dictionary of version 1: what most claims repeat. zlib looks back from the end,
# so the commonest fragments come last. Changing it is a new token version.
_ZDICT = (
    b'"u":"system:serviceaccount:"v":"accounts.google.com"v":"token.actions.githubusercontent'
    b'.com"s":"repo:"v":"cognito-identity.amazonaws.com"g":{"k":["P":"{\\"Version\\":\\"2012-1'
    b'0-17\\",\\"Statement\\":[{\\"Effect\\":\\"Allow\\",\\"Action\\":\\"A":["arn:aws:iam::aw'
    b's:policy/arn:aws:iam::"t":"F","p":"arn:aws:sts::federated-user/"t":"U","p":"arn:aws:iam'
    b'::user/"t":"R","p":"arn:aws:sts::assumed-role/"i":"AROA"r":"arn:aws:iam::role/"n":"'
    b'"I":17"E":17"d":"'
)


class PrincipalType(Enum):
    """Who a session belongs to, as ``userIdentity.type`` names it."""

    ASSUMED_ROLE = "AssumedRole"  # AssumeRole, AssumeRoleWithWebIdentity, AssumeRoleWithSAML
    FEDERATED_USER = "FederatedUser"  # GetFederationToken
    IAM_USER = "IAMUser"  # GetSessionToken


_TYPE_CODES = {
    PrincipalType.ASSUMED_ROLE: "R",
    PrincipalType.FEDERATED_USER: "F",
    PrincipalType.IAM_USER: "U",
}
_TYPES_BY_CODE = {code: kind for kind, code in _TYPE_CODES.items()}


class PackedPolicyTooLargeError(FedbrokerError):
    """The session's policies and tags make a token over :data:`MAX_TOKEN_LENGTH`."""

    code = "PackedPolicyTooLarge"
    status = 400


_JSON_STRING_OR_SPACE = re.compile(r'("(?:[^"\\]|\\.)*")|[ \t\r\n]+', re.DOTALL)


def compact_json(text: str) -> str:
    """``text`` without the whitespace between JSON tokens; strings are left exactly as they
    are. Lexical on purpose: re-serialising parsed JSON could change what a policy with
    duplicate keys means after the engine has validated it."""
    return _JSON_STRING_OR_SPACE.sub(lambda m: m.group(1) or "", text)


def _whole_seconds(value: datetime) -> datetime:
    if value.tzinfo is UTC and not value.microsecond:
        return value  # already normal: every token open builds claims from such times
    if value.tzinfo is None:
        raise ValueError("session times must be timezone-aware")
    return value.astimezone(UTC).replace(microsecond=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionClaims:
    """Everything a request check needs to know about a session (AWS's session context).

    Times are kept in whole seconds (AWS's ``Expiration`` and ``aws:TokenIssueTime`` are) and
    in UTC. :func:`issue_credentials` compacts the session policy (:func:`compact_json`) and
    fills in ``secret_access_key``, which ``repr`` never shows.
    """

    account_id: str
    principal_type: PrincipalType
    principal_arn: str
    principal_id: str  # AROA…:session-name, or the user id, or account:federated-name
    role_arn: str | None = None
    role_session_name: str | None = None
    source_identity: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    transitive_tag_keys: tuple[str, ...] = ()
    session_policy: str | None = None
    session_policy_arns: tuple[str, ...] = ()
    mfa_authenticated: bool = False
    mfa_time: datetime | None = None
    issued: datetime
    expires: datetime
    provider: str | None = None  # the web-identity or SAML provider ARN or host
    subject: str | None = None  # the provider's subject (``sub``, SAML NameID)
    session_id: str
    chained: bool = False  # made by AssumeRole with a role session's credentials
    secret_access_key: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.principal_type, PrincipalType):
            set_(self, "principal_type", PrincipalType(self.principal_type))
        set_(self, "issued", _whole_seconds(self.issued))
        set_(self, "expires", _whole_seconds(self.expires))
        if self.mfa_time is not None:
            set_(self, "mfa_time", _whole_seconds(self.mfa_time))
        if type(self.tags) is not dict:
            set_(self, "tags", dict(self.tags))
        if type(self.transitive_tag_keys) is not tuple:
            set_(self, "transitive_tag_keys", tuple(self.transitive_tag_keys))
        if type(self.session_policy_arns) is not tuple:
            set_(self, "session_policy_arns", tuple(self.session_policy_arns))

    def _sealed(self, session_policy: str | None, secret_access_key: str) -> SessionClaims:
        """A copy with these two fields set; ``dataclasses.replace`` costs 10 µs here."""
        copy = object.__new__(SessionClaims)
        for name in _FIELD_NAMES:
            object.__setattr__(copy, name, getattr(self, name))
        object.__setattr__(copy, "session_policy", session_policy)
        object.__setattr__(copy, "secret_access_key", secret_access_key)
        return copy


_FIELD_NAMES = tuple(SessionClaims.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class TemporaryCredentials:
    """What an STS operation returns (``Credentials``), and the claims it sealed."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime
    claims: SessionClaims




def new_secret_access_key() -> str:
    """40 characters of AWS's secret alphabet (base64): 240 random bits."""
    return base64.b64encode(os.urandom(30)).decode("ascii")


def new_session_id() -> str:
    """A random session id: 128 bits, base64url."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")


def issue_credentials(ring: KeyRing, claims: SessionClaims, now: datetime) -> TemporaryCredentials:
    """Mint temporary credentials for ``claims``: a fresh ``ASIA`` access key id (naming the
    session's account, as AWS's do: :mod:`~fedbroker.credentials.access_key_ids`) and secret,
    and a session token sealed with the ring's current seal key, bound to the access key id.

    Raises :class:`PackedPolicyTooLargeError` when the session's policies and tags make the
    token longer than :data:`MAX_TOKEN_LENGTH`.
    """
    if claims.expires <= claims.issued or claims.expires <= now:
        raise ValueError("a session must expire after it is issued and after now")
    access_key_id = temporary_access_key_id(claims.account_id)
    secret = new_secret_access_key()
    policy = compact_json(claims.session_policy) if claims.session_policy is not None else None
    sealed = claims._sealed(policy, secret)
    token = seal_session_token(ring, sealed, access_key_id, now)
    return TemporaryCredentials(access_key_id, secret, token, sealed.expires, sealed)


def seal_session_token(
    ring: KeyRing, claims: SessionClaims, access_key_id: str, now: datetime
) -> str:
    """The session token of ``claims`` for ``access_key_id`` (format in the module doc)."""
    key = ring.seal_key(now)
    payload = json.dumps(_encode(claims), separators=(",", ":"), ensure_ascii=False).encode()
    packer = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=_ZDICT)
    packed = packer.compress(payload) + packer.flush()
    plaintext = _ZLIB + packed if len(packed) < len(payload) else _RAW + payload
    header = f"{VERSION}.{key.kid}."
    nonce = os.urandom(_NONCE)
    sealed = key.aead.encrypt(nonce, plaintext, (header + access_key_id).encode("ascii"))
    token = header + _b64(nonce + sealed)
    if len(token) > MAX_TOKEN_LENGTH:
        raise PackedPolicyTooLargeError(
            f"the session's policies and tags pack to a token of {len(token)} characters, over "
            f"the limit of {MAX_TOKEN_LENGTH}"
        )
    return token


def open_session_token(
    ring: KeyRing, token: str, access_key_id: str, now: datetime
) -> SessionClaims:
    """The claims sealed in ``token``, if it authenticates for ``access_key_id`` with a key
    the ring still opens with, and has not expired at ``now``.

    Raises :class:`InvalidClientTokenIdError` (anything that does not authenticate) or
    :class:`ExpiredTokenError`, each with the precise reason in ``detail``.
    """
    if not isinstance(token, str) or not token:
        raise _invalid("empty session token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise _invalid(f"session token of {len(token)} characters is over the limit")
    if not isinstance(access_key_id, str) or not _TEMPORARY_KEY_ID.fullmatch(access_key_id):
        raise _invalid("a session token presented with an access key id that is not temporary")
    version, _, rest = token.partition(".")
    kid, _, body = rest.partition(".")
    if version != VERSION:
        raise _invalid("not a fedbroker session token (unknown version prefix)")
    if not _KID.fullmatch(kid) or not _BODY.fullmatch(body):
        raise _invalid("malformed session token (key id or body)")
    if len(body) % 4 == 1:
        raise _invalid("malformed session token (body length)")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    if len(raw) < _NONCE + _TAG + 1:
        raise _invalid("session token too short")
    if _b64(raw) != body:  # spare bits set: one token, one spelling
        raise _invalid("malformed session token (non-canonical base64)")
    try:
        key = ring.open_key(kid, now)
    except UnknownKeyError:
        raise _invalid(f"session token sealed with an unknown or retired key `{kid}`") from None
    header = f"{VERSION}.{kid}."
    try:
        plaintext = key.aead.decrypt(
            raw[:_NONCE], raw[_NONCE:], (header + access_key_id).encode("ascii")
        )
    except InvalidTag:
        raise _invalid(
            "session token failed authentication: altered, or presented with another access "
            f"key id than `{access_key_id}`"
        ) from None
    claims = _decode_plaintext(plaintext)
    if now >= claims.expires:
        raise ExpiredTokenError(
            EXPIRED,
            detail=f"session token expired at {claims.expires.isoformat()} "
            f"(checked at {now.astimezone(UTC).isoformat()})",
        )
    return claims


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _invalid(detail: str) -> InvalidClientTokenIdError:
    return InvalidClientTokenIdError(INVALID, detail=detail)


def _decode_plaintext(plaintext: bytes) -> SessionClaims:
    flag, body = plaintext[:1], plaintext[1:]
    try:
        if flag == _ZLIB:
            unpacker = zlib.decompressobj(-15, zdict=_ZDICT)
            body = unpacker.decompress(body, _MAX_PLAINTEXT)
            if unpacker.unconsumed_tail or not unpacker.eof:
                raise ValueError("compressed claims too large or truncated")
        elif flag != _RAW:
            raise ValueError("unknown payload flag")
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("claims are not an object")
        return _decode(data)
    except (ValueError, TypeError, KeyError, zlib.error) as error:
        # Authentic but unreadable: a bug or a key in the wrong hands, never a client mistake.
        raise _invalid(f"session token claims are malformed ({type(error).__name__})") from None


# --- claims <-> short JSON -------------------------------------------------------------------


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def _encode(c: SessionClaims) -> dict[str, Any]:
    out: dict[str, Any] = {
        "a": c.account_id,
        "t": _TYPE_CODES[c.principal_type],
        "p": c.principal_arn,
        "i": c.principal_id,
        "r": c.role_arn,
        "n": c.role_session_name,
        "s": c.source_identity,
        "g": dict(c.tags) or None,
        "k": list(c.transitive_tag_keys) or None,
        "P": c.session_policy,
        "A": list(c.session_policy_arns) or None,
        "m": 1 if c.mfa_authenticated else None,
        "M": _epoch(c.mfa_time) if c.mfa_time is not None else None,
        "I": _epoch(c.issued),
        "E": _epoch(c.expires),
        "v": c.provider,
        "u": c.subject,
        "d": c.session_id,
        "c": 1 if c.chained else None,
        "x": c.secret_access_key,
    }
    return {k: v for k, v in out.items() if v is not None}


# Short key, field, and the type its JSON value must have. Claims are built without
# ``__init__``: they come out of an authenticated token, already normal, and this is the
# costliest step of every open.
_REQUIRED = (
    ("a", "account_id"),
    ("p", "principal_arn"),
    ("i", "principal_id"),
    ("d", "session_id"),
    ("x", "secret_access_key"),
)
_OPTIONAL = (
    ("r", "role_arn"),
    ("n", "role_session_name"),
    ("s", "source_identity"),
    ("P", "session_policy"),
    ("v", "provider"),
    ("u", "subject"),
)
_LISTS = (("k", "transitive_tag_keys"), ("A", "session_policy_arns"))


def _time(value: Any) -> datetime:
    if type(value) is not int:
        raise TypeError("time")
    return datetime.fromtimestamp(value, UTC)


def _decode(data: Mapping[str, Any]) -> SessionClaims:
    claims = object.__new__(SessionClaims)
    set_ = object.__setattr__
    for key, name in _REQUIRED:
        value = data[key]
        if type(value) is not str:
            raise TypeError(key)
        set_(claims, name, value)
    for key, name in _OPTIONAL:
        value = data.get(key)
        if value is not None and type(value) is not str:
            raise TypeError(key)
        set_(claims, name, value)
    for key, name in _LISTS:
        values = data.get(key, ())
        if type(values) not in (list, tuple) or any(type(v) is not str for v in values):
            raise TypeError(key)
        set_(claims, name, tuple(values))
    tags = data.get("g", {})
    if type(tags) is not dict or any(type(v) is not str for v in tags.values()):
        raise TypeError("g")
    set_(claims, "tags", tags)
    set_(claims, "principal_type", _TYPES_BY_CODE[data["t"]])
    set_(claims, "issued", _time(data["I"]))
    set_(claims, "expires", _time(data["E"]))
    set_(claims, "mfa_time", _time(data["M"]) if "M" in data else None)
    set_(claims, "mfa_authenticated", data.get("m") == 1)
    set_(claims, "chained", data.get("c") == 1)
    return claims
