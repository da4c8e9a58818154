"""Fixtures of the SSO service tests: the service-test database (SQLite and PostgreSQL), a
fresh account per test, a key ring for minting, and a real OIDC issuer on 127.0.0.1 whose
tokens go through the broker's verifier (the code path of AssumeRoleWithWebIdentity)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from fedbroker.credentials.keyring import KeyRing
from fedbroker.credentials.sealing import MasterKey
from fedbroker.directory.model import Account
from fedbroker.directory.store import Store
from fedbroker.iam.context import Services
from tests.iam.conftest import T0, account, database_url, make_services, store
from tests.support.oidc_issuer import Issuer, running_issuer
from tests.support.tokens import JwtKey

__all__ = ["account", "database_url", "store"]


@pytest.fixture
def services(store: Store, account: Account) -> Services:
    # One master key for the module's database: the key ring's keys are sealed with it.
    master_key = MasterKey(bytes(range(32)), development=True)
    ring = KeyRing(store, master_key)
    ring.ensure_keys(T0)
    return replace(make_services(store), master_key=master_key, keyring=ring)


@pytest.fixture(scope="module")
def key() -> JwtKey:
    return JwtKey.rsa("sso-k1")


@pytest.fixture
def issuer(key: JwtKey) -> Iterator[Issuer]:
    with running_issuer() as running:
        running.keys = [key.jwk(alg="RS256", use="sig")]
        yield running
