"""Broker CLI sessions and the two ways a CLI gets one (issue 6), framework-free.

A CLI session is what ``fedbroker login`` ends with: a random handle (the bearer the CLI keeps
in the OS keyring or a user-only file) naming a server-side record that holds the signed-in
identity (:class:`~fedbroker.sso.identity.SignedIn`: what was proven at sign-in, never a token
or assertion). Role credentials are issued from it by :func:`fedbroker.sso.service.issue`,
which evaluates the role's trust policy again on every exchange, so a revoked or changed role
takes effect at the next refresh.

Records live in the store's sealed, expiring key-value table (the one broker web sessions use:
shared by every worker and replica), each under the SHA-256 of a domain-separated secret, so a
copy of the database yields no usable handle, code or device code:

- ``cli-session:<handle>`` → the session (lifetime: ``cli_session_lifetime`` setting, 8 h);
- ``cli-code:<code>`` → a one-time authorization code of the loopback flow (RFC 6749 §4.1 with
  PKCE S256, RFC 7636; loopback redirect URIs as RFC 8252 §7.3), valid 2 minutes, redeemed once;
- ``cli-device:<device_code>``, ``cli-user-code:<user code>``, ``cli-device-poll:<device_code>``
  → a device authorization (RFC 8628), valid 10 minutes. The poll record is separate from the
  grant so that a poll can never overwrite an approval written at the same moment.

Every function raises :class:`CliAuthError` carrying the RFC 6749 §5.2 / RFC 8628 §3.5 error
code; the web layer renders it as RFC 6749 JSON.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fedbroker.errors import FedbrokerError
from fedbroker.iam.context import Services
from fedbroker.sso.identity import SignedIn

CLIENT_ID = "fedbroker-cli"
CODE_LIFETIME = timedelta(minutes=2)
DEVICE_LIFETIME = timedelta(minutes=10)
DEVICE_INTERVAL = 5  # seconds between polls (RFC 8628 §3.2 default)
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5: add 5 seconds on slow_down
DEFAULT_LIFETIME = timedelta(hours=8)
# RFC 8628 §6.1: a user code of 8 characters from 20 consonants (no vowels, no look-alikes).
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
HOST_MAX = 128


class CliAuthError(Exception):
    """An OAuth-shaped refusal: ``error`` (RFC 6749 §5.2 / RFC 8628 §3.5 / RFC 6750 §3.1),
    ``description`` (safe to show), ``detail`` (log and audit only), HTTP ``status``."""

    def __init__(
        self,
        error: str,
        description: str,
        detail: str | None = None,
        status: int = 400,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.detail = detail or description
        self.status = status
        self.extra = extra or {}


@dataclass(frozen=True)
class CliSession:
    """A broker CLI session as the broker keeps it (the handle itself is never stored)."""

    id: str  # public id (audit events, whoami, listings); not a secret
    who: SignedIn
    created: datetime
    expires: datetime
    host: str  # the requesting host the CLI reported
    source_ip: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "who": self.who.to_json(),
                "created": self.created.isoformat(),
                "expires": self.expires.isoformat(),
                "host": self.host,
                "source_ip": self.source_ip,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> CliSession:
        data = json.loads(text)
        return cls(
            id=data["id"],
            who=SignedIn.from_json(data["who"]),
            created=datetime.fromisoformat(data["created"]),
            expires=datetime.fromisoformat(data["expires"]),
            host=data["host"],
            source_ip=data["source_ip"],
        )


@dataclass(frozen=True)
class DeviceGrant:
    """A device authorization as shown on the approval page."""

    user_code: str
    host: str
    source_ip: str
    created: datetime
    expires: datetime
    status: str  # pending | approved | denied
    who: SignedIn | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "user_code": self.user_code,
                "host": self.host,
                "source_ip": self.source_ip,
                "created": self.created.isoformat(),
                "expires": self.expires.isoformat(),
                "status": self.status,
                "who": self.who.to_json() if self.who is not None else None,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> DeviceGrant:
        data = json.loads(text)
        return cls(
            user_code=data["user_code"],
            host=data["host"],
            source_ip=data["source_ip"],
            created=datetime.fromisoformat(data["created"]),
            expires=datetime.fromisoformat(data["expires"]),
            status=data["status"],
            who=SignedIn.from_json(data["who"]) if data["who"] else None,
        )


@dataclass(frozen=True)
class Issued:
    """A new CLI session: the handle goes to the CLI once, never anywhere else."""

    handle: str
    session: CliSession


@dataclass(frozen=True)
class DeviceStart:
    device_code: str
    user_code: str
    expires_in: int
    interval: int


# --- the sealed key-value records ------------------------------------------------------------


class _Records:
    def __init__(self, services: Services | None = None, **parts: Any) -> None:
        self.store = services.store if services is not None else parts["store"]
        self.master_key = services.master_key if services is not None else parts["master_key"]

    @staticmethod
    def key(namespace: str, secret: str) -> str:
        return hashlib.sha256(f"{namespace}:{secret}".encode()).hexdigest()

    def put(self, key: str, value: str, until: datetime, now: datetime) -> None:
        sealed = self.master_key.seal(value.encode(), _context(key))
        self.store.put_web_session(key, base64.b64encode(sealed).decode(), until, now)

    def get(self, key: str, now: datetime) -> str | None:
        sealed = self.store.get_web_session(key, now)
        if sealed is None:
            return None
        try:
            return self.master_key.open(base64.b64decode(sealed), _context(key)).decode()
        except (FedbrokerError, ValueError):
            return None

    def delete(self, key: str) -> None:
        self.store.delete_web_session(key)

    def once(self, key: str, until: datetime, now: datetime) -> bool:
        """True the first time ``key`` is presented (atomic across replicas)."""
        # The replay table's key is 64 characters: a hash of the record's key, domain-separated.
        return self.store.remember_assertion(self.key("cli-once", key), until, now)


def _context(key: str) -> bytes:
    return b"fedbroker/cli/" + key.encode()


def clean_host(host: str) -> str:
    """The requesting host name as the CLI reported it, reduced to printable ASCII."""
    text = "".join(c for c in host if c.isascii() and c.isprintable())[:HOST_MAX].strip()
    return text or "unknown"


# --- CLI sessions ----------------------------------------------------------------------------


def create_session(
    services: Services,
    who: SignedIn,
    host: str,
    source_ip: str,
    lifetime: timedelta,
    now: datetime,
) -> Issued:
    handle = secrets.token_urlsafe(32)
    expires = now + lifetime
    if who.session_ends_by is not None:  # a SAML sign-in's SessionNotOnOrAfter
        expires = min(expires, who.session_ends_by)
    session = CliSession(
        id="cli-" + secrets.token_hex(8),
        who=who,
        created=now,
        expires=expires,
        host=clean_host(host),
        source_ip=source_ip,
    )
    records = _Records(services)
    records.put(records.key("cli-session", handle), session.to_json(), session.expires, now)
    return Issued(handle, session)


def find_session(services: Services, handle: str, now: datetime) -> CliSession:
    """The live session named by ``handle``; ``invalid_token`` (RFC 6750 §3.1) otherwise."""
    if not handle or len(handle) > 256:
        raise CliAuthError(
            "invalid_token", _SESSION_ENDED, "no or oversize bearer handle", status=401
        )
    records = _Records(services)
    text = records.get(records.key("cli-session", handle), now)
    if text is None:
        raise CliAuthError(
            "invalid_token", _SESSION_ENDED, "unknown, expired or revoked CLI session", 401
        )
    session = CliSession.from_json(text)
    if now >= session.expires:
        raise CliAuthError("invalid_token", _SESSION_ENDED, "CLI session expired", 401)
    if _revoked(records, session, now):
        raise CliAuthError(
            "invalid_token", _SESSION_ENDED, f"CLI session {session.id} revoked at the broker", 401
        )
    return session


def revoke_session(services: Services, handle: str, now: datetime) -> CliSession | None:
    """End the session named by ``handle`` (RFC 7009 §2.2: unknown handles are not an error)."""
    try:
        session = find_session(services, handle, now)
    except CliAuthError:
        return None
    records = _Records(services)
    records.delete(records.key("cli-session", handle))
    return session


_SESSION_ENDED = "the CLI session has expired or was revoked; run `fedbroker login`"


# --- revocation by an administrator (``fedbroker sessions revoke-cli``) ---------------------
# The broker keeps no list of sessions to walk (they are stored under hashes of their handles),
# so an administrator's revocation is a marker that every use of a session checks: "sessions
# of this person created before T" or "the session with this id". A marker is kept as long as
# a session it covers could live (``keep_until``), then the store drops it.


def _subject_key(records: _Records, account_id: str, provider: str, subject: str) -> str:
    return records.key("cli-revoked-subject", json.dumps([account_id, provider, subject]))


def revoke_subject(
    store: Any,
    master_key: Any,
    account_id: str,
    provider: str,
    subject: str,
    before: datetime,
    keep_until: datetime,
    now: datetime,
) -> None:
    """End every CLI session of ``subject`` (signed in through ``provider``) created before
    ``before``."""
    records = _Records(store=store, master_key=master_key)
    key = _subject_key(records, account_id, provider, subject)
    records.put(key, json.dumps({"before": before.isoformat()}), keep_until, now)


def revoke_session_id(
    store: Any, master_key: Any, session_id: str, keep_until: datetime, now: datetime
) -> None:
    """End the CLI session whose public id (audit events: ``cliSessionId``) is ``session_id``."""
    records = _Records(store=store, master_key=master_key)
    records.put(records.key("cli-revoked-id", session_id), "{}", keep_until, now)


def _revoked(records: _Records, session: CliSession, now: datetime) -> bool:
    if records.get(records.key("cli-revoked-id", session.id), now) is not None:
        return True
    who = session.who
    text = records.get(_subject_key(records, who.account_id, who.provider_name, who.subject), now)
    return text is not None and session.created < datetime.fromisoformat(json.loads(text)["before"])


# --- loopback authorization (RFC 6749 §4.1 + RFC 7636 + RFC 8252) ----------------------------


@dataclass(frozen=True)
class AuthorizeRequest:
    redirect_uri: str
    code_challenge: str
    state: str
    host: str


def check_authorize(params: dict[str, str]) -> AuthorizeRequest:
    """Validate the authorization request. A bad ``redirect_uri`` must never be redirected to
    (RFC 6749 §4.1.2.1), so every error here is shown on the broker's page instead."""
    if params.get("client_id", CLIENT_ID) != CLIENT_ID:
        raise CliAuthError(
            "invalid_request", "unknown client", f"client_id {params['client_id'][:64]!r}"
        )
    redirect_uri = params.get("redirect_uri", "")
    check_loopback(redirect_uri)
    if params.get("response_type", "code") != "code":
        raise CliAuthError("unsupported_response_type", "only the code response type is supported")
    if params.get("code_challenge_method") != "S256":
        raise CliAuthError("invalid_request", "PKCE with code_challenge_method S256 is required")
    challenge = params.get("code_challenge", "")
    if not 43 <= len(challenge) <= 128 or not _B64URL.issuperset(challenge):
        raise CliAuthError("invalid_request", "the code_challenge is malformed")
    state = params.get("state", "")
    if len(state) > 512:
        raise CliAuthError("invalid_request", "the state is too long")
    return AuthorizeRequest(redirect_uri, challenge, state, clean_host(params.get("host", "")))


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def check_loopback(redirect_uri: str) -> None:
    """RFC 8252 §7.3: ``http`` to the loopback IP literal, any port, no fragment."""
    try:
        parts = urllib.parse.urlsplit(redirect_uri)
        port = parts.port
    except ValueError:
        raise CliAuthError("invalid_request", "the redirect_uri is malformed") from None
    if (
        parts.scheme != "http"
        or parts.hostname not in ("127.0.0.1", "::1")
        or port is None
        or parts.fragment
        or parts.username is not None
        or len(redirect_uri) > 512
    ):
        raise CliAuthError(
            "invalid_request",
            "the redirect_uri must be http://127.0.0.1:PORT/... (a loopback address)",
            f"redirect_uri {redirect_uri[:256]!r}",
        )


