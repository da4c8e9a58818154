"""The policy simulator: SimulatePrincipalPolicy, SimulateCustomPolicy and the context keys.

IAM API Reference, "SimulatePrincipalPolicy", "SimulateCustomPolicy",
"GetContextKeysForPrincipalPolicy", "GetContextKeysForCustomPolicy"; IAM User Guide, "Testing
IAM policies with the IAM policy simulator".

Decisions come from the engine that authorizes real calls, over the very policies it uses for
the principal (:meth:`PolicyCache.sources`), plus what the request adds: more identity policies,
a permissions boundary that replaces the principal's own, a resource-based policy, service
control policies (custom simulations only). The simulator adds nothing to the request context
beyond ``ContextEntries``; keys the policies need and were not given are reported in
``MissingContextValues``.
"""

from __future__ import annotations

import re
from typing import Any

from fedbroker.directory.access import PolicySource, SourceType
from fedbroker.directory.model import Entity, Kind
from fedbroker.errors import InvalidInputError, MalformedPolicyDocumentError, NoSuchEntityError
from fedbroker.iam.api import paginate
from fedbroker.iam.context import CallContext
from fedbroker.iam.operations.context_entries import context_entries
from fedbroker.iam.operations.evaluation_results import Sources, evaluation_result
from fedbroker.iam.params import Params
from fedbroker.iam.registry import operation
from fedbroker.policy import (
    Policy,
    PolicyKind,
    PolicySet,
    Principal,
    PrincipalType,
    make_request,
    parse_policy,
)
from fedbroker.policy.keys import policy_keys

MAX_DOCUMENT = 131072
MAX_SCP_LEVELS = 7
_SOURCE_ARN = re.compile(
    r"arn:aws:iam::(\d{12}):(user|group|role)(/(?:[\x21-\x7e]*/)?)([\w+=,.@-]+)"
)
_USER_ARN = re.compile(r"arn:aws:iam::(\d{12}):user/(?:[\x21-\x7e]*/)?[\w+=,.@-]+")
_OWNER = re.compile(r"(?:arn:aws:iam::)?(\d{12})(?::root)?")
_ARN_ACCOUNT = re.compile(r"arn:[^:]*:[^:]*:[^:]*:(\d{12}):")


# --- what the request brings --------------------------------------------------------------


def _documents(params: Params, field: str, kind: PolicyKind) -> list[PolicySource]:
    """``field.member.N`` policy documents, compiled; named ``field.N`` as IAM names them."""
    return [
        _compiled(params, f"{field}.member.{n}", f"{field}.{n}", kind, SourceType.NONE)
        for n in range(1, len(params.members(field)) + 1)
    ]


def _compiled(
    params: Params, form_key: str, name: str, kind: PolicyKind, source_type: SourceType
) -> PolicySource:
    text = params.req(form_key, max_len=MAX_DOCUMENT)
    try:
        policy = parse_policy(text, kind, name, enforce_size=False)
    except MalformedPolicyDocumentError as exc:
        exc.message = f"{name}: {exc.message}"
        exc.args = (exc.message,)
        raise
    return PolicySource(name, source_type, policy, text)


def _boundary_input(params: Params) -> PolicySource | None:
    given = _documents(params, "PermissionsBoundaryPolicyInputList", PolicyKind.MANAGED)
    if len(given) > 1:
        raise InvalidInputError("an entity has one permissions boundary: pass at most one policy")
    return given[0] if given else None


def _resource_policy(params: Params) -> PolicySource | None:
    if "ResourcePolicy" not in params.form:
        return None
    return _compiled(
        params, "ResourcePolicy", "ResourcePolicy", PolicyKind.RESOURCE, SourceType.RESOURCE
    )


