"""SQL implementation of the Store (SQLAlchemy Core): SQLite by default, PostgreSQL for replicas."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError

from fedbroker.directory import schema as t
from fedbroker.directory.model import (
    AccessKey,
    Account,
    Entity,
    InlinePolicy,
    KeyAlgorithm,
    KeyPurpose,
    KeyRecord,
    KeyState,
    KeyStatus,
    Kind,
    PolicyVersion,
)
from fedbroker.errors import EntityAlreadyExistsError, NoSuchEntityError

log = logging.getLogger("fedbroker.directory")
_T = TypeVar("_T")
# The PostgreSQL channel on which directory writes are announced (see change_hint).
_CHANNEL = "fedbroker_directory"
# Hint connections inherited from a parent process: kept referenced, never closed by the child
# (closing would end the parent's session on the shared socket).
_ORPHANS: list[Any] = []


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("fedbroker.directory") / "migrations")
    )
    with _writer(engine) as connection:
        _lock_for_migration(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


# An arbitrary application-wide key ("fedb") for PostgreSQL's advisory lock.
_MIGRATION_LOCK_KEY = 0x66656462


def _lock_for_migration(connection: Connection) -> None:
    """Serialize migrations: replicas that start together on a new database would otherwise
    all try to create the same tables. The lock lasts until the migration commits; whoever
    comes next finds the schema current and does nothing."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    # SQLite: the writer transaction already holds the database's write lock (BEGIN IMMEDIATE).