def issue_code(
    services: Services, who: SignedIn, request: AuthorizeRequest, source_ip: str, now: datetime
) -> str:
    """A one-time code for ``request``, bound to its PKCE challenge and redirect URI."""
    code = secrets.token_urlsafe(32)
    record = json.dumps(
        {
            "who": who.to_json(),
            "redirect_uri": request.redirect_uri,
            "code_challenge": request.code_challenge,
            "host": request.host,
            "source_ip": source_ip,
            "expires": (now + CODE_LIFETIME).isoformat(),
        }
    )
    records = _Records(services)
    records.put(records.key("cli-code", code), record, now + CODE_LIFETIME, now)
    return code


def redeem_code(
    services: Services,
    code: str,
    verifier: str,
    redirect_uri: str,
    source_ip: str,
    lifetime: timedelta,
    now: datetime,
) -> Issued:
    """RFC 6749 §4.1.3 with RFC 7636 §4.6: the code once, its verifier, its redirect URI."""
    if not code or len(code) > 256:
        raise CliAuthError("invalid_request", "the code is missing")
    if not 43 <= len(verifier) <= 128 or not _B64URL.union("~.").issuperset(verifier):
        raise CliAuthError("invalid_request", "the code_verifier is missing or malformed")
    records = _Records(services)
    key = records.key("cli-code", code)
    text = records.get(key, now)
    if text is None or not records.once(key, now + CODE_LIFETIME, now):
        raise CliAuthError(
            "invalid_grant", "the code is invalid, expired or was already used", status=400
        )
    records.delete(key)
    record = json.loads(text)
    if now >= datetime.fromisoformat(record["expires"]):
        raise CliAuthError("invalid_grant", "the code is invalid, expired or was already used")
    challenge = _b64(hashlib.sha256(verifier.encode()).digest())
    if not hmac.compare_digest(challenge.encode(), str(record["code_challenge"]).encode()):
        raise CliAuthError(
            "invalid_grant", "the code_verifier does not match", "PKCE verification failed"
        )
    if redirect_uri != record["redirect_uri"]:
        raise CliAuthError(
            "invalid_grant", "the redirect_uri does not match the authorization request"
        )
    who = SignedIn.from_json(record["who"])
    return create_session(services, who, str(record["host"]), source_ip, lifetime, now)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- device authorization (RFC 8628) ---------------------------------------------------------


