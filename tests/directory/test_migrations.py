"""Schema migrations of the SQL store, on every SQL backend.

``schema.py`` (what the code queries) and ``migrations/versions`` (what databases get) are
written by hand; alembic's autogenerate comparison keeps them from drifting apart.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from fedbroker.directory import schema
from fedbroker.directory.model import Kind
from fedbroker.directory.sql import SqlStore, migrate
from tests.directory.builders import new_account, new_entity


def _head() -> str:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("fedbroker.directory") / "migrations")
    )
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _schema_differences(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), schema.metadata))
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def test_migrated_database_matches_the_schema_module(empty_database_url: str) -> None:
    SqlStore(empty_database_url).close()
    assert _schema_differences(empty_database_url) == []
    assert _revision(empty_database_url) == _head()


def test_migrations_create_every_table(empty_database_url: str) -> None:
    SqlStore(empty_database_url).close()
    engine = create_engine(empty_database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert tables == set(schema.metadata.tables) | {"alembic_version"}


def test_migrating_twice_changes_nothing(empty_database_url: str) -> None:
    store = SqlStore(empty_database_url)
    account = new_account(store)
    user = new_entity(store, account, Kind.USER, "alice")
    version = store.directory_version()
    migrate(store.engine)
    store.close()

    reopened = SqlStore(empty_database_url)  # migrates again on start
    try:
        assert reopened.get_entity_by_id(user.id) == user
        assert reopened.directory_version() == version
        assert _revision(empty_database_url) == _head()
        assert _schema_differences(empty_database_url) == []
    finally:
        reopened.close()


def test_a_new_store_starts_at_directory_version_zero(empty_database_url: str) -> None:
    store = SqlStore(empty_database_url)
    try:
        assert store.directory_version() == 0
        assert store.list_accounts() == []
    finally:
        store.close()


# A replica as its own process: alembic keeps its context in module globals, so replicas are
# processes (as they are in production), not threads. It migrates when told "go" on stdin.
_REPLICA = """
import sys
from fedbroker.directory.sql import SqlStore
print("ready", flush=True)
sys.stdin.readline()
SqlStore(sys.argv[1]).close()
"""


def test_replicas_starting_together_all_migrate(empty_database_url: str) -> None:
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", _REPLICA, empty_database_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for replica in replicas:
            assert replica.stdout is not None
            assert replica.stdout.readline() == "ready\n"
        for replica in replicas:
            assert replica.stdin is not None
            replica.stdin.write("go\n")
            replica.stdin.flush()
        errors = [replica.communicate(timeout=60)[1] for replica in replicas]
    finally:
        for replica in replicas:
            if replica.poll() is None:
                replica.kill()
    assert [r.returncode for r in replicas] == [0] * len(replicas), "\n".join(errors)
    assert _revision(empty_database_url) == _head()
    assert _schema_differences(empty_database_url) == []
    store = SqlStore(empty_database_url, auto_migrate=False)
    try:
        assert store.directory_version() == 0
    finally:
        store.close()