def _scp_levels(params: Params) -> list[list[PolicySource]]:
    field = "OrderedOrganizationPolicyInputList"
    levels: list[list[PolicySource]] = []
    index = 1
    while any(k.startswith(f"{field}.member.{index}.") for k in params.form):
        inner = f"{field}.member.{index}.ServiceControlPolicyInputList"
        levels.append(
            [
                _compiled(
                    params,
                    f"{inner}.member.{n}",
                    f"{field}.{index}.{n}",
                    PolicyKind.SCP,
                    SourceType.NONE,
                )
                for n in range(1, len(params.members(inner)) + 1)
            ]
        )
        index += 1
    if len(levels) > MAX_SCP_LEVELS:
        raise InvalidInputError(f"at most {MAX_SCP_LEVELS} organization levels may be given")
    return levels


def _actions(params: Params) -> list[str]:
    actions = params.members("ActionNames")
    if not actions:
        raise InvalidInputError("`ActionNames` must name at least one action")
    for action in actions:
        service, _, name = action.partition(":")
        if not 3 <= len(action) <= 128 or not service or not name:
            raise InvalidInputError(f"`{action[:128]}` is not an action like `s3:GetObject`")
    return actions


def _resources(params: Params) -> tuple[list[str], bool]:
    """The resources to simulate on, and whether the caller listed them."""
    resources = params.members("ResourceArns")
    for resource in resources:
        if not 1 <= len(resource) <= 2048:
            raise InvalidInputError("each of `ResourceArns` must be 1 to 2048 characters")
    return (resources, True) if resources else (["*"], False)


def _unsupported(params: Params, *fields: str) -> None:
    for name in fields:
        if any(k == name or k.startswith(f"{name}.") for k in params.form):
            raise InvalidInputError(f"`{name}` is not supported by this broker's simulator")


def _caller(params: Params, default: Principal | None, needed: bool) -> Principal | None:
    """``CallerArn`` (an IAM user) or the default; required with a resource-based policy."""
    arn = params.opt("CallerArn", max_len=2048)
    if arn is not None:
        match = _USER_ARN.fullmatch(arn)
        if match is None:
            raise InvalidInputError(f"`CallerArn` must be the ARN of an IAM user, not `{arn}`")
        return Principal(arn, PrincipalType.USER, match.group(1))
    if needed and (default is None or default.type is not PrincipalType.USER):
        raise InvalidInputError(
            "`CallerArn` is required with a `ResourcePolicy` when the simulated principal "
            "is not an IAM user"
        )
    return default


def _resource_owner(params: Params) -> str | None:
    owner = params.opt("ResourceOwner", max_len=2048)
    if owner is None:
        return None
    match = _OWNER.fullmatch(owner)
    if match is None:
        raise InvalidInputError(
            f"`ResourceOwner` must be an account ARN (`arn:aws:iam::123456789012:root`), "
            f"not `{owner}`"
        )
    return match.group(1)


# --- running a simulation ------------------------------------------------------------------


def _simulate(
    params: Params,
    identity: list[PolicySource],
    boundary: PolicySource | None,
    resource: PolicySource | None,
    scp: list[list[PolicySource]],
    principal: Principal | None,
    owner: str | None,
) -> dict[str, Any]:
    actions = _actions(params)
    resources, listed = _resources(params)
    context = context_entries(params)
    policy_set = PolicySet(
        identity=[s.policy for s in identity],
        boundary=boundary.policy if boundary is not None else None,
        resource=resource.policy if resource is not None else None,
        scp=[[s.policy for s in level] for level in scp],
    )
    everything = [*identity, *([boundary] if boundary else []), *([resource] if resource else [])]
    sources = Sources([*everything, *(s for level in scp for s in level)])
    # IAM: a resource whose ARN names no account belongs to `ResourceOwner`, else to the
    # caller's account.
    default_account = owner or (principal.account if principal is not None else None)
    pairs = [(a, r) for a in actions for r in resources]
    page, marker = paginate(range(len(pairs)), params, key=lambda i: f"{i:010d}")
    results = []
    for index in page:
        action, resource_arn = pairs[index]
        account_match = _ARN_ACCOUNT.match(resource_arn)
        account = account_match.group(1) if account_match else default_account
        request = make_request(action, resource_arn, principal, context, account)
        decision = policy_set.authorize(request)
        results.append(evaluation_result(decision, request, sources, per_resource=listed))
    out: dict[str, Any] = {"EvaluationResults": results, "IsTruncated": marker is not None}
    if marker is not None:
        out["Marker"] = marker
    return out


