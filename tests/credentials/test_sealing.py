"""Secrets at rest: the master key, sealing, password hashing."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from fedbroker.credentials.passwords import hash_password, verify_password
from fedbroker.credentials.sealing import MasterKeyError, SealError, load_master_key


def test_development_key_is_generated_private_and_refused_outside_dev(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = load_master_key(path, None, dev_mode=True)
    assert key.development
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_master_key(path, None, dev_mode=True).kid == key.kid  # stable across starts
    with pytest.raises(MasterKeyError, match="development master key"):
        load_master_key(path, None, dev_mode=False)
    with pytest.raises(MasterKeyError, match="no master key"):
        load_master_key(tmp_path / "absent.key", None, dev_mode=False)


def test_production_key_from_environment(tmp_path: Path) -> None:
    raw = base64.b64encode(os.urandom(32)).decode()
    key = load_master_key(tmp_path / "unused", raw, dev_mode=False)
    assert not key.development
    assert raw not in repr(key)
    with pytest.raises(MasterKeyError, match="32 bytes"):
        load_master_key(tmp_path / "unused", base64.b64encode(b"short").decode(), False)
    with pytest.raises(MasterKeyError, match="not base64"):
        load_master_key(tmp_path / "unused", "%%%", False)


def test_sealed_values_are_bound_to_their_context_and_key(tmp_path: Path) -> None:
    key = load_master_key(tmp_path / "a.key", None, True)
    other = load_master_key(tmp_path / "b.key", None, True)
    sealed = key.seal(b"wJalrXUtnFEMI/K7MDENG", b"AKIA1")
    assert b"wJalrXUtnFEMI" not in sealed
    assert key.open(sealed, b"AKIA1") == b"wJalrXUtnFEMI/K7MDENG"
    with pytest.raises(SealError):
        key.open(sealed, b"AKIA2")  # copied onto another record
    with pytest.raises(SealError):
        other.open(sealed, b"AKIA1")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SealError):
        key.open(tampered, b"AKIA1")


def test_passwords_are_hashed_with_scrypt() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$") and "correct" not in stored
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterz", stored)
    assert not verify_password("x", "garbage")
    assert hash_password("same") != hash_password("same")  # salted
