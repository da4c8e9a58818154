"""The key ring: seal keys for session tokens and signing keys for JWTs.

Rotation follows ``MultiFernet``: the newest ``active`` key of an algorithm seals (or signs),
and every key that is not ``retired`` opens (or verifies, i.e. is published in the JWKS).
``rotate`` adds a key and moves the one it replaces to ``retiring``; ``retire`` stops a key for
good. Keys live in the directory (``Store.add_key``/``list_keys``/``set_key_state``), their
private material sealed under the master key with the kid, purpose and algorithm as associated
data, so a copied row does not open as another key.

Every replica holds a :class:`KeyRing` and notices a rotation made anywhere through the
directory version, which every directory write bumps. Reading that version costs a database
round trip (≈ 125 µs on SQLite, more over a network), more than a whole token open, so the ring
looks at most once per ``check_interval`` of the ``now`` its callers pass (and at most once per
call), plus once when a token names a kid it does not know (a key another replica has just
added), rate-limited so that garbage tokens cannot turn into database reads. When the version
has moved the ring lists the keys again and parses only the keys it has not seen before: an
unrelated directory write costs one query, never a key load.

Rotation never needs a restart; its propagation bound is ``check_interval`` (default 1 s).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fedbroker.credentials import jws
from fedbroker.credentials.jws import SigningKey
from fedbroker.credentials.sealing import MasterKey
from fedbroker.directory.model import KeyAlgorithm, KeyPurpose, KeyRecord, KeyState
from fedbroker.directory.store import Store
from fedbroker.errors import EntityAlreadyExistsError, FedbrokerError, InvalidInputError

# What ensure_keys creates on a new directory: session tokens need a seal key; ES256 is the
# cheap signer, RS256 the one every relying party accepts.
FIRST_KEYS = (KeyAlgorithm.A256GCM, KeyAlgorithm.ES256, KeyAlgorithm.RS256, KeyAlgorithm.ES384)
DEFAULT_ALGORITHM = {KeyPurpose.SEAL: KeyAlgorithm.A256GCM, KeyPurpose.SIGN: KeyAlgorithm.ES256}
_KID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_TICK = timedelta(microseconds=1)


class KeyRingError(FedbrokerError):
    """The ring cannot do what was asked (no key for an algorithm, a key that is not there)."""

    code = "InternalFailure"
    status = 500


class UnknownKeyError(KeyRingError):
    """No key with this kid opens or verifies (never existed, not yet seen, or retired)."""


@dataclass(frozen=True, slots=True)
class SealKey:
    """A loaded AES-256-GCM key of the ring."""

    kid: str
    aead: AESGCM = field(repr=False)


def private_context(record: KeyRecord) -> bytes:
    """Associated data binding sealed private material to its key's identity."""
    identity = f"{record.kid}/{record.purpose.value}/{record.algorithm.value}"
    return b"fedbroker/key-ring/" + identity.encode()


def new_kid(algorithm: KeyAlgorithm) -> str:
    """``es256-k2m4q7xa``: the algorithm for people reading logs, 40 random bits to be unique."""
    return f"{algorithm.value.lower()}-" + "".join(secrets.choice(_KID_ALPHABET) for _ in range(8))


def _newest(records: list[KeyRecord]) -> KeyRecord | None:
    return max(records, key=lambda r: (r.created, r.kid), default=None)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    version: int
    records: tuple[KeyRecord, ...]
    sealer: SealKey | None
    openers: Mapping[str, SealKey]
    signers: Mapping[KeyAlgorithm, SigningKey]
    verifiers: Mapping[str, SigningKey]


