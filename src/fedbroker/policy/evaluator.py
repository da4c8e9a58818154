"""Authorization: combine every applicable policy type into one decision.

IAM User Guide, "Policy evaluation logic", "Policy evaluation for requests within a single
account" and "Cross-account policy evaluation logic":

1. an explicit ``Deny`` in any applicable policy (SCP, RCP, resource, identity, boundary,
   session) decides;
2. resource control policies: only their denies count (``RCPFullAWSAccess`` is always attached);
3. service control policies: every level from the root to the account must allow;
4. resource-based policy, identity-based policies, permissions boundary and session policies,
   with the documented exceptions in the same account: a grant to a user ARN, a session ARN, a
   federated-user ARN or to ``*`` applies directly (not limited by an implicit deny in the
   boundary or session policy); a grant to a role ARN counts as an identity grant and is
   limited by both; a grant to the account delegates to identity policies. Across accounts
   both sides must allow.

The root user has every identity permission in its own account; SCPs and explicit denies still
apply. Principals that are not IAM principals of an account (web-identity or SAML providers,
services, anonymous callers) have no identity side: only a resource-based policy can allow them,
and SCPs do not apply to them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fedbroker.policy.conditions import ConditionMiss
from fedbroker.policy.decision import Decision, Effect, GroupOutcome, Match, Miss
from fedbroker.policy.document import Policy, Statement
from fedbroker.policy.principals import Via
from fedbroker.policy.request import PrincipalType, Request

_MEMO_LIMIT = 4096


class PolicyGroup:
    """Policies evaluated together (all identity policies, or one SCP level), indexed.

    Statements are bucketed by the literal service prefix of their actions, so a request for
    ``s3:GetObject`` never looks at ``ec2:*`` statements; the statements whose action matches
    a given action are remembered, so each later request with that action goes straight to
    resource and condition checks.
    """

    __slots__ = ("_any", "_by_service", "_memo", "label", "policies")

    def __init__(self, label: str, policies: Sequence[Policy]) -> None:
        self.label = label
        self.policies = tuple(policies)
        self._by_service: dict[str, list[tuple[int, Statement]]] = {}
        self._any: list[tuple[int, Statement]] = []
        ordinal = 0
        for policy in self.policies:
            for stmt in policy.statements:
                entry = (ordinal, stmt)
                ordinal += 1
                if stmt.services is None:
                    self._any.append(entry)
                else:
                    for service in stmt.services:
                        self._by_service.setdefault(service, []).append(entry)
        self._memo: dict[str, tuple[Statement, ...]] = {}

    def candidates(self, action_key: str) -> tuple[Statement, ...]:
        """Statements whose ``Action``/``NotAction`` matches, in document order."""
        found = self._memo.get(action_key)
        if found is not None:
            return found
        service = action_key.split(":", 1)[0]
        entries = self._by_service.get(service, [])
        if self._any:
            entries = sorted(entries + self._any, key=lambda e: e[0])
        found = tuple(stmt for _, stmt in entries if stmt.action_match(action_key))
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[action_key] = found
        return found

    def evaluate(self, request: Request, has_boundary: bool = False) -> GroupOutcome:
        allows: list[Match] = []
        denies: list[Match] = []
        misses: list[Miss] = []
        for stmt in self.candidates(request.action_key):
            applies, via, miss = stmt.applies(request, has_boundary)
            if applies:
                (allows if stmt.allow else denies).append(Match(stmt, via, miss))
            elif miss is not None:
                misses.append(Miss(stmt, miss))
        return GroupOutcome(self.label, allows, denies, misses)


@dataclass(eq=False)
class PolicySet:
    """Every policy that applies to one principal's requests, compiled and indexed.

    ``scp`` and ``rcp`` are levels from the organization root down to the account; each level
    is a list of policies attached there.
    """

    identity: Sequence[Policy] = ()
    boundary: Policy | None = None
    session: Sequence[Policy] | None = None
    resource: Policy | None = None
    scp: Sequence[Sequence[Policy]] = ()
    rcp: Sequence[Sequence[Policy]] = ()
    # Role trust policies (and KMS key policies) are the documented exception to "identity or
    # resource policy": the resource policy itself must allow, even within one account.
    resource_required: bool = False
    _groups: dict[str, PolicyGroup] = field(init=False, repr=False)
    _scp: tuple[PolicyGroup, ...] = field(init=False, repr=False)
    _rcp: tuple[PolicyGroup, ...] = field(init=False, repr=False)
    _identity_only: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        groups = {"identity": PolicyGroup("identity", self.identity)}
        if self.boundary is not None:
            groups["boundary"] = PolicyGroup("boundary", [self.boundary])
        if self.session is not None:
            groups["session"] = PolicyGroup("session", self.session)
        if self.resource is not None:
            groups["resource"] = PolicyGroup("resource", [self.resource])
        self._groups = groups
        self._scp = tuple(PolicyGroup(f"scp[{i}]", lvl) for i, lvl in enumerate(self.scp))
        self._rcp = tuple(PolicyGroup(f"rcp[{i}]", lvl) for i, lvl in enumerate(self.rcp))
        self._identity_only = (
            len(groups) == 1 and not self._scp and not self._rcp and not self.resource_required
        )

    def authorize(self, request: Request) -> Decision:
        return authorize(self, request)


def authorize(policies: PolicySet, request: Request) -> Decision:
    """Decide ``request`` against ``policies``. Never raises for a well-formed request."""
    principal = request.principal
    iam_principal = principal is None or principal.type.has_identity_policies
    if (
        policies._identity_only
        and iam_principal
        and request.same_account
        and (principal is None or principal.type is not PrincipalType.ROOT)
    ):
        return _identity_only(policies._groups["identity"].evaluate(request), request)

    outcomes: list[GroupOutcome] = []
    scp = [g.evaluate(request) for g in policies._scp] if iam_principal else []
    rcp = [g.evaluate(request) for g in policies._rcp]
    has_boundary = policies.boundary is not None
    groups = {name: g.evaluate(request, has_boundary) for name, g in policies._groups.items()}
    outcomes.extend(scp)
    outcomes.extend(rcp)
    outcomes.extend(groups.values())
    final = tuple(outcomes)

    for outcome in outcomes:
        if outcome.denies:
            return _explicit(outcome, final)

    for outcome in scp:
        if not outcome.allows:
            return _scp_gap(outcome, final, request)

    resource = groups.get("resource")
    resource_allows = resource.allows if resource is not None else []
    direct = _first(resource_allows, (Via.EVERYONE, Via.DIRECT))
    via_role = _first(resource_allows, (Via.ROLE,))
    via_account = _first(resource_allows, (Via.ACCOUNT,))

    if not iam_principal:
        if direct is not None:
            return _allow("resource", direct, final)
        if resource is not None:
            return _implicit(
                "resource", final, lambda: "no resource-based policy allows this principal"
            )
        return _implicit(
            "resource",
            final,
            lambda: "a principal outside the account needs a resource-based policy to allow it",
        )

    if policies.resource_required and not resource_allows:
        return _implicit(
            "resource",
            final,
            lambda: (
                "the role's trust policy does not allow this principal (a trust policy must allow "
                "the principal itself)"
            ),
        )

    # The identity side: identity policies (plus a same-account grant to the role ARN), capped
    # by the permissions boundary and the session policies.
    same_account = request.same_account
    gap = "identity"  # which part of the identity side failed, for the explanation
    if principal is not None and principal.type is PrincipalType.ROOT:
        identity_ok, identity_label, identity_match = True, "root", None
    else:
        identity = groups["identity"]
        identity_match = identity.allows[0] if identity.allows else None
        if identity_match is None and same_account and via_role is not None:
            identity_match = via_role
        identity_ok = identity_match is not None
        identity_label = "resource" if identity_ok and not identity.allows else "identity"
        for cap in ("boundary", "session"):
            capped = groups.get(cap)
            if identity_ok and capped is not None and not capped.allows:
                identity_ok, identity_label, gap = False, cap, cap

    if same_account:
        if direct is not None:
            return _allow("resource", direct, final)
        if identity_ok:
            return _allow(identity_label, identity_match, final)
        return _implicit(identity_label, final, lambda: _gap(gap, request))

    resource_grant = direct or via_role or via_account
    if resource_grant is None:
        return _implicit(
            "resource",
            final,
            lambda: (
                "a cross-account request needs the resource-based policy to allow it, and it does "
                "not"
            ),
        )
    if not identity_ok:
        return _implicit(
            identity_label,
            final,
            lambda: _gap(gap, request) + " (cross-account requests need both sides)",
        )
    return _allow("resource", resource_grant, final)


def _scp_gap(
    outcome: GroupOutcome, outcomes: tuple[GroupOutcome, ...], request: Request
) -> Decision:
    level = outcome.label[4:-1]
    return _implicit(
        outcome.label,
        outcomes,
        lambda: f"the service control policies at level {level} do not allow `{request.action}`",
    )


def _identity_only(outcome: GroupOutcome, request: Request) -> Decision:
    """The common case: identity-based policies alone decide."""
    outcomes = (outcome,)
    if outcome.denies:
        return _explicit(outcome, outcomes)
    if outcome.allows:
        return _allow("identity", outcome.allows[0], outcomes)
    return _implicit("identity", outcomes, lambda: _gap("identity", request))


_GAPS = {
    "identity": "no identity-based policy allows",
    "boundary": "the permissions boundary does not allow",
    "session": "the session policy does not allow",
}


def _gap(part: str, request: Request) -> str:
    return f"{_GAPS[part]} `{request.action}` on `{request.resource}`"


def _first(matches: Sequence[Match], kinds: tuple[Via, ...]) -> Match | None:
    for match in matches:
        if match.via in kinds:
            return match
    return None


_KIND_NAMES = {
    "identity": "identity-based policy",
    "boundary": "permissions boundary",
    "session": "session policy",
    "resource": "resource-based policy",
}


def _kind(label: str) -> str:
    if label.startswith("scp"):
        return " (service control policy)"
    if label.startswith("rcp"):
        return " (resource control policy)"
    return f" ({_KIND_NAMES.get(label, label)})"


def _explicit(outcome: GroupOutcome, outcomes: tuple[GroupOutcome, ...]) -> Decision:
    match = outcome.denies[0]
    label = outcome.label
    return Decision(
        Effect.EXPLICIT_DENY,
        label,
        outcomes,
        match,
        lambda: f"explicitly denied by {match.statement.describe()}{_kind(label)}",
    )


def _allow(label: str, match: Match | None, outcomes: tuple[GroupOutcome, ...]) -> Decision:
    if match is None:
        return Decision(
            Effect.ALLOW,
            label,
            outcomes,
            None,
            lambda: "allowed: the root user has full access in its own account",
        )
    return Decision(
        Effect.ALLOW,
        label,
        outcomes,
        match,
        lambda: f"allowed by {match.statement.describe()}{_kind(label)}",
    )


def _implicit(label: str, outcomes: tuple[GroupOutcome, ...], why: Callable[[], str]) -> Decision:
    return Decision(Effect.IMPLICIT_DENY, label, outcomes, None, why)


__all__ = ["ConditionMiss", "PolicyGroup", "PolicySet", "authorize"]
