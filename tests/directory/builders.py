"""Builders for the conformance suite: fixed times (never the clock), ids in IAM's formats,
and a way to run writers at the same instant."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from fedbroker.directory import ids
from fedbroker.directory.model import (
    AccessKey,
    Account,
    Entity,
    KeyAlgorithm,
    KeyRecord,
    KeyState,
    KeyStatus,
    Kind,
    PolicyVersion,
)
from fedbroker.directory.store import Store

# Opens another store on the same database, as another replica would.
OpenStore = Callable[[], Store]

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def policy_document(resource: str = "*") -> str:
    statement = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": resource}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def at(minutes: int) -> datetime:
    """A fixed instant ``minutes`` after :data:`T0`."""
    return T0 + timedelta(minutes=minutes)


def is_utc(value: datetime | None) -> bool:
    return value is not None and value.tzinfo is not None and value.utcoffset() == timedelta(0)


def new_account(
    store: Store, *, alias: str | None = None, created: datetime = T0, account_id: str = ""
) -> Account:
    account = Account(
        account_id or ids.new_account_id(),
        alias,
        f"root+{alias or 'account'}@example.com",
        "$scrypt$not-a-real-hash",
        created,
    )
    store.create_account(account)
    return account


def new_entity(
    store: Store,
    account: Account,
    kind: Kind,
    name: str,
    *,
    path: str = "/",
    attrs: dict[str, object] | None = None,
    created: datetime = T0,
) -> Entity:
    entity = Entity(
        kind, account.id, name, ids.new_unique_id(kind.id_prefix), path, created, attrs or {}
    )
    store.create_entity(entity)
    return entity


def new_key(
    store: Store,
    account: Account,
    user: Entity | None,
    *,
    created: datetime = T0,
    sealed_secret: bytes = b"\x00sealed\xffsecret",
    status: KeyStatus = KeyStatus.ACTIVE,
) -> AccessKey:
    key = AccessKey(
        ids.new_access_key_id(),
        account.id,
        user.id if user is not None else None,
        sealed_secret,
        status,
        created,
    )
    store.create_access_key(key)
    return key


_kid_counter = iter(range(1, 1_000_000))


def ring_key(
    algorithm: KeyAlgorithm = KeyAlgorithm.A256GCM,
    *,
    created: datetime = T0,
    state: KeyState = KeyState.ACTIVE,
    kid: str = "",
) -> KeyRecord:
    """A key-ring record with stand-in material (the store never looks inside it)."""
    signing = algorithm is not KeyAlgorithm.A256GCM
    return KeyRecord(
        kid or f"{algorithm.value.lower()}-test{next(_kid_counter):04d}",
        algorithm.purpose,
        algorithm,
        b"\x00sealed\xffprivate" + algorithm.value.encode(),
        "-----BEGIN PUBLIC KEY-----\nstand-in\n-----END PUBLIC KEY-----\n" if signing else "",
        created,
        state,
    )


def version(
    policy: Entity, number: int, *, default: bool = False, created: datetime = T0
) -> PolicyVersion:
    document = policy_document(f"arn:aws:s3:::bucket-{number}/*")
    return PolicyVersion(policy.arn, f"v{number}", document, default, created)


T = TypeVar("T")


def run_together(tasks: list[Callable[[], T]]) -> list[T | Exception]:
    """Run ``tasks`` on threads released at one instant; each one's result or exception."""
    barrier = threading.Barrier(len(tasks))

    def call(task: Callable[[], T]) -> T | Exception:
        barrier.wait(timeout=30)
        try:
            return task()
        except Exception as error:
            return error

    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        return list(pool.map(call, tasks))