class KeyRing:
    """Seal and signing keys from the directory, reloaded when the directory changes.

    ``check_interval`` bounds how stale a ring may be; ``recheck_unknown_after`` how often a
    token with an unknown kid may send the ring to the database. Safe to share between threads.
    """

    def __init__(
        self,
        store: Store,
        master_key: MasterKey,
        *,
        check_interval: timedelta = timedelta(seconds=1),
        recheck_unknown_after: timedelta = timedelta(milliseconds=100),
    ) -> None:
        self._store = store
        self._master_key = master_key
        self._check_interval = check_interval
        self._recheck_unknown_after = recheck_unknown_after
        self._snapshot: _Snapshot | None = None
        self._checked_at: datetime | None = None
        self._loaded: dict[str, SealKey | SigningKey] = {}  # by kid; material never changes
        self._lock = threading.Lock()

    # --- reading the directory --------------------------------------------------------------

    def refresh(self, now: datetime | None = None) -> None:
        """Look at the directory version now and reload if it moved."""
        with self._lock:
            self._check(now)

    def _check(self, now: datetime | None) -> _Snapshot:
        # Read the version before the keys: a write in between makes the next check reload
        # again, instead of leaving newer keys unnoticed under an older version.
        version = self._store.directory_version()
        if now is not None:
            self._checked_at = now
        if self._snapshot is None or self._snapshot.version != version:
            self._snapshot = self._build(version, self._store.list_keys())
        return self._snapshot

    def _current(self, now: datetime | None) -> tuple[_Snapshot, bool]:
        """The snapshot to use for one call, and whether this call looked at the directory."""
        snapshot, checked_at = self._snapshot, self._checked_at
        due = (
            snapshot is None
            or now is None
            or checked_at is None
            or now < checked_at
            or now - checked_at >= self._check_interval
        )
        if not due:
            assert snapshot is not None
            return snapshot, False
        if snapshot is None:
            with self._lock:
                return self._check(now), True
        # Another thread already checking: use what we have rather than queue behind it.
        if not self._lock.acquire(blocking=False):
            return snapshot, False
        try:
            return self._check(now), True
        finally:
            self._lock.release()

    def _recheck_for(self, kid: str, now: datetime, checked: bool) -> _Snapshot | None:
        """A kid this replica does not know yet may be one another replica just added."""
        checked_at = self._checked_at
        if checked or (checked_at is not None and now - checked_at < self._recheck_unknown_after):
            return None
        with self._lock:
            return self._check(now)

    def _build(self, version: int, records: list[KeyRecord]) -> _Snapshot:
        live = [r for r in records if r.state is not KeyState.RETIRED]
        loaded = {r.kid: self._load(r) for r in live}
        self._loaded = loaded  # retired keys are dropped from memory too
        openers = {kid: k for kid, k in loaded.items() if isinstance(k, SealKey)}
        verifiers = {kid: k for kid, k in loaded.items() if isinstance(k, SigningKey)}
        active = [r for r in live if r.state is KeyState.ACTIVE]
        newest_seal = _newest([r for r in active if r.purpose is KeyPurpose.SEAL])
        signers: dict[KeyAlgorithm, SigningKey] = {}
        for algorithm in KeyAlgorithm:
            newest = _newest([r for r in active if r.algorithm is algorithm])
            if newest is not None and algorithm.purpose is KeyPurpose.SIGN:
                signers[algorithm] = verifiers[newest.kid]
        return _Snapshot(
            version,
            tuple(records),
            openers[newest_seal.kid] if newest_seal is not None else None,
            openers,
            signers,
            verifiers,
        )

    def _load(self, record: KeyRecord) -> SealKey | SigningKey:
        cached = self._loaded.get(record.kid)
        if cached is not None:
            return cached
        private = self._master_key.open(record.sealed_private, private_context(record))
        if record.algorithm is KeyAlgorithm.A256GCM:
            return SealKey(record.kid, AESGCM(private))
        return jws.load_signing_key(record.kid, record.algorithm, private)

    # --- use --------------------------------------------------------------------------------

    def records(self, now: datetime | None = None) -> list[KeyRecord]:
        """Every key of the ring as the directory has it, retired ones included, oldest first."""
        return list(self._current(now)[0].records)

    def seal_key(self, now: datetime) -> SealKey:
        """The key that seals now: the newest active seal key."""
        sealer = self._current(now)[0].sealer
        if sealer is None:
            raise KeyRingError("the key ring has no active seal key; run `fedbroker keys rotate`")
        return sealer

    def open_key(self, kid: str, now: datetime) -> SealKey:
        """The seal key named ``kid`` if it still opens; :class:`UnknownKeyError` otherwise."""
        snapshot, checked = self._current(now)
        key = snapshot.openers.get(kid)
        if key is None and (again := self._recheck_for(kid, now, checked)) is not None:
            key = again.openers.get(kid)
        if key is None:
            raise UnknownKeyError(f"no seal key `{kid}` opens (unknown or retired)")
        return key

    def signing_key(self, algorithm: KeyAlgorithm | str, now: datetime | None = None) -> SigningKey:
        """The key that signs ``algorithm`` now: the newest active one."""
        wanted = KeyAlgorithm(algorithm)
        key = self._current(now)[0].signers.get(wanted)
        if key is None:
            raise KeyRingError(
                f"the key ring has no active {wanted.value} signing key; run "
                f"`fedbroker keys rotate --algorithm {wanted.value}`"
            )
        return key

    def verification_key(self, kid: str, now: datetime) -> SigningKey:
        """The signing key named ``kid`` if it still verifies; :class:`UnknownKeyError` if not."""
        snapshot, checked = self._current(now)
        key = snapshot.verifiers.get(kid)
        if key is None and (again := self._recheck_for(kid, now, checked)) is not None:
            key = again.verifiers.get(kid)
        if key is None:
            raise UnknownKeyError(f"no signing key `{kid}` verifies (unknown or retired)")
        return key

    def sign_jwt(
        self,
        claims: Mapping[str, Any],
        algorithm: KeyAlgorithm | str = "ES256",
        *,
        now: datetime | None = None,
    ) -> str:
        """A compact JWT of ``claims`` signed by the newest active key of ``algorithm``, with
        its ``kid`` in the header (RFC 7515 §4.1.4). Claims are the caller's: this adds none."""
        return self.signing_key(algorithm, now).sign(claims)

    def jwks(self, now: datetime | None = None) -> dict[str, list[dict[str, str]]]:
        """The public JWK Set (RFC 7517 §5) of every signing key that verifies, newest first:
        ``kid``, ``kty``, ``alg``, ``use=sig`` and the public parameters."""
        snapshot = self._current(now)[0]
        records = sorted(
            (r for r in snapshot.records if r.kid in snapshot.verifiers),
            key=lambda r: (r.created, r.kid),
            reverse=True,
        )
        return {"keys": [dict(snapshot.verifiers[r.kid].public_jwk) for r in records]}

    # --- change -----------------------------------------------------------------------------

    def ensure_keys(self, now: datetime) -> list[KeyRecord]:
        """Create a first A256GCM seal key and first ES256, RS256 and ES384 signing keys where the
        directory has no active key of that algorithm (start-up). Returns what it created.

        Replicas starting together may each create one; the newest wins and the others are
        moved to ``retiring`` (they still open or verify), so the ring converges."""
        active = {r.algorithm for r in self._store.list_keys() if r.state is KeyState.ACTIVE}
        created = [self._add(algorithm, now) for algorithm in FIRST_KEYS if algorithm not in active]
        self.refresh(now)
        return created

    def rotate(
        self, purpose: KeyPurpose, algorithm: KeyAlgorithm | None, now: datetime
    ) -> KeyRecord:
        """Add a new key of ``algorithm`` (default: A256GCM to seal, ES256 to sign) and move
        the active key it replaces to ``retiring``. Returns the new key."""
        algorithm = algorithm or DEFAULT_ALGORITHM[purpose]
        if algorithm.purpose is not purpose:
            raise InvalidInputError(
                f"`{algorithm.value}` is not a {purpose.value} algorithm; use "
                f"{', '.join(a.value for a in KeyAlgorithm if a.purpose is purpose)}"
            )
        record = self._add(algorithm, now)
        self.refresh(now)
        return record

    def retire(self, kid: str, now: datetime) -> KeyRecord:
        """Stop ``kid`` for good: tokens sealed and JWTs signed with it no longer open or
        verify. The key that currently seals or signs cannot be retired: rotate first."""
        records = self._store.list_keys()
        record = next((r for r in records if r.kid == kid), None)
        if record is None:
            raise InvalidInputError(f"the key ring has no key `{kid}`")
        if record.state is KeyState.RETIRED:
            raise InvalidInputError(f"the key `{kid}` is already retired")
        same = [
            r for r in records if r.algorithm is record.algorithm and r.state is KeyState.ACTIVE
        ]
        if record.state is KeyState.ACTIVE and _newest(same) == record:
            raise InvalidInputError(
                f"the key `{kid}` is the active {record.algorithm.value} key; rotate first, "
                "then retire it once the tokens it sealed or signed have expired"
            )
        self._store.set_key_state(kid, KeyState.RETIRED, now)
        self.refresh(now)
        return replace(record, state=KeyState.RETIRED, retired_at=now)

    def _add(self, algorithm: KeyAlgorithm, now: datetime) -> KeyRecord:
        private = jws.generate_private(algorithm)
        public = "" if algorithm is KeyAlgorithm.A256GCM else jws.public_pem(private)
        # "Newest" is (created, kid). A key added after another must sort after it even when
        # the clock has not moved (two rotations in one tick, a fixed test clock), so its
        # creation time is nudged a microsecond past the newest key it follows.
        latest = _newest(
            [r for r in self._store.list_keys(algorithm.purpose) if r.algorithm is algorithm]
        )
        created = now if latest is None or now > latest.created else latest.created + _TICK
        for _attempt in range(3):
            kid = new_kid(algorithm)
            record = KeyRecord(kid, algorithm.purpose, algorithm, b"", public, created)
            sealed = self._master_key.seal(private, private_context(record))
            record = replace(record, sealed_private=sealed)
            try:
                self._store.add_key(record)
            except EntityAlreadyExistsError:  # 40 random bits met an existing kid
                continue
            break
        else:  # pragma: no cover - three collisions of 40 random bits
            raise KeyRingError("could not find a free key id")
        # Whatever else is active for this algorithm steps down, newest first wins: two
        # rotations (or start-ups) racing on several replicas converge on one active key.
        active = [
            r
            for r in self._store.list_keys(algorithm.purpose)
            if r.algorithm is algorithm and r.state is KeyState.ACTIVE
        ]
        winner = _newest(active)
        for other in active:
            if winner is not None and other.kid != winner.kid:
                self._store.set_key_state(other.kid, KeyState.RETIRING, now)
        if winner is not None and winner.kid != record.kid:
            return replace(record, state=KeyState.RETIRING, retiring_since=now)
        return record