@contextmanager
def _writer(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write. On SQLite it starts with ``BEGIN IMMEDIATE``, taking the
    write lock before the first read: a transaction that reads and then writes would otherwise
    fail at once with "database is locked" when another writer got there in between (WAL mode
    cannot upgrade a stale read snapshot, and no busy timeout helps)."""
    with _live_connection(engine) as connection:
        connection.info["fedbroker_writer"] = True
        try:
            with connection.begin():
                yield connection
        finally:
            connection.info.pop("fedbroker_writer", None)


@contextmanager
def _live_connection(engine: Engine) -> Iterator[Connection]:
    """A connection from the pool that is known to be alive. On PostgreSQL a pooled connection
    may have been dropped (server restart, failover, ``pg_terminate_backend``): a writer pings
    it first and, if it was dropped, takes a fresh one, since a transaction's body cannot be
    run again once it has started. Writes are rare; reads instead are retried
    (:meth:`SqlStore._read`), which costs nothing while connections are alive."""
    if engine.dialect.name != "postgresql":
        with engine.connect() as connection:
            yield connection
        return
    for attempt in (1, 2):
        connection = engine.connect()
        try:
            connection.exec_driver_sql("SELECT 1")
            # The ping opened a transaction (autobegin): end it, so begin() starts the writer's.
            connection.rollback()
        except DBAPIError as error:
            connection.close()
            if attempt == 2 or not error.connection_invalidated:
                raise
            log.warning("a pooled database connection was dropped; writing on a fresh one")
            continue
        with connection:
            yield connection
        return


def _utc(value: datetime | None) -> datetime | None:
    # Every time in the directory is UTC. SQLite keeps no offset (it stores the wall-clock
    # digits and hands back naive values), so times are converted before they are written;
    # PostgreSQL answers in the session's time zone, so they are converted when read too.
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _required_utc(value: datetime) -> datetime:
    result = _utc(value)
    assert result is not None
    return result


class SqlStore:
    """The directory in a relational database. Safe to share between threads."""

    def __init__(self, url: str, *, auto_migrate: bool = True) -> None:
        kwargs: dict[str, Any] = {"future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            # No ping on checkout (a round trip per read): a read that finds its pooled
            # connection dropped by a restart, failover or pg_terminate_backend is run again on
            # a fresh one (_read), and a writer pings before it begins (_live_connection).
            kwargs["pool_recycle"] = 300
        self.engine = create_engine(url, **kwargs)
        # Reads need no transaction of their own on PostgreSQL: each is one statement, and
        # AUTOCOMMIT saves the BEGIN/ROLLBACK round trips around it.
        self._reader = (
            self.engine
            if url.startswith("sqlite")
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        database = self.engine.url.database if url.startswith("sqlite") else None
        self._hint_path = database if database and database != ":memory:" else None
        self._hint_lock = threading.Lock()
        self._hint_conn: Any = None  # sqlite3.Connection, or psycopg.Connection listening
        self._hint_pid = 0
        self._hint_count = 0  # PostgreSQL: notifications (and reconnections) seen
        self._postgres = url.startswith("postgresql")
        if auto_migrate:
            migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()
        with self._hint_lock:
            if self._hint_conn is not None and self._hint_pid == os.getpid():
                with contextlib.suppress(Exception):  # closing a broken connection
                    self._hint_conn.close()
            self._hint_conn = None

    def _read(self, run: Callable[[Connection], _T]) -> _T:
        """``run(connection)`` on a pooled connection, and once more on a fresh one if the
        pooled one turns out to have been dropped. Reads are single statements (autocommit on
        PostgreSQL), so running one again is safe. SQLAlchemy invalidates the whole pool on a
        disconnect ("Dealing with Disconnects", optimistic handling), so the connections
        dropped with it are replaced too instead of failing the next reads one by one."""
        try:
            with self._reader.connect() as conn:
                return run(conn)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            log.warning("a pooled database connection was dropped; reading again on a fresh one")
        with self._reader.connect() as conn:
            return run(conn)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with _writer(self.engine) as conn:
            yield conn
            conn.execute(
                update(t.directory_version)
                .where(t.directory_version.c.id == 1)
                .values(version=t.directory_version.c.version + 1)
            )
            if self._postgres:  # delivered to every replica's listener at commit
                conn.execute(text(f"NOTIFY {_CHANNEL}"))

    # --- accounts ---------------------------------------------------------------------------

    def create_account(self, account: Account) -> None:
        exists = f"account `{account.id}` already exists"
        if account.alias is not None:
            exists = f"account `{account.id}` or alias `{account.alias}` already exists"
        with _constraints(exists=exists), self._write() as conn:
            conn.execute(
                insert(t.accounts).values(
                    id=account.id,
                    alias=account.alias,
                    root_email=account.root_email,
                    root_password_hash=account.root_password_hash,
                    created=_required_utc(account.created),
                    settings=account.settings,
                )
            )

    def get_account(self, account_id: str) -> Account:
        row = self._read(
            lambda conn: conn.execute(
                select(t.accounts).where(t.accounts.c.id == account_id)
            ).first()
        )
        if row is None:
            raise NoSuchEntityError(f"the account `{account_id}` does not exist")
        return _account(row._mapping)

    def list_accounts(self) -> list[Account]:
        rows = self._read(
            lambda conn: conn.execute(select(t.accounts).order_by(t.accounts.c.created)).all()
        )
        return [_account(r._mapping) for r in rows]

    def update_account(self, account: Account) -> None:
        """Alias, root credentials and settings of an existing account."""
        exists = f"the alias `{account.alias}` is already taken"
        with _constraints(exists=exists), self._write() as conn:
            done = conn.execute(
                update(t.accounts)
                .where(t.accounts.c.id == account.id)
                .values(
                    alias=account.alias,
                    root_email=account.root_email,
                    root_password_hash=account.root_password_hash,
                    settings=account.settings,
                )
            )
            if done.rowcount == 0:
                raise NoSuchEntityError(f"the account `{account.id}` does not exist")

    # --- entities ---------------------------------------------------------------------------

    def create_entity(self, entity: Entity, first_version: PolicyVersion | None = None) -> None:
        with (
            _constraints(
                exists=f"{entity.kind.resource_type} with name `{entity.name}` already exists",
                missing=f"the account `{entity.account_id}` does not exist",
            ),
            self._write() as conn,
        ):
            conn.execute(insert(t.entities).values(**_entity_row(entity)))
            if first_version is not None:
                # A managed policy and its v1 appear together or not at all.
                conn.execute(
                    insert(t.policy_versions).values(
                        policy_id=entity.id,
                        version_id=first_version.version_id,
                        document=first_version.document,
                        is_default=first_version.is_default,
                        created=_required_utc(first_version.created),
                    )
                )

    def get_entity(self, account_id: str, kind: Kind, name: str) -> Entity:
        row = self._read(
            lambda conn: conn.execute(
                select(t.entities).where(
                    t.entities.c.account_id == account_id,
                    t.entities.c.kind == kind.name,
                    t.entities.c.name_key == name.lower(),
                )
            ).first()
        )
        if row is None:
            raise NoSuchEntityError(f"the {kind.resource_type} with name `{name}` cannot be found")
        return _entity(row._mapping)

    def get_entity_by_id(self, entity_id: str) -> Entity:
        row = self._read(
            lambda conn: conn.execute(
                select(t.entities).where(t.entities.c.id == entity_id)
            ).first()
        )
        if row is None:
            raise NoSuchEntityError(f"no entity with id `{entity_id}`")
        return _entity(row._mapping)

    def list_entities(self, account_id: str, kind: Kind, path_prefix: str = "/") -> list[Entity]:
        query = (
            select(t.entities)
            .where(t.entities.c.account_id == account_id, t.entities.c.kind == kind.name)
            .order_by(t.entities.c.name_key)
        )
        rows = self._read(lambda conn: conn.execute(query).all())
        found = [_entity(r._mapping) for r in rows]
        return [e for e in found if e.path.startswith(path_prefix)]

    def update_entity(self, entity: Entity) -> None:
        row = _entity_row(entity)
        with (
            _constraints(
                exists=f"{entity.kind.resource_type} with name `{entity.name}` already exists",
                missing=f"the account `{entity.account_id}` does not exist",
            ),
            self._write() as conn,
        ):
            done = conn.execute(
                update(t.entities)
                .where(t.entities.c.id == entity.id)
                .values(**{k: v for k, v in row.items() if k != "id"})
            )
            if done.rowcount == 0:
                raise NoSuchEntityError(f"the {entity.kind.resource_type} `{entity.name}` is gone")

    def delete_entity(self, entity: Entity) -> None:
        with self._write() as conn:
            for table, column in (
                (t.memberships, t.memberships.c.group_id),
                (t.memberships, t.memberships.c.user_id),
                (t.attachments, t.attachments.c.owner_id),
                (t.attachments, t.attachments.c.policy_id),
                (t.inline_policies, t.inline_policies.c.owner_id),
                (t.policy_versions, t.policy_versions.c.policy_id),
                (t.access_keys, t.access_keys.c.user_id),
            ):
                conn.execute(delete(table).where(column == entity.id))
            done = conn.execute(delete(t.entities).where(t.entities.c.id == entity.id))
            if done.rowcount == 0:
                raise NoSuchEntityError(
                    f"the {entity.kind.resource_type} with name `{entity.name}` cannot be found"
                )

    # --- membership -------------------------------------------------------------------------

    def add_member(self, group: Entity, user: Entity) -> None:
        missing = f"the user `{user.name}` or the group `{group.name}` cannot be found"
        with _constraints(missing=missing), self._write() as conn:
            conn.execute(
                _insert_or_ignore(conn, t.memberships).values(group_id=group.id, user_id=user.id)
            )

    def remove_member(self, group: Entity, user: Entity) -> None:
        with self._write() as conn:
            done = conn.execute(
                delete(t.memberships).where(
                    t.memberships.c.group_id == group.id, t.memberships.c.user_id == user.id
                )
            )
            if done.rowcount == 0:
                raise NoSuchEntityError(
                    f"the user `{user.name}` is not in the group `{group.name}`"
                )

    def groups_of(self, user: Entity) -> list[Entity]:
        return self._related(t.memberships.c.user_id, user.id, t.memberships.c.group_id)

    def members_of(self, group: Entity) -> list[Entity]:
        return self._related(t.memberships.c.group_id, group.id, t.memberships.c.user_id)

    def _related(self, key: Any, value: str, target: Any) -> list[Entity]:
        query = (
            select(t.entities)
            .join(target.table, t.entities.c.id == target)
            .where(key == value)
            .order_by(t.entities.c.name_key)
        )
        return self._read(lambda conn: [_entity(r._mapping) for r in conn.execute(query).all()])

    # --- attachments ------------------------------------------------------------------------

    def attach(self, owner: Entity, policy: Entity) -> None:
        missing = (
            f"the policy `{policy.arn}` or the {owner.kind.resource_type} `{owner.name}` "
            "cannot be found"
        )
        with _constraints(missing=missing), self._write() as conn:
            conn.execute(
                _insert_or_ignore(conn, t.attachments).values(
                    owner_id=owner.id, policy_id=policy.id
                )
            )

    def detach(self, owner: Entity, policy: Entity) -> None:
        with self._write() as conn:
            done = conn.execute(
                delete(t.attachments).where(
                    t.attachments.c.owner_id == owner.id, t.attachments.c.policy_id == policy.id
                )
            )
            if done.rowcount == 0:
                raise NoSuchEntityError(
                    f"policy `{policy.arn}` is not attached to {owner.kind.resource_type} "
                    f"`{owner.name}`"
                )

    def attached(self, owner: Entity) -> list[Entity]:
        return self._related(t.attachments.c.owner_id, owner.id, t.attachments.c.policy_id)

    def attached_to(self, policy: Entity) -> list[Entity]:
        return self._related(t.attachments.c.policy_id, policy.id, t.attachments.c.owner_id)

    # --- inline policies --------------------------------------------------------------------

    def put_inline(self, owner: Entity, name: str, document: str) -> None:
        missing = f"the {owner.kind.resource_type} with name `{owner.name}` cannot be found"
        with _constraints(missing=missing), self._write() as conn:
            conn.execute(
                _upsert(conn, t.inline_policies, ("owner_id", "name_key")).values(
                    owner_id=owner.id, name_key=name.lower(), name=name, document=document
                )
            )

    def get_inline(self, owner: Entity, name: str) -> InlinePolicy:
        row = self._read(
            lambda conn: conn.execute(
                select(t.inline_policies).where(
                    t.inline_policies.c.owner_id == owner.id,
                    t.inline_policies.c.name_key == name.lower(),
                )
            ).first()
        )
        if row is None:
            raise NoSuchEntityError(
                f"the {owner.kind.resource_type} policy with name `{name}` cannot be found"
            )
        return InlinePolicy(owner.kind, owner.name, row.name, row.document)

    def delete_inline(self, owner: Entity, name: str) -> None:
        with self._write() as conn:
            done = conn.execute(
                delete(t.inline_policies).where(
                    t.inline_policies.c.owner_id == owner.id,
                    t.inline_policies.c.name_key == name.lower(),
                )
            )
            if done.rowcount == 0:
                raise NoSuchEntityError(
                    f"the {owner.kind.resource_type} policy with name `{name}` cannot be found"
                )

    def list_inline(self, owner: Entity) -> list[InlinePolicy]:
        rows = self._read(
            lambda conn: conn.execute(
                select(t.inline_policies)
                .where(t.inline_policies.c.owner_id == owner.id)
                .order_by(t.inline_policies.c.name_key)
            ).all()
        )
        return [InlinePolicy(owner.kind, owner.name, r.name, r.document) for r in rows]

    # --- policy versions --------------------------------------------------------------------

    def add_version(self, policy: Entity, version: PolicyVersion) -> None:
        with (
            _constraints(
                exists=f"policy `{policy.arn}` version `{version.version_id}` already exists",
                missing=f"policy `{policy.arn}` does not exist",
            ),
            self._write() as conn,
        ):
            if version.is_default:
                conn.execute(
                    update(t.policy_versions)
                    .where(t.policy_versions.c.policy_id == policy.id)
                    .values(is_default=False)
                )
            conn.execute(
                insert(t.policy_versions).values(
                    policy_id=policy.id,
                    version_id=version.version_id,
                    document=version.document,
                    is_default=version.is_default,
                    created=_required_utc(version.created),
                )
            )

    def list_versions(self, policy: Entity) -> list[PolicyVersion]:
        rows = self._read(
            lambda conn: conn.execute(
                select(t.policy_versions).where(t.policy_versions.c.policy_id == policy.id)
            ).all()
        )
        versions = [
            PolicyVersion(
                policy.arn, r.version_id, r.document, r.is_default, _required_utc(r.created)
            )
            for r in rows
        ]
        return sorted(versions, key=lambda v: int(v.version_id[1:]), reverse=True)

    def set_default_version(self, policy: Entity, version_id: str) -> None:
        with self._write() as conn:
            # Update first, check after: the update holds the write lock (SQLite) or the rows
            # (PostgreSQL), so the version cannot vanish between the check and the change.
            conn.execute(
                update(t.policy_versions)
                .where(t.policy_versions.c.policy_id == policy.id)
                .values(is_default=t.policy_versions.c.version_id == version_id)
            )
            exists = conn.execute(
                select(t.policy_versions.c.version_id).where(
                    t.policy_versions.c.policy_id == policy.id,
                    t.policy_versions.c.version_id == version_id,
                )
            ).first()
            if exists is None:  # rolls the update back
                raise NoSuchEntityError(
                    f"policy `{policy.arn}` version `{version_id}` does not exist"
                )

    def delete_version(self, policy: Entity, version_id: str) -> None:
        with self._write() as conn:
            done = conn.execute(
                delete(t.policy_versions).where(
                    t.policy_versions.c.policy_id == policy.id,
                    t.policy_versions.c.version_id == version_id,
                )
            )
            if done.rowcount == 0:
                raise NoSuchEntityError(
                    f"policy `{policy.arn}` version `{version_id}` does not exist"
                )

    # --- access keys ------------------------------------------------------------------------

    def create_access_key(self, key: AccessKey) -> None:
        owner = f"user `{key.user_id}`" if key.user_id else f"account `{key.account_id}`"
        with (
            _constraints(
                exists=f"the access key with id `{key.access_key_id}` already exists",
                missing=f"the {owner} cannot be found",
            ),
            self._write() as conn,
        ):
            conn.execute(
                insert(t.access_keys).values(
                    access_key_id=key.access_key_id,
                    account_id=key.account_id,
                    user_id=key.user_id,
                    sealed_secret=key.sealed_secret,
                    status=key.status.value,
                    created=_required_utc(key.created),
                )
            )

    def get_access_key(self, access_key_id: str) -> AccessKey:
        row = self._read(
            lambda conn: conn.execute(
                select(t.access_keys).where(t.access_keys.c.access_key_id == access_key_id)
            ).first()
        )
        if row is None:
            raise NoSuchEntityError(f"the access key with id `{access_key_id}` cannot be found")
        return _access_key(row._mapping)

    def list_access_keys(self, account_id: str, user: Entity | None) -> list[AccessKey]:
        owner = (
            t.access_keys.c.user_id.is_(None)
            if user is None
            else t.access_keys.c.user_id == user.id
        )
        rows = self._read(
            lambda conn: conn.execute(
                select(t.access_keys)
                .where(t.access_keys.c.account_id == account_id, owner)
                .order_by(t.access_keys.c.created)
            ).all()
        )
        return [_access_key(r._mapping) for r in rows]

    def set_access_key_status(self, access_key_id: str, status: KeyStatus) -> None:
        with self._write() as conn:
            done = conn.execute(
                update(t.access_keys)
                .where(t.access_keys.c.access_key_id == access_key_id)
                .values(status=status.value)
            )
            if done.rowcount == 0:
                raise NoSuchEntityError(f"the access key with id `{access_key_id}` cannot be found")

    def delete_access_key(self, access_key_id: str) -> None:
        with self._write() as conn:
            done = conn.execute(
                delete(t.access_keys).where(t.access_keys.c.access_key_id == access_key_id)
            )
            if done.rowcount == 0:
                raise NoSuchEntityError(f"the access key with id `{access_key_id}` cannot be found")

    def record_key_use(self, access_key_id: str, when: datetime, service: str, region: str) -> None:
        # Not a directory change: last-used data does not invalidate compiled policies.
        with _writer(self.engine) as conn:
            conn.execute(
                update(t.access_keys)
                .where(t.access_keys.c.access_key_id == access_key_id)
                .values(
                    last_used=_required_utc(when),
                    last_used_service=service,
                    last_used_region=region,
                )
            )

    # --- the key ring -----------------------------------------------------------------------

    def add_key(self, record: KeyRecord) -> None:
        with _constraints(exists=f"the key `{record.kid}` already exists"), self._write() as conn:
            conn.execute(
                insert(t.keys).values(
                    kid=record.kid,
                    purpose=record.purpose.value,
                    algorithm=record.algorithm.value,
                    sealed_private=record.sealed_private,
                    public_pem=record.public_pem,
                    created=_required_utc(record.created),
                    state=record.state.value,
                    retiring_since=_utc(record.retiring_since),
                    retired_at=_utc(record.retired_at),
                )
            )

    def list_keys(self, purpose: KeyPurpose | None = None) -> list[KeyRecord]:
        query = select(t.keys).order_by(t.keys.c.created, t.keys.c.kid)
        if purpose is not None:
            query = query.where(t.keys.c.purpose == purpose.value)
        return self._read(lambda conn: [_key_record(r._mapping) for r in conn.execute(query).all()])

    def set_key_state(self, kid: str, state: KeyState, when: datetime) -> None:
        """Move a key to ``state``; ``when`` is recorded as ``retiring_since`` or
        ``retired_at`` (both cleared when a key is made active again)."""
        values: dict[str, Any] = {"state": state.value}
        if state is KeyState.ACTIVE:
            values |= {"retiring_since": None, "retired_at": None}
        elif state is KeyState.RETIRING:
            values |= {"retiring_since": _required_utc(when), "retired_at": None}
        else:
            values["retired_at"] = _required_utc(when)
        with self._write() as conn:
            done = conn.execute(update(t.keys).where(t.keys.c.kid == kid).values(**values))
            if done.rowcount == 0:
                raise NoSuchEntityError(f"the key `{kid}` cannot be found")

    # --- the SAML replay cache ---------------------------------------------------------------

    def remember_assertion(self, key: str, not_on_or_after: datetime, now: datetime) -> bool:
        # One transaction: purge what has expired, then insert unless present. Two replicas
        # racing with the same key both insert; the primary key lets exactly one row in.
        table = t.saml_assertions
        with _writer(self.engine) as conn:
            conn.execute(delete(table).where(table.c.not_on_or_after <= _required_utc(now)))
            # RETURNING, not rowcount: psycopg reports no row count for ON CONFLICT DO NOTHING.
            inserted = conn.execute(
                _insert_or_ignore(conn, table)
                .values(key=key, not_on_or_after=_required_utc(not_on_or_after))
                .returning(table.c.key)
            ).first()
            return inserted is not None

    # --- broker web sessions ---------------------------------------------------------------

    def put_web_session(
        self, key: str, data: str, not_on_or_after: datetime, now: datetime
    ) -> None:
        table = t.web_sessions
        with _writer(self.engine) as conn:
            conn.execute(delete(table).where(table.c.not_on_or_after <= _required_utc(now)))
            conn.execute(delete(table).where(table.c.key == key))
            conn.execute(
                table.insert().values(
                    key=key, data=data, not_on_or_after=_required_utc(not_on_or_after)
                )
            )

    def get_web_session(self, key: str, now: datetime) -> str | None:
        table = t.web_sessions
        row = self._read(
            lambda conn: conn.execute(
                select(table.c.data).where(
                    table.c.key == key, table.c.not_on_or_after > _required_utc(now)
                )
            ).first()
        )
        return None if row is None else str(row[0])

    def delete_web_session(self, key: str) -> None:
        table = t.web_sessions
        with _writer(self.engine) as conn:
            conn.execute(delete(table).where(table.c.key == key))

    # --- change tracking --------------------------------------------------------------------

    def directory_version(self) -> int:
        value = self._read(
            lambda conn: conn.execute(select(func.max(t.directory_version.c.version))).scalar()
        )
        return int(value or 0)

    def change_hint(self) -> int | None:
        """A number that moves whenever a directory write has been committed since the last
        call, read without a query round trip; ``None`` when no such signal is available (an
        in-memory database, a listener that cannot connect), and callers fall back to polling.

        - SQLite: ``PRAGMA data_version`` on a connection of this process's own that never
          writes, so every commit, by any process or connection, moves it (about 10 µs).
        - PostgreSQL: every directory write sends ``NOTIFY`` in its transaction; a connection
          of this process's own ``LISTEN``s, and the hint counts the notifications that have
          arrived on its socket (a non-blocking read, no round trip). Every replica sees a
          change as soon as the notification reaches it. A lost listener counts as a change
          (something may have been missed) and is reconnected on the next call.
        """
        if self._hint_path is None and not self._postgres:
            return None
        with self._hint_lock:
            if self._hint_pid != os.getpid():  # none yet, or inherited through a fork
                if self._hint_conn is not None:
                    _ORPHANS.append(self._hint_conn)  # the parent's: never close it here
                self._hint_conn = None
                self._hint_pid = os.getpid()
            if self._hint_path is None:
                return self._postgres_hint()
            conn = self._hint_conn
            if conn is None:
                conn = sqlite3.connect(
                    self._hint_path, isolation_level=None, check_same_thread=False
                )
                self._hint_conn = conn
            row = conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def _postgres_hint(self) -> int | None:
        """Called with the hint lock held."""
        conn = self._hint_conn
        try:
            if conn is None:
                cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
                cparams.pop("context", None)
                conn = self.engine.dialect.loaded_dbapi.connect(
                    *cargs, **cparams, autocommit=True, connect_timeout=5
                )
                conn.execute(f"LISTEN {_CHANNEL}")
                self._hint_conn = conn
                self._hint_count += 1  # changes made while nobody listened
            pgconn = conn.pgconn
            pgconn.consume_input()
            while pgconn.notifies() is not None:
                self._hint_count += 1
        except Exception:  # any failure of the listener: poll instead
            if conn is not None:
                with contextlib.suppress(Exception):  # already broken
                    conn.close()
            self._hint_conn = None
            return None
        return self._hint_count


@contextmanager
def _constraints(*, exists: str | None = None, missing: str | None = None) -> Iterator[None]:
    """Turn a broken constraint into the directory's error: a duplicate key means the thing
    ``exists``, a dangling reference means something it needs is ``missing`` (deleted, maybe,
    by another replica since the caller read it)."""
    try:
        yield
    except IntegrityError as error:
        broken = _broken_constraint(error)
        if broken == "unique" and exists is not None:
            raise EntityAlreadyExistsError(exists) from None
        if broken == "foreign_key" and missing is not None:
            raise NoSuchEntityError(missing) from None
        raise


def _broken_constraint(error: IntegrityError) -> Literal["unique", "foreign_key", "other"]:
    driver_error = error.orig
    sqlstate = getattr(driver_error, "sqlstate", None)  # psycopg
    sqlite_name = getattr(driver_error, "sqlite_errorname", None)
    if sqlstate == "23505" or sqlite_name in (
        "SQLITE_CONSTRAINT_UNIQUE",
        "SQLITE_CONSTRAINT_PRIMARYKEY",
    ):
        return "unique"
    if sqlstate == "23503" or sqlite_name == "SQLITE_CONSTRAINT_FOREIGNKEY":
        return "foreign_key"
    return "other"


def _dialect_insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _insert_or_ignore(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that leaves an existing row alone: idempotent even when two writers race."""
    return _dialect_insert(conn, table).on_conflict_do_nothing()


def _upsert(
    conn: Connection, table: Table, key: tuple[str, ...]
) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that overwrites the row with the same ``key`` in one statement (no race)."""
    statement = _dialect_insert(conn, table)
    replaced = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in key}
    return statement.on_conflict_do_update(index_elements=list(key), set_=replaced)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is switched off; _sqlite_begin issues BEGIN itself
    # (the recipe in SQLAlchemy's SQLite dialect documentation).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Switching a new database to WAL needs an exclusive lock, and SQLite answers "locked" at
    # once (no busy wait) while another process is writing it, e.g. a replica migrating the
    # same new database. Retry for as long as the busy timeout would have waited.
    deadline = time.monotonic() + 30
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    writer = connection.info.get("fedbroker_writer")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


def _account(row: Any) -> Account:
    return Account(
        row["id"],
        row["alias"],
        row["root_email"],
        row["root_password_hash"],
        _required_utc(row["created"]),
        dict(row["settings"] or {}),
    )


def _entity_row(entity: Entity) -> dict[str, Any]:
    return {
        "id": entity.id,
        "account_id": entity.account_id,
        "kind": entity.kind.name,
        "name": entity.name,
        "name_key": entity.name.lower(),
        "path": entity.path,
        "created": _required_utc(entity.created),
        "attrs": entity.attrs,
    }


def _entity(row: Any) -> Entity:
    return Entity(
        Kind[row["kind"]],
        row["account_id"],
        row["name"],
        row["id"],
        row["path"],
        _required_utc(row["created"]),
        dict(row["attrs"]),
    )


def _access_key(row: Any) -> AccessKey:
    return AccessKey(
        row["access_key_id"],
        row["account_id"],
        row["user_id"],
        bytes(row["sealed_secret"]),
        KeyStatus(row["status"]),
        _required_utc(row["created"]),
        _utc(row["last_used"]),
        row["last_used_service"],
        row["last_used_region"],
    )


def _key_record(row: Any) -> KeyRecord:
    return KeyRecord(
        row["kid"],
        KeyPurpose(row["purpose"]),
        KeyAlgorithm(row["algorithm"]),
        bytes(row["sealed_private"]),
        row["public_pem"],
        _required_utc(row["created"]),
        KeyState(row["state"]),
        _utc(row["retiring_since"]),
        _utc(row["retired_at"]),
    )
