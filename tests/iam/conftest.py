"""Fixtures of the service tests: a migrated database per module and backend (SQLite and
PostgreSQL), a fresh account per test (accounts share nothing, so tests need no cleanup)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fedbroker.audit.events import MemoryAuditSink
from fedbroker.clock import FixedClock
from fedbroker.credentials.sealing import MasterKey
from fedbroker.directory.access import PolicyCache
from fedbroker.directory.ids import new_account_id
from fedbroker.directory.model import Account
from fedbroker.directory.sql import SqlStore
from fedbroker.directory.store import Store
from fedbroker.iam.context import Services
from tests.support.postgres import PostgresUnavailableError, temporary_database

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        directory: Path = tmp_path_factory.mktemp("sqlite")
        yield f"sqlite:///{directory / 'directory.db'}"
        return
    try:
        with temporary_database() as url:
            yield url
    except PostgresUnavailableError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="module")
def store(database_url: str) -> Iterator[SqlStore]:
    opened = SqlStore(database_url)
    yield opened
    opened.close()


@pytest.fixture
def account(store: Store) -> Account:
    account = Account(new_account_id(), None, "root@example.com", "$scrypt$not-a-hash", T0)
    store.create_account(account)
    return account


def make_services(store: Store) -> Services:
    return Services(
        store=store,
        clock=FixedClock(T0),
        master_key=MasterKey(os.urandom(32), development=True),
        policies=PolicyCache(store),
        audit=MemoryAuditSink(),
        region="us-east-1",
    )


@pytest.fixture
def services(store: Store) -> Services:
    return make_services(store)
