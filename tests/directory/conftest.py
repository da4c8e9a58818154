"""Fixtures of the storage conformance suite: every test runs once per backend.

A database per test module and backend is created and migrated once; before each test its
rows are deleted, which keeps PostgreSQL runs fast (a fresh database costs ~0.3 s, a cleanup a
few ms). Tests that need a database nobody has migrated yet use ``empty_database_url``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, update

from fedbroker.directory import schema
from fedbroker.directory.sql import SqlStore
from fedbroker.directory.store import Store
from tests.directory.builders import OpenStore
from tests.support.postgres import temporary_database, unavailable_reason

BACKENDS = ["sqlite", "postgresql"]


@contextmanager
def _database(backend: str, directory: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'directory.db'}"
        return
    reason = unavailable_reason()
    if reason is not None:
        pytest.fail(reason, pytrace=False)
    with temporary_database() as url:
        yield url


def _delete_all_rows(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(schema.metadata.sorted_tables):
            if table is not schema.directory_version:
                conn.execute(delete(table))
        conn.execute(update(schema.directory_version).values(version=0))


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def _migrated_database(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, SqlStore]]:
    with _database(backend, tmp_path_factory.mktemp(backend)) as url:
        store = SqlStore(url)
        try:
            yield url, store
        finally:
            store.close()


@pytest.fixture
def database_url(_migrated_database: tuple[str, SqlStore]) -> str:
    """A migrated database with no rows in it, shared by the tests of one module."""
    url, store = _migrated_database
    _delete_all_rows(store.engine)
    return url


@pytest.fixture
def store(_migrated_database: tuple[str, SqlStore], database_url: str) -> Store:
    """The store under test; one per module and backend, emptied before each test."""
    return _migrated_database[1]


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database of its own that has not been migrated."""
    with _database(backend, tmp_path) as url:
        yield url


@pytest.fixture
def open_store(database_url: str) -> Iterator[OpenStore]:
    """Open further stores on the test's database, as other replicas would; all closed after."""
    opened: list[Store] = []

    def open_() -> Store:
        store = SqlStore(database_url, auto_migrate=False)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()