def normalize_user_code(text: str) -> str:
    """RFC 8628 §6.1: case and punctuation do not matter when the user types the code."""
    return "".join(c for c in text.upper() if c.isalnum())[:32]


def format_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def start_device(
    services: Services, host: str, source_ip: str, now: datetime
) -> DeviceStart:
    """RFC 8628 §3.1/§3.2: a device code (the CLI's secret) and a user code (to type)."""
    device_code = secrets.token_urlsafe(32)
    user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
    expires = now + DEVICE_LIFETIME
    grant = DeviceGrant(
        user_code=user_code,
        host=clean_host(host),
        source_ip=source_ip,
        created=now,
        expires=expires,
        status="pending",
    )
    records = _Records(services)
    device_key = records.key("cli-device", device_code)
    # Kept past its expiry so that a late poll learns `expired_token`, not `invalid_grant`.
    keep = expires + DEVICE_LIFETIME
    records.put(device_key, grant.to_json(), keep, now)
    records.put(records.key("cli-user-code", user_code), device_key, expires, now)
    return DeviceStart(
        device_code, format_user_code(user_code), int(DEVICE_LIFETIME.total_seconds()),
        DEVICE_INTERVAL,
    )


def find_device(services: Services, user_code: str, now: datetime) -> tuple[str, DeviceGrant]:
    """The pending device authorization a user typed the code of (for the approval page)."""
    code = normalize_user_code(user_code)
    records = _Records(services)
    device_key = records.get(records.key("cli-user-code", code), now) if code else None
    text = records.get(device_key, now) if device_key else None
    if device_key is None or text is None:
        raise CliAuthError("invalid_grant", "that code is unknown or has expired")
    grant = DeviceGrant.from_json(text)
    if grant.status != "pending" or now >= grant.expires:
        raise CliAuthError("invalid_grant", "that code is unknown or has expired")
    return device_key, grant


