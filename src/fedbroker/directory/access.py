"""The policies that apply to a principal, compiled once per directory change.

Documents were validated when written, so compiling them here cannot fail for a good
directory; a document that no longer parses (written by an older version) is skipped and the
principal simply gets less access, never more.

The same compiled policies serve two readers: the authorizer of every call (a
:class:`PolicySet`) and the policy simulator, which also needs to say where each policy came
from (:class:`PolicySource`). Both come from one build, so a simulation sees exactly the
policies a real call is decided by.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import Enum

from fedbroker.directory.model import Entity, Kind
from fedbroker.directory.store import Store
from fedbroker.errors import FedbrokerError, NoSuchEntityError
from fedbroker.policy import Policy, PolicyKind, PolicySet, parse_policy

_INLINE_KIND = {
    Kind.USER: PolicyKind.INLINE_USER,
    Kind.GROUP: PolicyKind.INLINE_GROUP,
    Kind.ROLE: PolicyKind.INLINE_ROLE,
}

_DENY_ALL = '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}'


class SourceType(Enum):
    """Where a policy comes from, in IAM's ``PolicySourceType`` vocabulary."""

    USER = "user"  # inline policy of a user
    GROUP = "group"  # inline policy of a group
    ROLE = "role"  # inline policy of a role
    AWS_MANAGED = "aws-managed"
    USER_MANAGED = "user-managed"  # customer managed policy
    RESOURCE = "resource"
    NONE = "none"  # given with the request, stored nowhere


@dataclass(frozen=True, slots=True)
class PolicySource:
    """One compiled policy and where it came from.

    ``source_id`` is what IAM's simulator calls ``SourcePolicyId``: the inline policy's name or
    the managed policy's name. ``document`` is the text as stored (for statement positions).
    """

    source_id: str
    source_type: SourceType
    policy: Policy
    document: str


@dataclass(frozen=True, slots=True)
class PrincipalPolicies:
    """Every policy that applies to one principal, and the policy set built from them."""

    identity: tuple[PolicySource, ...]
    boundary: PolicySource | None
    policy_set: PolicySet = field(compare=False)


class PolicyCache:
    """Compiled policy sets per principal, dropped whenever the directory version moves."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._version = -1
        self._built: dict[str, PrincipalPolicies] = {}
        self._trusts: dict[tuple[str, str], tuple[Policy, PolicySet]] = {}
        self._sessions: dict[tuple[str, str | None, tuple[str, ...]], tuple[int, PolicySet]] = {}

    def trust(self, role: Entity) -> Policy:
        """A role's trust policy, compiled once per text (keyed by the text itself, so a changed
        trust policy can never be answered from the cache)."""
        return self._trust_entry(role)[0]

    def trust_only(self, role: Entity) -> PolicySet:
        """The policy set of a federated caller (a provider, not an IAM principal): the role's
        trust policy alone, which must allow."""
        return self._trust_entry(role)[1]

    def _trust_entry(self, role: Entity) -> tuple[Policy, PolicySet]:
        text = str(role.attrs.get("trust_policy", ""))
        key = (role.id, text)
        with self._lock:
            found = self._trusts.get(key)
        if found is not None:
            return found
        policy = parse_policy(text, PolicyKind.TRUST, f"{role.arn} trust", enforce_size=False)
        entry = (policy, PolicySet(resource=policy, resource_required=True))
        with self._lock:
            if len(self._trusts) > 4096:
                self._trusts.clear()
            self._trusts[key] = entry
        return entry

    def for_principal(self, entity: Entity) -> PolicySet:
        """The policy set that decides ``entity``'s requests."""
        return self.sources(entity).policy_set

    def for_session(
        self, entity: Entity, session_policy: str | None, session_policy_arns: tuple[str, ...]
    ) -> PolicySet:
        """The policy set of a session of ``entity`` (a role, or a user's GetSessionToken
        session): its identity policies and boundary, capped by the session policies.

        Session policies given by ARN are read when the session is used; one deleted since
        simply allows nothing more (the session keeps the cap of the others).
        """
        if session_policy is None and not session_policy_arns:
            return self.for_principal(entity)
        base = self.sources(entity)
        key = (entity.id, session_policy, session_policy_arns)
        with self._lock:
            found = self._sessions.get(key)
        if found is not None and found[0] == self._version:
            return found[1]
        session: list[Policy] = []
        if session_policy is not None:
            compiled = _compile(session_policy, PolicyKind.SESSION, "session policy")
            if compiled is not None:
                session.append(compiled)
        for arn in session_policy_arns:
            source = self._managed_by_arn(entity.account_id, arn)
            if source is not None:
                session.append(source.policy)
        policy_set = PolicySet(
            identity=base.policy_set.identity, boundary=base.policy_set.boundary, session=session
        )
        with self._lock:
            if len(self._sessions) > 4096:
                self._sessions.clear()
            self._sessions[key] = (self._version, policy_set)
        return policy_set

    def sources(self, entity: Entity) -> PrincipalPolicies:
        """The policies of a user (with its groups'), group or role, with their sources."""
        version = self.store.directory_version()
        with self._lock:
            if version != self._version:
                self._built.clear()
                self._version = version
            found = self._built.get(entity.id)
        if found is not None:
            return found
        built = self._build(entity)
        with self._lock:
            if self._version == version:
                self._built[entity.id] = built
        return built

    def _build(self, entity: Entity) -> PrincipalPolicies:
        identity: list[PolicySource] = []
        owners = [entity]
        if entity.kind is Kind.USER:
            owners += self.store.groups_of(entity)
        for owner in owners:
            for inline in self.store.list_inline(owner):
                label = f"{owner.kind.resource_type}/{owner.name}/{inline.name}"
                compiled = _compile(inline.document, _INLINE_KIND[owner.kind], label)
                if compiled is not None:
                    source_type = SourceType(owner.kind.resource_type)
                    identity.append(
                        PolicySource(inline.name, source_type, compiled, inline.document)
                    )
            for managed in self.store.attached(owner):
                source = self._managed(managed)
                if source is not None:
                    identity.append(source)
        boundary = None
        boundary_arn = entity.attrs.get("permissions_boundary")
        if isinstance(boundary_arn, str):
            boundary = self._managed_by_arn(entity.account_id, boundary_arn)
            if boundary is None:
                # A boundary that cannot be read allows nothing rather than everything.
                boundary = PolicySource(
                    boundary_arn.rsplit("/", 1)[-1],
                    SourceType.USER_MANAGED,
                    parse_policy(_DENY_ALL, name=boundary_arn),
                    _DENY_ALL,
                )
        policy_set = PolicySet(
            identity=[s.policy for s in identity],
            boundary=boundary.policy if boundary is not None else None,
        )
        return PrincipalPolicies(tuple(identity), boundary, policy_set)

    def _managed_by_arn(self, account_id: str, arn: str) -> PolicySource | None:
        try:
            policy = self.store.get_entity(account_id, Kind.POLICY, arn.rsplit("/", 1)[-1])
        except NoSuchEntityError:
            return None
        return self._managed(policy)

    def _managed(self, policy: Entity) -> PolicySource | None:
        for version in self.store.list_versions(policy):
            if version.is_default:
                compiled = _compile(version.document, PolicyKind.MANAGED, policy.arn)
                if compiled is None:
                    return None
                return PolicySource(
                    policy.name, SourceType.USER_MANAGED, compiled, version.document
                )
        return None


def _compile(document: str, kind: PolicyKind, name: str) -> Policy | None:
    try:
        return parse_policy(document, kind, name, enforce_size=False)
    except FedbrokerError:
        return None
