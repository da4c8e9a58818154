"""Broker web sessions of the browser sign-in: server-side, in the store (shared by every
worker and replica), sealed with the master key; the browser holds only a random id.

Idle timeout and absolute lifetime as issue 5 asks (15 minutes, 8 hours).
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
    account_id: str
    provider: str
    state: str
    nonce: str
    verifier: str


@dataclass
class WebSession:
    created: datetime
    seen: datetime
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    pending: dict[str, PendingLogin] = field(default_factory=dict)
    id_token: str | None = None
    session_name: str | None = None
    offered: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "created": self.created.isoformat(),
                "seen": self.seen.isoformat(),
                "csrf": self.csrf,
                "pending": [asdict(p) for p in self.pending.values()],
                "id_token": self.id_token,
                "session_name": self.session_name,
                "offered": list(self.offered),
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
            id_token=data["id_token"],
            session_name=data["session_name"],
            offered=tuple(data["offered"]),
        )


class SessionTable:
    """Broker web sessions, kept in the store (shared by every worker and replica) sealed with
    the master key; the browser holds only a random id (the cookie), stored as its hash."""

    def __init__(self, services: Services) -> None:
        self.store = services.store
        self.master_key = services.master_key

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
        if now - session.seen > IDLE or now - session.created > LIFETIME:
            return None
        return session

    def save(self, sid: str, session: WebSession, now: datetime) -> None:
        session.seen = now
        key = self._key(sid)
        sealed = self.master_key.seal(session.to_json().encode(), _context(key))
        until = min(now + IDLE, session.created + LIFETIME)
        self.store.put_web_session(key, base64.b64encode(sealed).decode(), until, now)

    def create(self, now: datetime) -> tuple[str, WebSession]:
        return secrets.token_urlsafe(32), WebSession(now, now)


def _context(key: str) -> bytes:
    return b"fedbroker/web-session/" + key.encode()
