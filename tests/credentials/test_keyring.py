"""The key ring: rotation (newest seals, older open until retired), replicas that notice a
rotation without a restart, private material sealed at rest, the JWKS and signed JWTs."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import ECKey, KeySet, RSAKey

from fedbroker.credentials import jws, keyring
from fedbroker.credentials.keyring import KeyRing, KeyRingError, UnknownKeyError, private_context
from fedbroker.credentials.sealing import MasterKey, SealError
from fedbroker.directory import ids
from fedbroker.directory.model import (
    Account,
    KeyAlgorithm,
    KeyPurpose,
    KeyRecord,
    KeyState,
)
from fedbroker.directory.sql import SqlStore
from fedbroker.directory.store import Store
from fedbroker.errors import InvalidInputError

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MASTER = MasterKey(bytes(range(32)), development=True)
SEAL, SIGN = KeyPurpose.SEAL, KeyPurpose.SIGN
A256GCM, ES256, RS256, EDDSA = (
    KeyAlgorithm.A256GCM,
    KeyAlgorithm.ES256,
    KeyAlgorithm.RS256,
    KeyAlgorithm.EDDSA,
)


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class CountingStore:
    """A store that counts how often the ring asks for the directory version and the keys."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.version_reads = 0
        self.key_lists = 0

    def directory_version(self) -> int:
        self.version_reads += 1
        return self.inner.directory_version()

    def list_keys(self, purpose: KeyPurpose | None = None) -> list[KeyRecord]:
        self.key_lists += 1
        return self.inner.list_keys(purpose)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "directory.db"


