"""A read-through view of the directory for the check on every use: no database read per request.

A check needs the account and the role (or user) behind a credential, and the directory version
that compiled policy sets are keyed on. Each of those is a database round trip (≈ 125 µs on
SQLite, more over a network): more than the whole check is allowed to cost. The view answers
them from memory and looks at the directory version at most once per ``check_interval`` of
the ``now`` its owner passes to :meth:`DirectoryView.refresh`; when the version has moved it
forgets everything it holds. Every other :class:`~fedbroker.directory.store.Store` method goes
straight to the store.

So a directory change (a policy edit, a deleted role, a revocation) reaches a checker within
``check_interval`` (default one second), the same bound as key-ring rotation. Calls made
without a ``refresh`` (or with no ``now``) see a version read on first use and then the last
refreshed one: the view never reads the clock.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from fedbroker.directory.model import Account, Entity, Kind
from fedbroker.directory.store import Store
from fedbroker.errors import NoSuchEntityError

_MAX_ENTRIES = 8192  # accounts and entities remembered before the view starts over


class DirectoryView:
    """A :class:`Store` whose per-request reads are served from memory. Thread-safe.

    Misses are remembered too (a deleted role stays deleted until the version moves), so a
    stream of requests for something that does not exist costs no database reads either.
    """

    def __init__(self, store: Store, *, check_interval: timedelta = timedelta(seconds=1)) -> None:
        self.store = store
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._version: int | None = None
        self._checked_at: datetime | None = None
        self._accounts: dict[str, Account | NoSuchEntityError] = {}
        self._entities: dict[tuple[str, Kind, str], Entity | NoSuchEntityError] = {}
        self._by_id: dict[str, Entity | NoSuchEntityError] = {}
        self._hint: int | None = None
        hinted = getattr(store, "change_hint", None)
        self._change_hint: Any = hinted if callable(hinted) else _no_hint

    def __repr__(self) -> str:
        return f"DirectoryView(version={self._version}, check_interval={self.check_interval!r})"

    def __getattr__(self, name: str) -> Any:
        # Everything the view does not cache (writes, listings, the key ring) is the store's.
        return getattr(self.store, name)

    def refresh(self, now: datetime) -> None:
        """Look at the directory version if ``check_interval`` has passed since the last look
        (or the clock went backwards), and forget everything if it moved."""
        hint = self._change_hint()
        if hint is not None:
            # The store says cheaply whether anything was written: look at the version only
            # then, so changes are seen at once and no clock is involved.
            if hint == self._hint and self._version is not None:
                return
            with self._lock:
                self._hint = hint
                self._observe(self.store.directory_version())
            return
        checked_at = self._checked_at
        if (
            checked_at is not None
            and self._version is not None
            and checked_at <= now < checked_at + self.check_interval
        ):
            return
        # One thread looks; the others go on with what the view holds.
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._checked_at = now
            self._observe(self.store.directory_version())
        finally:
            self._lock.release()

    def directory_version(self) -> int:
        version = self._version
        if version is None:
            with self._lock:
                self._observe(self.store.directory_version())
                version = self._version
        assert version is not None
        return version

    def _observe(self, version: int) -> None:
        """Called with the lock held."""
        if version != self._version:
            self._accounts = {}
            self._entities = {}
            self._by_id = {}
            self._version = version

    def get_account(self, account_id: str) -> Account:
        found = self._accounts.get(account_id)
        if found is None:
            version = self.directory_version()
            found = _read(self.store.get_account, account_id)
            self._remember(version, "_accounts", account_id, found)
        if isinstance(found, NoSuchEntityError):
            raise NoSuchEntityError(found.message)
        return found

    def get_entity(self, account_id: str, kind: Kind, name: str) -> Entity:
        key = (account_id, kind, name.lower())
        found = self._entities.get(key)
        if found is None:
            version = self.directory_version()
            found = _read(self.store.get_entity, account_id, kind, name)
            self._remember(version, "_entities", key, found)
        if isinstance(found, NoSuchEntityError):
            raise NoSuchEntityError(found.message)
        return found

    def get_entity_by_id(self, entity_id: str) -> Entity:
        found = self._by_id.get(entity_id)
        if found is None:
            version = self.directory_version()
            found = _read(self.store.get_entity_by_id, entity_id)
            self._remember(version, "_by_id", entity_id, found)
        if isinstance(found, NoSuchEntityError):
            raise NoSuchEntityError(found.message)
        return found

    def _remember(self, version: int, table_name: str, key: Any, value: Any) -> None:
        with self._lock:
            # A value read under an older version may already be stale: do not keep it.
            if self._version != version:
                return
            table: dict[Any, Any] = getattr(self, table_name)
            if len(table) >= _MAX_ENTRIES:
                table.clear()
            table[key] = value


def _no_hint() -> None:
    return None


def _read(reader: Any, *args: Any) -> Any:
    try:
        return reader(*args)
    except NoSuchEntityError as exc:
        return exc
