"""The policies that apply to a principal, compiled once per directory change.

Documents were validated when written, so compiling them here cannot fail for a good
directory; a document that no longer parses (written by an older version) is skipped and the
principal simply gets less access, never more.
"""

from __future__ import annotations

import threading

from fedbroker.directory.model import Entity, Kind
from fedbroker.directory.store import Store
from fedbroker.errors import FedbrokerError, NoSuchEntityError
from fedbroker.policy import Policy, PolicyKind, PolicySet, parse_policy

_INLINE_KIND = {
    Kind.USER: PolicyKind.INLINE_USER,
    Kind.GROUP: PolicyKind.INLINE_GROUP,
    Kind.ROLE: PolicyKind.INLINE_ROLE,
}


class PolicyCache:
    """Compiled policy sets per principal, dropped whenever the directory version moves."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._version = -1
        self._sets: dict[str, PolicySet] = {}

    def for_principal(self, entity: Entity) -> PolicySet:
        version = self.store.directory_version()
        with self._lock:
            if version != self._version:
                self._sets.clear()
                self._version = version
            found = self._sets.get(entity.id)
        if found is not None:
            return found
        built = self._build(entity)
        with self._lock:
            if self._version == version:
                self._sets[entity.id] = built
        return built

    def _build(self, entity: Entity) -> PolicySet:
        identity: list[Policy] = []
        owners = [entity]
        if entity.kind is Kind.USER:
            owners += self.store.groups_of(entity)
        for owner in owners:
            for inline in self.store.list_inline(owner):
                label = f"{owner.kind.resource_type}/{owner.name}/{inline.name}"
                compiled = _compile(inline.document, _INLINE_KIND[owner.kind], label)
                if compiled is not None:
                    identity.append(compiled)
            for managed in self.store.attached(owner):
                compiled = self._managed(managed)
                if compiled is not None:
                    identity.append(compiled)
        boundary = None
        boundary_arn = entity.attrs.get("permissions_boundary")
        if isinstance(boundary_arn, str):
            boundary = self._managed_by_arn(entity.account_id, boundary_arn)
            if boundary is None:
                # A boundary that cannot be read allows nothing rather than everything.
                boundary = parse_policy(
                    {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}],
                    },
                    name=boundary_arn,
                )
        return PolicySet(identity=identity, boundary=boundary)

    def _managed_by_arn(self, account_id: str, arn: str) -> Policy | None:
        try:
            policy = self.store.get_entity(account_id, Kind.POLICY, arn.rsplit("/", 1)[-1])
        except NoSuchEntityError:
            return None
        return self._managed(policy)

    def _managed(self, policy: Entity) -> Policy | None:
        for version in self.store.list_versions(policy):
            if version.is_default:
                return _compile(version.document, PolicyKind.MANAGED, policy.arn)
        return None


def _compile(document: str, kind: PolicyKind, name: str) -> Policy | None:
    try:
        return parse_policy(document, kind, name, enforce_size=False)
    except FedbrokerError:
        return None