@pytest.fixture
def store(database: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{database}")
    yield opened
    opened.close()


@pytest.fixture
def replica_store(database: Path, store: SqlStore) -> Iterator[SqlStore]:
    """Another store on the same database, as another replica has."""
    opened = SqlStore(f"sqlite:///{database}", auto_migrate=False)
    yield opened
    opened.close()


@pytest.fixture
def ring(store: SqlStore) -> KeyRing:
    made = KeyRing(store, MASTER)
    made.ensure_keys(T0)
    return made


def by_algorithm(ring: KeyRing, algorithm: KeyAlgorithm) -> list[KeyRecord]:
    return [r for r in ring.records(None) if r.algorithm is algorithm]


def stored_active_key(store: Store, algorithm: KeyAlgorithm, created: datetime) -> KeyRecord:
    """A key as another replica's ring writes it, before that ring moves older keys aside."""
    record = KeyRecord(keyring.new_kid(algorithm), algorithm.purpose, algorithm, b"", "", created)
    sealed = MASTER.seal(jws.generate_private(algorithm), private_context(record))
    record = KeyRecord(record.kid, record.purpose, algorithm, sealed, "", created, KeyState.ACTIVE)
    store.add_key(record)
    return record


# --- first keys and rotation ------------------------------------------------------------------


def test_ensure_keys_creates_a_seal_key_and_the_first_signing_keys_once(store: SqlStore) -> None:
    ring = KeyRing(store, MASTER)
    created = ring.ensure_keys(T0)
    assert sorted(r.algorithm.value for r in created) == ["A256GCM", "ES256", "ES384", "RS256"]
    assert all(r.state is KeyState.ACTIVE and r.created == T0 for r in created)
    assert {r.kid: r.purpose for r in created} == {r.kid: r.algorithm.purpose for r in created}
    assert ring.ensure_keys(later(60)) == []
    assert KeyRing(store, MASTER).ensure_keys(later(120)) == []
    assert store.list_keys() == sorted(created, key=lambda r: (r.created, r.kid))


def test_seal_keys_hold_no_public_part_and_signing_keys_a_public_pem(ring: KeyRing) -> None:
    for record in ring.records():
        if record.purpose is SEAL:
            assert record.public_pem == ""
        else:
            assert record.public_pem.startswith("-----BEGIN PUBLIC KEY-----")


def test_newest_seal_key_seals_and_older_ones_open_after_rotation(ring: KeyRing) -> None:
    first = ring.seal_key(T0)
    sealed = first.aead.encrypt(b"\0" * 12, b"session", b"aad")

    new = ring.rotate(SEAL, A256GCM, later(10))
    assert new.state is KeyState.ACTIVE and new.kid != first.kid
    assert ring.seal_key(later(10)).kid == new.kid
    states = {r.kid: r.state for r in by_algorithm(ring, A256GCM)}
    assert states == {first.kid: KeyState.RETIRING, new.kid: KeyState.ACTIVE}
    # the retiring key still opens what it sealed
    opener = ring.open_key(first.kid, later(10))
    assert opener.aead.decrypt(b"\0" * 12, sealed, b"aad") == b"session"


def test_retired_keys_refuse(ring: KeyRing) -> None:
    first = ring.seal_key(T0).kid
    ring.rotate(SEAL, None, later(1))
    retired = ring.retire(first, later(2))
    assert retired.state is KeyState.RETIRED and retired.retired_at == later(2)
    with pytest.raises(UnknownKeyError):
        ring.open_key(first, later(2))
    [stored] = [r for r in ring.records() if r.kid == first]
    assert (stored.state, stored.retiring_since, stored.retired_at) == (
        KeyState.RETIRED,
        later(1),
        later(2),
    )


def test_the_key_in_use_cannot_be_retired(ring: KeyRing) -> None:
    current = ring.seal_key(T0).kid
    with pytest.raises(InvalidInputError, match="rotate first"):
        ring.retire(current, later(1))
    assert ring.open_key(current, later(1)).kid == current


def test_retiring_an_unknown_or_retired_key_is_refused(ring: KeyRing) -> None:
    with pytest.raises(InvalidInputError, match="no key"):
        ring.retire("a256gcm-nosuchky", T0)
    old = ring.signing_key(ES256, T0).kid
    ring.rotate(SIGN, ES256, later(1))
    ring.retire(old, later(2))
    with pytest.raises(InvalidInputError, match="already retired"):
        ring.retire(old, later(3))


def test_rotations_in_one_instant_each_make_the_new_key_the_active_one(ring: KeyRing) -> None:
    """The clock need not move between rotations (kids are random; order must not be)."""
    for _ in range(12):
        new = ring.rotate(SEAL, A256GCM, T0)
        assert ring.seal_key(T0).kid == new.kid
        active = [r.kid for r in by_algorithm(ring, A256GCM) if r.state is KeyState.ACTIVE]
        assert active == [new.kid]


def test_rotation_checks_that_the_algorithm_fits_the_purpose(ring: KeyRing) -> None:
    with pytest.raises(InvalidInputError, match="not a seal algorithm"):
        ring.rotate(SEAL, ES256, T0)
    with pytest.raises(InvalidInputError, match="not a sign algorithm"):
        ring.rotate(SIGN, A256GCM, T0)
    assert ring.rotate(SIGN, None, T0).algorithm is ES256  # the default signer


def test_rotation_touches_only_its_own_algorithm(ring: KeyRing) -> None:
    before = {r.kid: r.state for r in ring.records()}
    ring.rotate(SIGN, RS256, later(1))
    after = {r.kid: r.state for r in ring.records()}
    changed = {kid for kid in before if before[kid] != after[kid]}
    [old_rs256] = [r for r in by_algorithm(ring, RS256) if r.state is KeyState.RETIRING]
    assert changed == {old_rs256.kid}


def test_several_active_keys_converge_on_the_newest(store: SqlStore) -> None:
    """Replicas that start (or rotate) together may each add a key; the newest seals, the
    others step down to retiring and keep opening."""
    ring = KeyRing(store, MASTER)
    ring.ensure_keys(T0)
    # The other replica's key, added at the same time and not yet stepped down.
    theirs = stored_active_key(store, A256GCM, later(1))
    ours = ring.rotate(SEAL, A256GCM, later(2))
    active = [r for r in by_algorithm(ring, A256GCM) if r.state is KeyState.ACTIVE]
    assert [r.kid for r in active] == [ours.kid]
    assert ring.open_key(theirs.kid, later(2)).kid == theirs.kid
    assert ring.seal_key(later(2)).kid == ours.kid


def test_an_empty_ring_says_what_to_do(store: SqlStore) -> None:
    ring = KeyRing(store, MASTER)
    with pytest.raises(KeyRingError, match="fedbroker keys rotate"):
        ring.seal_key(T0)
    with pytest.raises(KeyRingError, match="EdDSA"):
        ring.sign_jwt({"sub": "x"}, "EdDSA", now=T0)
    assert ring.jwks(T0) == {"keys": []}


# --- replicas and reloading -------------------------------------------------------------------


def test_another_replica_sees_a_rotation_without_restart(
    ring: KeyRing, replica_store: SqlStore
) -> None:
    replica = KeyRing(replica_store, MASTER)
    old = replica.seal_key(T0).kid
    new = ring.rotate(SEAL, None, later(0.2)).kid

    # Within the check interval the replica does not look; tokens it seals still open
    # everywhere (the old key is retiring), and the new kid is found on first sight.
    assert replica.seal_key(later(0.5)).kid == old
    assert replica.open_key(new, later(0.5)).kid == new
    # After the interval it seals with the new key.
    assert replica.seal_key(later(1.5)).kid == new


def test_a_replica_with_a_zero_interval_looks_on_every_call(
    ring: KeyRing, replica_store: SqlStore
) -> None:
    replica = KeyRing(replica_store, MASTER, check_interval=timedelta(0))
    replica.seal_key(T0)
    new = ring.rotate(SEAL, None, T0).kid
    assert replica.seal_key(T0).kid == new


def test_the_directory_is_read_at_most_once_per_interval(store: SqlStore) -> None:
    KeyRing(store, MASTER).ensure_keys(T0)
    counting = CountingStore(store)
    ring = KeyRing(counting, MASTER)
    kid = ring.seal_key(T0).kid
    assert counting.version_reads == 1
    for step in range(100):
        ring.open_key(kid, later(step / 200))
        ring.seal_key(later(step / 200))
    assert counting.version_reads == 1
    ring.seal_key(later(1))
    assert counting.version_reads == 2


def test_unknown_kids_send_the_ring_to_the_directory_at_a_bounded_rate(store: SqlStore) -> None:
    KeyRing(store, MASTER).ensure_keys(T0)
    counting = CountingStore(store)
    ring = KeyRing(counting, MASTER)
    ring.seal_key(T0)
    for step in range(50):  # 50 garbage kids within 0.49 s
        with pytest.raises(UnknownKeyError):
            ring.open_key(f"a256gcm-garbage{step:02d}", later(step / 100))
    # one read at start, then at most one per 100 ms of garbage
    assert counting.version_reads <= 1 + 5


def test_an_unrelated_directory_write_reparses_no_key(
    ring: KeyRing, store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    real = jws.load_signing_key

    def counting_load(kid: str, algorithm: KeyAlgorithm, private_der: bytes) -> jws.SigningKey:
        loads.append(kid)
        return real(kid, algorithm, private_der)

    monkeypatch.setattr(jws, "load_signing_key", counting_load)
    store.create_account(Account(ids.new_account_id(), None, "r@example.com", "x", T0))
    ring.refresh(later(5))
    assert loads == []
    new = ring.rotate(SIGN, RS256, later(6))
    assert loads == [new.kid]  # only the new key is parsed


def test_a_ring_under_another_master_key_fails_loudly(ring: KeyRing, store: SqlStore) -> None:
    other = KeyRing(store, MasterKey(bytes(32), development=True))
    with pytest.raises(SealError):
        other.seal_key(T0)


# --- at rest ----------------------------------------------------------------------------------


def test_private_material_is_sealed_at_rest(ring: KeyRing, store: SqlStore, database: Path) -> None:
    ring.rotate(SIGN, EDDSA, later(1))
    store.close()  # checkpoint the WAL so the file holds everything
    on_disk = b"".join(
        path.read_bytes() for path in database.parent.iterdir() if path.name.startswith("directory")
    )
    records = SqlStore(f"sqlite:///{database}", auto_migrate=False).list_keys()
    assert len(records) == 5  # four first keys and the EdDSA rotation
    assert b"PRIVATE KEY" not in on_disk
    for record in records:
        private = MASTER.open(record.sealed_private, private_context(record))
        assert private not in on_disk
        assert base64.b64encode(private) not in on_disk
        assert private[-32:] not in on_disk  # no tail of the material either
        if record.public_pem:
            assert record.public_pem.encode() in on_disk  # the search does find stored text


def test_sealed_material_is_bound_to_its_key(ring: KeyRing, store: SqlStore) -> None:
    """A row's sealed material copied onto another kid does not open (associated data)."""
    seal = next(r for r in store.list_keys(SEAL))
    forged = KeyRecord(
        "a256gcm-forged00", SEAL, A256GCM, seal.sealed_private, "", later(1), KeyState.ACTIVE
    )
    store.add_key(forged)
    with pytest.raises(SealError):
        KeyRing(store, MASTER).seal_key(later(1))


# --- JWKS and JWTs ----------------------------------------------------------------------------


def test_jwks_publishes_every_signing_key_that_verifies(ring: KeyRing) -> None:
    old_es = ring.signing_key(ES256, T0).kid
    ring.rotate(SIGN, ES256, later(1))
    ring.rotate(SIGN, EDDSA, later(2))
    ring.rotate(SIGN, ES256, later(3))
    ring.retire(old_es, later(4))
    jwks = ring.jwks(later(4))
    assert set(jwks) == {"keys"}
    published = {k["kid"]: k for k in jwks["keys"]}
    expected = {
        r.kid for r in ring.records() if r.purpose is SIGN and r.state is not KeyState.RETIRED
    }
    assert set(published) == expected
    assert old_es not in published
    for key in jwks["keys"]:
        assert key["use"] == "sig"
        assert {"d", "p", "q", "dp", "dq", "qi"}.isdisjoint(key)  # public parameters only
        if key["alg"] in ("ES256", "ES384"):
            assert (key["kty"], key["crv"], set(key)) == (
                "EC",
                "P-256" if key["alg"] == "ES256" else "P-384",
                {"kid", "kty", "alg", "use", "crv", "x", "y"},
            )
        elif key["alg"] == "RS256":
            assert (key["kty"], key["e"], set(key)) == (
                "RSA",
                "AQAB",
                {"kid", "kty", "alg", "use", "n", "e"},
            )
            assert len(base64.urlsafe_b64decode(key["n"] + "==")) * 8 == jws.RSA_KEY_BITS
        else:
            assert (key["alg"], key["kty"], key["crv"]) == ("EdDSA", "OKP", "Ed25519")
    json.dumps(jwks)  # serialisable as it is


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_jwts_verify_with_the_public_key_and_the_jwks(ring: KeyRing, algorithm: str) -> None:
    claims = {"iss": "https://broker.example", "sub": "alice", "aud": "sts", "exp": 1714568400}
    token = ring.sign_jwt(claims, algorithm, now=T0)
    kid = ring.signing_key(algorithm, T0).kid
    [record] = [r for r in ring.records() if r.kid == kid]

    key_type = ECKey if algorithm == "ES256" else RSAKey
    from_pem = key_type.import_key(record.public_pem)
    decoded = jwt.decode(token, from_pem, algorithms=[algorithm])
    assert decoded.header == {"typ": "JWT", "alg": algorithm, "kid": kid}
    assert decoded.claims == claims

    key_set = KeySet.import_key_set(ring.jwks(T0))  # type: ignore[arg-type]
    assert jwt.decode(token, key_set, algorithms=[algorithm]).claims == claims
    with pytest.raises(BadSignatureError):
        jwt.decode(token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB"), from_pem, [algorithm])


def test_eddsa_jwts_verify_with_the_published_key(ring: KeyRing) -> None:
    ring.rotate(SIGN, EDDSA, later(1))
    token = ring.sign_jwt({"sub": "alice"}, KeyAlgorithm.EDDSA, now=later(1))
    header, payload, signature = token.split(".")
    [jwk] = [k for k in ring.jwks(later(1))["keys"] if k["alg"] == "EdDSA"]
    public = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(jwk["x"] + "="))
    public.verify(base64.urlsafe_b64decode(signature + "=="), f"{header}.{payload}".encode())
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {
        "typ": "JWT",
        "alg": "EdDSA",
        "kid": jwk["kid"],
    }


def test_jwts_are_signed_by_the_newest_key_and_old_ones_still_verify(ring: KeyRing) -> None:
    old_token = ring.sign_jwt({"n": 1}, now=T0)
    new_kid = ring.rotate(SIGN, ES256, later(1)).kid
    new_token = ring.sign_jwt({"n": 2}, now=later(1))
    key_set = KeySet.import_key_set(ring.jwks(later(1)))  # type: ignore[arg-type]
    assert jwt.decode(new_token, key_set, algorithms=["ES256"]).header["kid"] == new_kid
    assert jwt.decode(old_token, key_set, algorithms=["ES256"]).claims == {"n": 1}
    assert ring.verification_key(new_kid, later(1)).kid == new_kid
