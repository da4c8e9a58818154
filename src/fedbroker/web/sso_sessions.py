"""Broker web sessions of the browser sign-in: server-side, in the store (shared by every
worker and replica), sealed with the master key; the browser holds only a random id.

A session holds the logins started in this browser and not finished (OIDC ``state``, ``nonce``
and PKCE verifier; SAML AuthnRequest ids), the CSRF token of its forms, and once someone has
signed in, the :class:`~fedbroker.sso.SignedIn` identity as JSON: what the sign-in proved,
never the ID token or the assertion. Idle timeout and absolute lifetime as issue 5 asks
(15 minutes, 8 hours by default).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from fedbroker.errors import FedbrokerError
from fedbroker.iam.context import Services

log = logging.getLogger("fedbroker.sso")

IDLE = timedelta(minutes=15)
LIFETIME = timedelta(hours=8)


@dataclass
class PendingLogin:
    """A login started in this browser: ``state`` is the key (OIDC ``state``; SAML: the
    AuthnRequest id that ``InResponseTo`` must name)."""

    account_id: str
    provider: str
    state: str
    nonce: str = ""
    verifier: str = ""
    kind: str = "oidc"


@dataclass
class WebSession:
    created: datetime
    seen: datetime
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    pending: dict[str, PendingLogin] = field(default_factory=dict)
    signed_in: str | None = None  # SignedIn.to_json() once someone has signed in

    def to_json(self) -> str:
        return json.dumps(
            {
                "created": self.created.isoformat(),
                "seen": self.seen.isoformat(),
                "csrf": self.csrf,
                "pending": [asdict(p) for p in self.pending.values()],
                "signed_in": self.signed_in,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> WebSession:
        data = json.loads(text)
        pending = [PendingLogin(**p) for p in data["pending"]]
        return cls(
            created=datetime.fromisoformat(data["created"]),
            seen=datetime.fromisoformat(data["seen"]),
            csrf=data["csrf"],
            pending={p.state: p for p in pending},
            signed_in=data["signed_in"],
        )


class SessionTable:
    """Broker web sessions, kept in the store (shared by every worker and replica) sealed with
    the master key; the browser holds only a random id (the cookie), stored as its hash."""

    def __init__(
        self, services: Services, idle: timedelta = IDLE, lifetime: timedelta = LIFETIME
    ) -> None:
        self.store = services.store
        self.master_key = services.master_key
        self.idle = idle
        self.lifetime = lifetime

    @staticmethod
    def _key(sid: str) -> str:
        return hashlib.sha256(sid.encode()).hexdigest()

    def get(self, sid: str | None, now: datetime) -> WebSession | None:
        if not sid or len(sid) > 128:
            return None
        key = self._key(sid)
        sealed = self.store.get_web_session(key, now)
        if sealed is None:
            return None
        try:
            text = self.master_key.open(base64.b64decode(sealed), _context(key)).decode()
            session = WebSession.from_json(text)
        except (FedbrokerError, ValueError, KeyError, TypeError) as error:
            log.warning("unreadable web session dropped: %s", error)
            return None
        if now - session.seen > self.idle or now - session.created > self.lifetime:
            return None
        return session

    def save(self, sid: str, session: WebSession, now: datetime) -> None:
        session.seen = now
        key = self._key(sid)
        sealed = self.master_key.seal(session.to_json().encode(), _context(key))
        until = min(now + self.idle, session.created + self.lifetime)
        self.store.put_web_session(key, base64.b64encode(sealed).decode(), until, now)

    def create(self, now: datetime) -> tuple[str, WebSession]:
        return secrets.token_urlsafe(32), WebSession(now, now)

    def delete(self, sid: str | None) -> None:
        if sid and len(sid) <= 128:
            self.store.delete_web_session(self._key(sid))


def _context(key: str) -> bytes:
    return b"fedbroker/web-session/" + key.encode()