def decide_device(
    services: Services, user_code: str, who: SignedIn, approve: bool, now: datetime
) -> DeviceGrant:
    """Approve (with the signed-in identity) or deny a pending device authorization."""
    device_key, grant = find_device(services, user_code, now)
    records = _Records(services)
    decided = DeviceGrant(
        user_code=grant.user_code,
        host=grant.host,
        source_ip=grant.source_ip,
        created=grant.created,
        expires=grant.expires,
        status="approved" if approve else "denied",
        who=who if approve else None,
    )
    records.put(device_key, decided.to_json(), grant.expires + DEVICE_LIFETIME, now)
    records.delete(records.key("cli-user-code", grant.user_code))
    return decided


def poll_device(
    services: Services, device_code: str, source_ip: str, lifetime: timedelta, now: datetime
) -> Issued:
    """RFC 8628 §3.4/§3.5: the CLI's poll; a session once approved, else the RFC's errors."""
    if not device_code or len(device_code) > 256:
        raise CliAuthError("invalid_request", "the device_code is missing")
    records = _Records(services)
    device_key = records.key("cli-device", device_code)
    text = records.get(device_key, now)
    if text is None:
        raise CliAuthError("invalid_grant", "the device_code is unknown")
    grant = DeviceGrant.from_json(text)
    if now >= grant.expires:
        raise CliAuthError("expired_token", "the device code has expired; start again")
    if grant.status == "denied":
        raise CliAuthError("access_denied", "the sign-in was denied")
    if grant.status == "approved" and grant.who is not None:
        if not records.once(device_key, grant.expires + DEVICE_LIFETIME, now):
            raise CliAuthError("invalid_grant", "the device code was already used")
        records.delete(device_key)
        return create_session(services, grant.who, grant.host, source_ip, lifetime, now)
    _pace(records, device_code, grant, now)
    raise CliAuthError("authorization_pending", "the sign-in has not been approved yet")


def _pace(records: _Records, device_code: str, grant: DeviceGrant, now: datetime) -> None:
    """``slow_down`` when polled faster than the interval, which then grows (RFC 8628 §3.5)."""
    key = records.key("cli-device-poll", device_code)
    text = records.get(key, now)
    interval = DEVICE_INTERVAL
    if text is not None:
        last = json.loads(text)
        interval = int(last["interval"])
        if now < datetime.fromisoformat(last["at"]) + timedelta(seconds=interval):
            interval += SLOW_DOWN_STEP
            records.put(
                key,
                json.dumps({"at": now.isoformat(), "interval": interval}),
                grant.expires,
                now,
            )
            raise CliAuthError(
                "slow_down", f"polling too fast; wait {interval} seconds between polls",
                extra={"interval": interval},
            )
    records.put(key, json.dumps({"at": now.isoformat(), "interval": interval}), grant.expires, now)
