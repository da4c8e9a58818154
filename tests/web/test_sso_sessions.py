"""Broker web sessions of the browser sign-in (web/sso_sessions.py) against the real store
(SQLite and PostgreSQL), with the clock as a parameter: idle timeout, absolute lifetime,
deletion at sign-out, and nothing readable in the store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from fedbroker.audit.events import MemoryAuditSink
from fedbroker.clock import FixedClock
from fedbroker.credentials.sealing import MasterKey
from fedbroker.directory.access import PolicyCache
from fedbroker.directory.sql import SqlStore
from fedbroker.iam.context import Services
from fedbroker.web.sso_sessions import PendingLogin, SessionTable
from tests.support.postgres import temporary_database

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
IDLE, LIFETIME = timedelta(minutes=15), timedelta(hours=8)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        opened = SqlStore(f"sqlite:///{tmp_path_factory.mktemp('sessions') / 'd.db'}")
        yield opened
        opened.close()
        return
    with temporary_database() as url:
        opened = SqlStore(url)
        yield opened
        opened.close()


@pytest.fixture
def table(store: SqlStore) -> SessionTable:
    services = Services(
        store=store,
        clock=FixedClock(T0),
        master_key=MasterKey(os.urandom(32), development=True),
        policies=PolicyCache(store),
        audit=MemoryAuditSink(),
        region="us-east-1",
    )
    return SessionTable(services, IDLE, LIFETIME)


def test_a_session_lives_while_used_and_ends_when_idle(table: SessionTable) -> None:
    sid, session = table.create(T0)
    session.pending["s"] = PendingLogin("123456789012", "idp.example", "s", "n", "v")
    session.signed_in = '{"secret-looking": "signed-in identity"}'
    table.save(sid, session, T0)
    now = T0
    for _ in range(5):  # used every 14 minutes: still there
        now += timedelta(minutes=14)
        found = table.get(sid, now)
        assert found is not None and found.csrf == session.csrf
        table.save(sid, found, now)
    assert table.get(sid, now + IDLE + timedelta(seconds=1)) is None
    assert table.get("another id", now) is None


def test_a_session_ends_at_its_absolute_lifetime_however_used(table: SessionTable) -> None:
    sid, session = table.create(T0)
    table.save(sid, session, T0)
    now = T0
    while now + timedelta(minutes=10) < T0 + LIFETIME:
        now += timedelta(minutes=10)
        found = table.get(sid, now)
        assert found is not None
        table.save(sid, found, now)
    assert table.get(sid, T0 + LIFETIME + timedelta(seconds=1)) is None


def test_shorter_configured_limits_apply(store: SqlStore, table: SessionTable) -> None:
    short = SessionTable(
        Services(
            store=store,
            clock=FixedClock(T0),
            master_key=table.master_key,
            policies=PolicyCache(store),
            audit=MemoryAuditSink(),
            region="us-east-1",
        ),
        timedelta(minutes=1),
        timedelta(minutes=3),
    )
    sid, session = short.create(T0)
    short.save(sid, session, T0)
    assert short.get(sid, T0 + timedelta(seconds=59)) is not None
    assert short.get(sid, T0 + timedelta(seconds=61)) is None


def test_sign_out_deletes_it_and_the_store_holds_nothing_readable(
    store: SqlStore, table: SessionTable
) -> None:
    sid, session = table.create(T0)
    session.signed_in = '{"subject": "alice-in-clear"}'
    table.save(sid, session, T0)
    key = table._key(sid)
    stored = store.get_web_session(key, T0)
    assert stored is not None
    assert "alice-in-clear" not in stored and session.csrf not in stored and sid not in stored
    table.delete(sid)
    assert table.get(sid, T0) is None and store.get_web_session(key, T0) is None
