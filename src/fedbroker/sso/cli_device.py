"""Device authorization for ``fedbroker login --device-code`` (RFC 8628), framework-free.

Records (hashed keys, sealed, expiring): ``cli-device:<device_code>`` → the grant (pending,
approved with the approver's identity, or denied); ``cli-user-code:<user code>`` → the grant's
key, while it is pending; ``cli-device-poll:<device_code>`` → when the CLI last polled and at
what interval. The poll record is separate from the grant so that a poll can never overwrite
an approval written at the same moment.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from fedbroker.iam.context import Services
from fedbroker.sso.cli_sessions import CliAuthError, Issued, Records, clean_host, create_session
from fedbroker.sso.identity import SignedIn

DEVICE_LIFETIME = timedelta(minutes=10)
DEVICE_INTERVAL = 5  # seconds between polls (RFC 8628 §3.2 default)
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5: add 5 seconds on slow_down
# RFC 8628 §6.1: a user code of 8 characters from 20 consonants (no vowels, no look-alikes).
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8


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
class DeviceStart:
    device_code: str
    user_code: str
    expires_in: int
    interval: int


def normalize_user_code(text: str) -> str:
    """RFC 8628 §6.1: case and punctuation do not matter when the user types the code."""
    return "".join(c for c in text.upper() if c.isalnum())[:32]


def format_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def start_device(services: Services, host: str, source_ip: str, now: datetime) -> DeviceStart:
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
    records = Records(services)
    device_key = records.key("cli-device", device_code)
    # Kept past its expiry so that a late poll learns `expired_token`, not `invalid_grant`.
    keep = expires + DEVICE_LIFETIME
    records.put(device_key, grant.to_json(), keep, now)
    records.put(records.key("cli-user-code", user_code), device_key, expires, now)
    return DeviceStart(
        device_code,
        format_user_code(user_code),
        int(DEVICE_LIFETIME.total_seconds()),
        DEVICE_INTERVAL,
    )


def find_device(services: Services, user_code: str, now: datetime) -> tuple[str, DeviceGrant]:
    """The pending device authorization a user typed the code of (for the approval page)."""
    code = normalize_user_code(user_code)
    records = Records(services)
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
    records = Records(services)
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
    records = Records(services)
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


def _pace(records: Records, device_code: str, grant: DeviceGrant, now: datetime) -> None:
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
                "slow_down",
                f"polling too fast; wait {interval} seconds between polls",
                extra={"interval": interval},
            )
    records.put(key, json.dumps({"at": now.isoformat(), "interval": interval}), grant.expires, now)
