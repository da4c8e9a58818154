"""Creating an account: its root user and, optionally, a first administrator with a key."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from fedbroker.credentials.passwords import hash_password
from fedbroker.credentials.sealing import MasterKey
from fedbroker.directory.ids import new_account_id, new_unique_id
from fedbroker.directory.model import Account, Entity, Kind, PolicyVersion
from fedbroker.directory.store import Store
from fedbroker.errors import ValidationError
from fedbroker.iam.operations.access_keys import create_key

ADMINISTRATOR_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AdministratorAccess", "Effect": "Allow", "Action": "*", "Resource": "*"}
        ],
    }
)


@dataclass(frozen=True, slots=True)
class AdminKey:
    user: Entity
    access_key_id: str
    secret_access_key: str


def create_account(
    store: Store, email: str, password: str, alias: str | None, now: datetime
) -> Account:
    if "@" not in email or len(email) > 320:
        raise ValidationError("the root user needs an email address")
    if len(password) < 8:
        raise ValidationError("the root password must have at least 8 characters")
    account = Account(new_account_id(), alias, email, hash_password(password), now)
    store.create_account(account)
    return account


def create_admin(
    store: Store, master_key: MasterKey, account: Account, name: str, now: datetime
) -> AdminKey:
    """An IAM user with an ``AdministratorAccess`` managed policy and one access key."""
    user = Entity(Kind.USER, account.id, name, new_unique_id("AIDA"), "/", now, {"tags": {}})
    store.create_entity(user)
    try:
        policy = store.get_entity(account.id, Kind.POLICY, "AdministratorAccess")
    except Exception:
        policy = Entity(
            Kind.POLICY,
            account.id,
            "AdministratorAccess",
            new_unique_id("ANPA"),
            "/",
            now,
            {
                "default_version": "v1",
                "next_version": 2,
                "tags": {},
                "description": "full access, created by fedbroker init",
            },
        )
        store.create_entity(
            policy, PolicyVersion(policy.arn, "v1", ADMINISTRATOR_POLICY, True, now)
        )
    store.attach(user, policy)
    key, secret = create_key(store, master_key, account.id, user, now)
    return AdminKey(user, key.access_key_id, secret)
