"""Session tokens already opened, so a session's next request skips the decryption.

Opening a token (base64, AES-GCM, DEFLATE, JSON) is the largest single cost of checking a
request signed with temporary credentials, and a session signs many requests with the same
token. An opened token is kept by its exact text and access key id; each reuse still checks
what can change after the first open, in the same order and with the same errors as
:func:`~fedbroker.credentials.session_token.open_session_token`: the key it was sealed with
still opens (not retired), and the token has not expired at ``now``. Revocation is checked by
the caller on every request, cached or not.
"""

from __future__ import annotations

import threading
from datetime import datetime

from fedbroker.credentials.keyring import KeyRing, UnknownKeyError
from fedbroker.credentials.session_token import SessionClaims, open_session_token


class OpenedTokens:
    """A bounded memo of :func:`open_session_token`. Thread-safe."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._max_entries = max_entries
        self._opened: dict[tuple[str, str], tuple[str, SessionClaims]] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._opened.clear()

    def open(self, ring: KeyRing, token: str, access_key_id: str, now: datetime) -> SessionClaims:
        """What ``open_session_token(ring, token, access_key_id, now)`` returns or raises."""
        key = (token, access_key_id)
        found = self._opened.get(key)
        if found is not None:
            kid, claims = found
            if now < claims.expires and _still_opens(ring, kid, now):
                return claims
            with self._lock:
                self._opened.pop(key, None)
        claims = open_session_token(ring, token, access_key_id, now)  # raises, precisely
        with self._lock:
            if len(self._opened) >= self._max_entries:
                del self._opened[next(iter(self._opened))]  # the oldest
            self._opened[key] = (token.split(".", 2)[1], claims)
        return claims


def _still_opens(ring: KeyRing, kid: str, now: datetime) -> bool:
    try:
        ring.open_key(kid, now)
    except UnknownKeyError:
        return False
    return True
