"""PostgreSQL connections dropped under the store (a server restart, a failover, an
administrator's pg_terminate_backend): the next read is run again on a fresh connection and
the next write pings first, so neither fails. Against the real server on the machine."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy.exc import DBAPIError

from fedbroker.directory import ids
from fedbroker.directory.model import Account
from fedbroker.directory.sql import SqlStore
from tests.support.postgres import server, temporary_database, unavailable_reason

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def store() -> Iterator[SqlStore]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.fail(reason, pytrace=False)
    with temporary_database() as url:
        opened = SqlStore(url)
        try:
            yield opened
        finally:
            opened.close()


def terminate_backends(store: SqlStore) -> int:
    """End every server process serving the store's database, as an administrator would."""
    host, port = server()
    database = store.engine.url.database
    with psycopg.connect(
        host=host, port=port, user="postgres", dbname="postgres", autocommit=True
    ) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        ).fetchall()
    return sum(1 for (ended,) in rows if ended)


def pooled_backends(store: SqlStore) -> set[int]:
    with store.engine.connect() as conn:
        return {int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())}


def test_a_read_after_the_backends_were_terminated_is_run_again(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    account = Account(ids.new_account_id(), None, "root@example.test", "x", T0)
    store.create_account(account)
    assert store.get_account(account.id) == account
    before = pooled_backends(store)
    assert terminate_backends(store) >= 1
    with caplog.at_level(logging.WARNING, "fedbroker.directory"):
        assert store.get_account(account.id) == account
    assert "reading again on a fresh one" in caplog.text
    assert pooled_backends(store).isdisjoint(before)
    # Between two reads, again: each read still answers.
    terminate_backends(store)
    assert store.directory_version() >= 1
    assert [a.id for a in store.list_accounts()] == [account.id]


def test_a_write_after_the_backends_were_terminated_pings_first(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    first = Account(ids.new_account_id(), None, "root@example.test", "x", T0)
    store.create_account(first)
    assert terminate_backends(store) >= 1
    second = Account(ids.new_account_id(), None, "root@example.test", "x", T0)
    with caplog.at_level(logging.WARNING, "fedbroker.directory"):
        store.create_account(second)  # the first statement of its transaction would have failed
    assert "writing on a fresh one" in caplog.text
    assert {a.id for a in store.list_accounts()} == {first.id, second.id}


def test_other_database_errors_are_not_retried(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def bad(conn: object) -> None:
        calls.append(1)
        assert hasattr(conn, "exec_driver_sql")
        conn.exec_driver_sql("SELECT no_such_column FROM accounts")  # type: ignore[attr-defined]

    with pytest.raises(DBAPIError) as caught:
        store._read(bad)
    assert not caught.value.connection_invalidated
    assert calls == [1]
