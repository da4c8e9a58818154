"""Who is calling and what every operation can reach: the call context."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fedbroker.audit.events import AuditSink, UserIdentity
from fedbroker.clock import Clock
from fedbroker.credentials.sealing import MasterKey
from fedbroker.directory.access import PolicyCache
from fedbroker.directory.model import Account, Entity
from fedbroker.directory.store import Store
from fedbroker.policy import Principal, PrincipalType


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: the root user or an IAM user, with the key it signed with."""

    account: Account
    user: Entity | None  # None for the root user
    access_key_id: str

    @property
    def is_root(self) -> bool:
        return self.user is None

    @property
    def arn(self) -> str:
        return self.account.root_arn if self.user is None else self.user.arn

    @property
    def principal(self) -> Principal:
        if self.user is None:
            return Principal(self.arn, PrincipalType.ROOT, self.account.id)
        return Principal(self.arn, PrincipalType.USER, self.account.id)

    @property
    def identity(self) -> UserIdentity:
        if self.user is None:
            return UserIdentity(
                "Root", self.account.id, self.arn, self.account.id, self.access_key_id
            )
        return UserIdentity(
            "IAMUser", self.user.id, self.arn, self.account.id, self.access_key_id, self.user.name
        )


@dataclass(frozen=True, slots=True)
class Services:
    """Long-lived parts shared by every call."""

    store: Store
    clock: Clock
    master_key: MasterKey
    policies: PolicyCache
    audit: AuditSink
    region: str


@dataclass(slots=True)
class CallContext:
    services: Services
    caller: Caller
    request_id: str
    source_ip: str
    user_agent: str
    secure_transport: bool
    now: datetime
    # Filled by operations for the audit record: what was done, never secrets.
    response_elements: dict[str, Any] | None = field(default=None)

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def account_id(self) -> str:
        return self.caller.account.id

    def arn(self, resource: str) -> str:
        return f"arn:aws:iam::{self.account_id}:{resource}"