# --- the principal ------------------------------------------------------------------------


def _source_resource(ctx: CallContext, params: Params) -> str:
    return params.form.get("PolicySourceArn") or "*"


def _source_entity(ctx: CallContext, params: Params) -> Entity:
    """The user, group or role named by ``PolicySourceArn`` in the caller's account."""
    arn = params.arn("PolicySourceArn")
    match = _SOURCE_ARN.fullmatch(arn)
    if match is None:
        raise InvalidInputError(
            f"`PolicySourceArn` must be the ARN of a user, group or role, not `{arn}`"
        )
    account, kind_name, _, name = match.groups()
    missing = NoSuchEntityError(f"`{arn}` does not exist")
    if account != ctx.account_id:
        raise missing
    kind = {"user": Kind.USER, "group": Kind.GROUP, "role": Kind.ROLE}[kind_name]
    entity = ctx.store.get_entity(ctx.account_id, kind, name)
    if entity.arn != arn:
        raise missing
    return entity


def _entity_principal(entity: Entity) -> Principal | None:
    if entity.kind is Kind.USER:
        return Principal(entity.arn, PrincipalType.USER, entity.account_id)
    if entity.kind is Kind.ROLE:
        return Principal(entity.arn, PrincipalType.ROLE, entity.account_id, entity.arn)
    return None  # a group is not a principal: its policies are simulated for no one


@operation("SimulatePrincipalPolicy", _source_resource, read_only=True)
def simulate_principal_policy(ctx: CallContext, params: Params) -> dict[str, Any]:
    _unsupported(params, "PolicyExclusionList", "ResourceHandlingOption")
    entity = _source_entity(ctx, params)
    stored = ctx.services.policies.sources(entity)
    extra = _documents(params, "PolicyInputList", PolicyKind.MANAGED)
    boundary = _boundary_input(params) or stored.boundary
    resource = _resource_policy(params)
    principal = _caller(params, _entity_principal(entity), needed=resource is not None)
    return _simulate(
        params,
        [*stored.identity, *extra],
        boundary,
        resource,
        [],
        principal,
        _resource_owner(params),
    )


@operation("SimulateCustomPolicy", lambda ctx, params: "*", read_only=True)
def simulate_custom_policy(ctx: CallContext, params: Params) -> dict[str, Any]:
    _unsupported(params, "ResourceHandlingOption")
    identity = _documents(params, "PolicyInputList", PolicyKind.MANAGED)
    if not identity:
        raise InvalidInputError("`PolicyInputList` must hold at least one policy")
    boundary = _boundary_input(params)
    resource = _resource_policy(params)
    scp = _scp_levels(params)
    principal = _caller(params, None, needed=resource is not None)
    return _simulate(params, identity, boundary, resource, scp, principal, _resource_owner(params))


# --- context keys -------------------------------------------------------------------------


def _policies(sources: list[PolicySource]) -> list[Policy]:
    return [source.policy for source in sources]


@operation("GetContextKeysForPrincipalPolicy", _source_resource, read_only=True)
def get_context_keys_for_principal_policy(ctx: CallContext, params: Params) -> dict[str, Any]:
    entity = _source_entity(ctx, params)
    stored = ctx.services.policies.sources(entity)
    given = _documents(params, "PolicyInputList", PolicyKind.MANAGED)
    boundary = [stored.boundary] if stored.boundary is not None else []
    return {"ContextKeyNames": policy_keys(_policies([*stored.identity, *boundary, *given]))}


@operation("GetContextKeysForCustomPolicy", lambda ctx, params: "*", read_only=True)
def get_context_keys_for_custom_policy(ctx: CallContext, params: Params) -> dict[str, Any]:
    given = _documents(params, "PolicyInputList", PolicyKind.MANAGED)
    if not given:
        raise InvalidInputError("`PolicyInputList` must hold at least one policy")
    return {"ContextKeyNames": policy_keys(_policies(given))}
