"""What the CLI credential helper keeps on the user's machine.

- The broker CLI session (its handle is a bearer secret), one per broker URL: in the OS keyring
  through the ``keyring`` package when a usable backend is there; when the only backend is
  keyring's ``fail`` or ``null`` one (no Secret Service, no macOS Keychain...) or it errors, in
  ``<state>/sessions/<sha256(url)>.json``, mode 0600 in a 0700 directory.
- Role credentials, one file per (broker, role, duration) in ``<state>/cache/``, mode 0600, used
  while more than 5 minutes remain (``credential-process``).

Files are written to a temporary file in the same directory, then renamed, so a reader never
sees half a file; ``O_EXCL`` + mode 0600 at creation, so the secret is never world-readable.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger("fedbroker.cli")

KEYRING_SERVICE = "fedbroker-cli"
REFRESH_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class StoredSession:
    url: str
    handle: str
    session_id: str
    expiration: str  # ISO 8601, UTC
    provider: str
    subject: str
    session_name: str

    def expires_at(self) -> datetime:
        return _parse_time(self.expiration)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only (0600), atomically."""
    _private_dir(path.parent)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_private(path: Path) -> str | None:
    """The file's text if it exists and nobody but the owner can read or write it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    if info.st_mode & 0o077 or info.st_uid != os.getuid():
        log.warning("ignoring %s: readable or writable by others", path)
        return None
    return path.read_text(encoding="utf-8")


# --- the OS keyring, when there is one ------------------------------------------------------


def _keyring() -> Any | None:
    """The ``keyring`` module when its backend can actually store secrets, else None."""
    try:
        import keyring
        from keyring.backends import fail, null
    except ImportError:  # pragma: no cover - a dependency; absent only in odd installs
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:
        return None
    if isinstance(backend, fail.Keyring | null.Keyring):
        return None
    inner = getattr(backend, "backends", None)
    if inner is not None and not [
        b for b in inner if not isinstance(b, fail.Keyring | null.Keyring)
    ]:
        return None  # a chainer with nothing usable in it
    return keyring


class SessionStore:
    """Broker CLI sessions: OS keyring first, else a user-only file."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "sessions"

    def where(self) -> str:
        return "the OS keyring" if _keyring() is not None else f"{self.dir} (mode 0600)"

    def _file(self, url: str) -> Path:
        return self.dir / f"{_key(url)}.json"

    def save(self, session: StoredSession) -> None:
        text = json.dumps(asdict(session))
        ring = _keyring()
        if ring is not None:
            try:
                ring.set_password(KEYRING_SERVICE, session.url, text)
                self._file(session.url).unlink(missing_ok=True)
                return
            except Exception as error:
                log.warning("the OS keyring refused the session (%s); using a file", error)
        write_private(self._file(session.url), text)

    def load(self, url: str) -> StoredSession | None:
        text: str | None = None
        ring = _keyring()
        if ring is not None:
            try:
                text = ring.get_password(KEYRING_SERVICE, url)
            except Exception as error:
                log.warning("the OS keyring could not be read (%s)", error)
        if text is None:
            text = _read_private(self._file(url))
        if text is None:
            return None
        try:
            return StoredSession(**json.loads(text))
        except (ValueError, TypeError):
            return None

    def delete(self, url: str) -> None:
        ring = _keyring()
        if ring is not None:
            with contextlib.suppress(Exception):  # nothing stored there is fine
                ring.delete_password(KEYRING_SERVICE, url)
        self._file(url).unlink(missing_ok=True)


# --- role credentials cache -----------------------------------------------------------------


class CredentialCache:
    """Per-role ``credential_process`` answers, used while more than 5 minutes remain."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "cache"

    def _file(self, url: str, role_arn: str, duration: int | None) -> Path:
        return self.dir / f"{_key(url, role_arn, str(duration or ''))}.json"

    def get(
        self, url: str, role_arn: str, duration: int | None, now: datetime
    ) -> dict[str, Any] | None:
        text = _read_private(self._file(url, role_arn, duration))
        if text is None:
            return None
        try:
            value = json.loads(text)["credentials"]
            expiration = _parse_time(str(value["Expiration"]))
        except (ValueError, KeyError, TypeError):
            return None
        if expiration - now <= REFRESH_MARGIN:
            return None
        return dict(value)

    def put(
        self, url: str, role_arn: str, duration: int | None, credentials: dict[str, Any]
    ) -> None:
        write_private(
            self._file(url, role_arn, duration),
            json.dumps({"url": url, "credentials": credentials}),
        )

    def clear(self, url: str) -> int:
        """Forget every cached credential of broker ``url``; how many were dropped."""
        dropped = 0
        if self.dir.is_dir():
            for path in self.dir.glob("*.json"):
                try:
                    owner = json.loads(path.read_text(encoding="utf-8")).get("url")
                except (OSError, ValueError, AttributeError):
                    owner = url  # unreadable: drop it too
                if owner == url:
                    path.unlink(missing_ok=True)
                    dropped += 1
        return dropped
