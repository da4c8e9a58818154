"""Revoking temporary credentials before they expire.

Three scopes, as the issue asks and as AWS's "revoke older sessions" does for roles (but
enforced by the broker, not by a hand-written policy):

* every session of a role issued before a time (kept on the role: ``revoked_before``);
* one session, by its session id;
* every session of a source identity issued before a time.

The last two are kept in the account's settings with the time after which they can be
forgotten (no session lives longer than :data:`LONGEST_SESSION`). Every check on use reads them
through the directory (cached per directory version), so a revocation applies to the next
request on every replica that sees the change.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from fedbroker.credentials.session_token import SessionClaims
from fedbroker.directory.model import Account, Entity, Kind
from fedbroker.directory.store import Store

LONGEST_SESSION = timedelta(hours=36)  # GetSessionToken's maximum; roles allow at most 12 hours
_KEY = "revocations"


def _stamp(moment: datetime) -> str:
    return moment.isoformat()


def revoked_reason(account: Account, role: Entity | None, claims: SessionClaims) -> str | None:
    """Why this session is revoked, or ``None`` when it is not."""
    if role is not None:
        before = role.attrs.get("revoked_before")
        if isinstance(before, str) and claims.issued < datetime.fromisoformat(before):
            return f"sessions of role `{role.name}` issued before {before} are revoked"
    revocations = account.settings.get(_KEY)
    if not isinstance(revocations, dict):
        return None
    sessions = revocations.get("sessions")
    if isinstance(sessions, dict) and claims.session_id in sessions:
        return f"session `{claims.session_id}` is revoked"
    identities = revocations.get("source_identities")
    if claims.source_identity is not None and isinstance(identities, dict):
        entry = identities.get(claims.source_identity)
        if isinstance(entry, dict):
            before = datetime.fromisoformat(str(entry["before"]))
            if claims.issued < before:
                return f"sessions of source identity `{claims.source_identity}` are revoked"
    return None


def revoke_role_sessions(store: Store, role: Entity, before: datetime) -> Entity:
    """Refuse every session of ``role`` issued before ``before``."""
    if role.kind is not Kind.ROLE:
        raise ValueError("not a role")
    updated = replace(role, attrs={**role.attrs, "revoked_before": _stamp(before)})
    store.update_entity(updated)
    return updated


def revoke_session(store: Store, account: Account, session_id: str, now: datetime) -> None:
    _update(store, account, now, "sessions", session_id, {"until": _stamp(now + LONGEST_SESSION)})


def revoke_source_identity(
    store: Store, account: Account, source_identity: str, now: datetime
) -> None:
    entry = {"before": _stamp(now), "until": _stamp(now + LONGEST_SESSION)}
    _update(store, account, now, "source_identities", source_identity, entry)


def _update(
    store: Store, account: Account, now: datetime, scope: str, key: str, entry: dict[str, str]
) -> None:
    fresh = store.get_account(account.id)
    revocations = dict(fresh.settings.get(_KEY) or {})  # type: ignore[call-overload]
    entries: dict[str, dict[str, str]] = {}
    for name, value in dict(revocations.get(scope) or {}).items():
        # Forget what can no longer matter: no session outlives LONGEST_SESSION.
        if isinstance(value, dict) and datetime.fromisoformat(str(value["until"])) > now:
            entries[name] = value
    entries[key] = entry
    revocations[scope] = entries
    store.update_account(replace(fresh, settings={**fresh.settings, _KEY: revocations}))
