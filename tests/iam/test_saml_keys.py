"""The broker's SAML SP keys of a provider (fedbroker.iam.saml_keys): made, sealed, opened,
rotated; never held in clear in the provider's attributes."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from fedbroker.credentials.sealing import MasterKey
from fedbroker.directory.model import Entity, Kind
from fedbroker.errors import InvalidInputError
from fedbroker.iam import saml_keys
from tests.support.saml_attacks import new_keypair

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _provider(name: str = "corp") -> Entity:
    return Entity(Kind.SAML_PROVIDER, "111122223333", name, "ASPAEXAMPLE", "/", T0, {"idp": {}})


def _master(development: bool = False) -> MasterKey:
    return MasterKey(os.urandom(32), development=development)


def test_first_use_makes_a_signing_and_a_decryption_key_sealed() -> None:
    master = _master()
    made = saml_keys.ensure_sp_keys(master, _provider(), T0)
    assert made is not None
    assert saml_keys.ensure_sp_keys(master, made, T0) is None  # nothing more to make
    stored = json.dumps(made.attrs)
    assert "PRIVATE KEY" not in stored
    [(key, cert)] = saml_keys.open_private_keys(master, made)
    assert "PRIVATE KEY" in key and cert == saml_keys.private_keys(made)[0].certificate
    signing_key, signing_cert = saml_keys.open_signing_key(master, made)
    assert "PRIVATE KEY" in signing_key and signing_key != key
    subject = x509.load_pem_x509_certificate(signing_cert.encode()).subject
    assert not subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)


def test_development_keys_say_so_in_their_certificate() -> None:
    made = saml_keys.ensure_sp_keys(_master(development=True), _provider(), T0)
    assert made is not None
    [described] = saml_keys.private_keys(made)
    assert described.development
    cert = x509.load_pem_x509_certificate(described.certificate.encode())
    [org] = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert org.value == saml_keys.DEVELOPMENT_MARK


def test_a_sealed_key_does_not_open_for_another_provider_or_master_key() -> None:
    master = _master()
    made = saml_keys.ensure_sp_keys(master, _provider("corp"), T0)
    assert made is not None
    copied = replace(_provider("other"), attrs=made.attrs)
    with pytest.raises(saml_keys.SpKeyError):
        saml_keys.open_private_keys(master, copied)
    with pytest.raises(saml_keys.SpKeyError):
        saml_keys.open_signing_key(_master(), made)


def test_two_decryption_keys_at_most_newest_first() -> None:
    master = _master()
    made = saml_keys.ensure_sp_keys(master, _provider(), T0)
    assert made is not None
    rotated, new_id = saml_keys.add_private_key(master, made, T0)
    ids = [k.key_id for k in saml_keys.private_keys(rotated)]
    assert ids[0] == new_id and len(ids) == 2
    assert all(len(i) >= 22 and i.isalnum() and i.isupper() for i in ids)
    with pytest.raises(InvalidInputError, match="at most 2"):
        saml_keys.add_private_key(master, rotated, T0)
    kept = saml_keys.remove_private_key(rotated, ids[1])
    assert [k.key_id for k in saml_keys.private_keys(kept)] == [new_id]
    with pytest.raises(InvalidInputError, match="no private key"):
        saml_keys.remove_private_key(kept, ids[1])


def test_an_uploaded_key_must_be_an_unencrypted_rsa_key() -> None:
    master = _master()
    pair = new_keypair("uploaded")
    made, key_id = saml_keys.add_private_key(master, _provider(), T0, pair.key_pem)
    [(opened, _)] = saml_keys.open_private_keys(master, made)
    assert "PRIVATE KEY" in opened
    assert [k.key_id for k in saml_keys.private_keys(made)] == [key_id]
    with pytest.raises(InvalidInputError, match="already has"):
        saml_keys.add_private_key(master, made, T0, pair.key_pem)
    for bad in ("not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"):
        with pytest.raises(InvalidInputError) as info:
            saml_keys.add_private_key(master, _provider(), T0, bad)
        assert bad not in str(info.value)
