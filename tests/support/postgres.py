"""Throw-away PostgreSQL databases on the server that runs on the machine.

PostgreSQL is part of the normal test run (ARCHITECTURE.md, "Storage and scale"), not an
optional extra: when the server cannot be reached, :func:`temporary_database` raises
:class:`PostgresUnavailableError` with a message that says how to start it, and the tests that
need it fail rather than skip.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

HOST = "127.0.0.1"
PORT = 5432
USER = "postgres"
ADMIN_DATABASE = "postgres"
# Overrides for a CI whose server is elsewhere: `host:port`, user `postgres`, trust auth.
_SERVER = os.environ.get("FEDBROKER_TEST_POSTGRES", f"{HOST}:{PORT}")
_START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


class PostgresUnavailableError(RuntimeError):
    """The test PostgreSQL server is not reachable."""


def server() -> tuple[str, int]:
    host, _, port = _SERVER.rpartition(":")
    return host, int(port)


def url_for(database: str) -> str:
    """The SQLAlchemy URL of ``database`` on the test server (psycopg 3 driver)."""
    host, port = server()
    return f"postgresql+psycopg://{USER}@{host}:{port}/{database}"


def _admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    host, port = server()
    try:
        return psycopg.connect(
            host=host,
            port=port,
            user=USER,
            dbname=ADMIN_DATABASE,
            autocommit=True,
            connect_timeout=5,
        )
    except psycopg.OperationalError as error:
        raise PostgresUnavailableError(
            f"PostgreSQL is not reachable at {host}:{port} as user `{USER}` ({error}). "
            f"The PostgreSQL tests are part of the normal run; start the server with: "
            f"{_START_HINT}"
        ) from error


def unavailable_reason() -> str | None:
    """Why the test server cannot be used, or ``None`` when it can."""
    try:
        _admin_connection().close()
    except PostgresUnavailableError as error:
        return str(error)
    return None


@contextmanager
def temporary_database(prefix: str = "fedbroker_test") -> Iterator[str]:
    """Create an empty database with a random name, yield its SQLAlchemy URL, drop it after.

    The drop uses ``WITH (FORCE)`` so that connections a test left open (a pool, a thread)
    cannot keep the database alive.
    """
    name = f"{prefix}_{secrets.token_hex(6)}"
    with _admin_connection() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url_for(name)
    finally:
        with _admin_connection() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
