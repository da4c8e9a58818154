"""Broker CLI sessions (issue 6), framework-free.

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
- one-time codes of the loopback flow (:mod:`fedbroker.sso.cli_loopback`) and device
  authorizations (:mod:`fedbroker.sso.cli_device`), the two ways a CLI gets a session.

Every function raises :class:`CliAuthError` carrying the RFC 6749 §5.2 / RFC 8628 §3.5 error
code; the web layer renders it as RFC 6749 JSON.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fedbroker.errors import FedbrokerError
from fedbroker.iam.context import Services
from fedbroker.sso.identity import SignedIn

CLIENT_ID = "fedbroker-cli"
DEFAULT_LIFETIME = timedelta(hours=8)
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
class Issued:
    """A new CLI session: the handle goes to the CLI once, never anywhere else."""

    handle: str
    session: CliSession


# --- the sealed key-value records ------------------------------------------------------------


class Records:
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
    records = Records(services)
    records.put(records.key("cli-session", handle), session.to_json(), session.expires, now)
    return Issued(handle, session)


def find_session(services: Services, handle: str, now: datetime) -> CliSession:
    """The live session named by ``handle``; ``invalid_token`` (RFC 6750 §3.1) otherwise."""
    if not handle or len(handle) > 256:
        raise CliAuthError(
            "invalid_token", _SESSION_ENDED, "no or oversize bearer handle", status=401
        )
    records = Records(services)
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
    records = Records(services)
    records.delete(records.key("cli-session", handle))
    return session


_SESSION_ENDED = "the CLI session has expired or was revoked; run `fedbroker login`"


# --- revocation by an administrator (``fedbroker sessions revoke-cli``) ---------------------
# The broker keeps no list of sessions to walk (they are stored under hashes of their handles),
# so an administrator's revocation is a marker that every use of a session checks: "sessions
# of this person created before T" or "the session with this id". A marker is kept as long as
# a session it covers could live (``keep_until``), then the store drops it.


def _subject_key(records: Records, account_id: str, provider: str, subject: str) -> str:
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
    records = Records(store=store, master_key=master_key)
    key = _subject_key(records, account_id, provider, subject)
    records.put(key, json.dumps({"before": before.isoformat()}), keep_until, now)


def revoke_session_id(
    store: Any, master_key: Any, session_id: str, keep_until: datetime, now: datetime
) -> None:
    """End the CLI session whose public id (audit events: ``cliSessionId``) is ``session_id``."""
    records = Records(store=store, master_key=master_key)
    records.put(records.key("cli-revoked-id", session_id), "{}", keep_until, now)


def _revoked(records: Records, session: CliSession, now: datetime) -> bool:
    if records.get(records.key("cli-revoked-id", session.id), now) is not None:
        return True
    who = session.who
    text = records.get(_subject_key(records, who.account_id, who.provider_name, who.subject), now)
    return text is not None and session.created < datetime.fromisoformat(json.loads(text)["before"])
