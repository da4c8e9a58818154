"""The account as a whole: GetAccountAuthorizationDetails and GetAccountSummary.

IAM API Reference, "GetAccountAuthorizationDetails" (every user, group, role and managed policy
with the policies that apply to it, documents URL-encoded as everywhere in IAM) and
"GetAccountSummary" (entity counts and quotas). The broker has no AWS managed policies, instance
profiles, server or signing certificates: those lists are empty and those counts zero.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from fedbroker.directory.model import Entity, Kind
from fedbroker.errors import InvalidInputError
from fedbroker.iam.api import page_result, paginate
from fedbroker.iam.context import CallContext
from fedbroker.iam.operations.access_keys import MAX_KEYS_PER_USER
from fedbroker.iam.operations.common import entity_dict
from fedbroker.iam.operations.policies import MAX_ATTACHED, MAX_VERSIONS, policy_dict
from fedbroker.iam.operations.roles import role_dict
from fedbroker.iam.params import Params
from fedbroker.iam.registry import operation
from fedbroker.iam.shapes import XmlMap
from fedbroker.policy import PolicyKind

FILTERS = ("User", "Group", "Role", "LocalManagedPolicy", "AWSManagedPolicy")
# Listed in this order, and paged through as one sequence (as IAM does).
_ORDER = ((Kind.USER, "User"), (Kind.GROUP, "Group"), (Kind.ROLE, "Role"))
_LISTS = {
    Kind.USER: "UserDetailList",
    Kind.GROUP: "GroupDetailList",
    Kind.ROLE: "RoleDetailList",
    Kind.POLICY: "Policies",
}

# IAM's default quotas ("IAM and AWS STS quotas"), where the broker has no limit of its own.
QUOTAS = {
    "UsersQuota": 5000,
    "GroupsQuota": 300,
    "RolesQuota": 1000,
    "PoliciesQuota": 1500,
    "InstanceProfilesQuota": 1000,
    "ServerCertificatesQuota": 20,
    "GroupsPerUserQuota": 10,
    "SigningCertificatesPerUserQuota": 2,
    "PolicyVersionsInUseQuota": 10000,
    "GlobalEndpointTokenVersion": 1,
}


def _encoded(document: str) -> str:
    return urllib.parse.quote(document)


def _inline(ctx: CallContext, owner: Entity) -> list[dict[str, Any]]:
    return [
        {"PolicyName": p.name, "PolicyDocument": _encoded(p.document)}
        for p in ctx.store.list_inline(owner)
    ]


def _attached(ctx: CallContext, owner: Entity) -> list[dict[str, Any]]:
    return [{"PolicyName": p.name, "PolicyArn": p.arn} for p in ctx.store.attached(owner)]


def _user_detail(ctx: CallContext, user: Entity) -> dict[str, Any]:
    shape = entity_dict(user)
    shape["UserPolicyList"] = _inline(ctx, user)
    shape["GroupList"] = [g.name for g in ctx.store.groups_of(user)]
    shape["AttachedManagedPolicies"] = _attached(ctx, user)
    return shape


def _group_detail(ctx: CallContext, group: Entity) -> dict[str, Any]:
    shape = entity_dict(group)
    shape["GroupPolicyList"] = _inline(ctx, group)
    shape["AttachedManagedPolicies"] = _attached(ctx, group)
    return shape


def _role_detail(ctx: CallContext, role: Entity) -> dict[str, Any]:
    shape = role_dict(role)
    for member in ("Description", "MaxSessionDuration"):  # not members of RoleDetail
        shape.pop(member, None)
    shape["InstanceProfileList"] = []
    shape["RolePolicyList"] = _inline(ctx, role)
    shape["AttachedManagedPolicies"] = _attached(ctx, role)
    return shape


def _policy_detail(ctx: CallContext, policy: Entity) -> dict[str, Any]:
    shape = policy_dict(ctx, policy)
    shape.pop("Tags", None)  # not a member of ManagedPolicyDetail
    shape["PolicyVersionList"] = [
        {
            "Document": _encoded(v.document),
            "VersionId": v.version_id,
            "IsDefaultVersion": v.is_default,
            "CreateDate": v.created,
        }
        for v in ctx.store.list_versions(policy)
    ]
    return shape


_DETAIL = {
    Kind.USER: _user_detail,
    Kind.GROUP: _group_detail,
    Kind.ROLE: _role_detail,
    Kind.POLICY: _policy_detail,
}


def _filters(params: Params) -> set[str]:
    chosen = params.members("Filter")
    for name in chosen:
        if name not in FILTERS:
            raise InvalidInputError(f"`{name}` is not a filter (expected one of {FILTERS})")
    return set(chosen or FILTERS)


@operation("GetAccountAuthorizationDetails", lambda ctx, params: "*", read_only=True)
def get_account_authorization_details(ctx: CallContext, params: Params) -> dict[str, Any]:
    chosen = _filters(params)
    kinds = [kind for kind, name in _ORDER if name in chosen]
    if "LocalManagedPolicy" in chosen:  # the broker holds no AWS managed policies
        kinds.append(Kind.POLICY)
    # One sequence across the four lists; a marker is the position in it, so it stays valid
    # while entities are added or removed elsewhere in the sequence.
    items = [
        (f"{order}:{entity.name.lower()}", entity)
        for order, kind in enumerate(kinds)
        for entity in sorted(
            ctx.store.list_entities(ctx.account_id, kind), key=lambda e: e.name.lower()
        )
    ]
    page, marker = paginate(items, params, key=lambda item: item[0])
    lists: dict[str, list[dict[str, Any]]] = {_LISTS[kind]: [] for kind in _LISTS}
    for _, entity in page:
        lists[_LISTS[entity.kind]].append(_DETAIL[entity.kind](ctx, entity))
    result = page_result("UserDetailList", lists.pop("UserDetailList"), marker)
    result.update(lists)
    return result


def _mfa_devices(user: Entity) -> int:
    devices = user.attrs.get("mfa_devices")
    return len(devices) if isinstance(devices, list) else 0


@operation("GetAccountSummary", lambda ctx, params: "*", read_only=True)
def get_account_summary(ctx: CallContext, params: Params) -> dict[str, Any]:
    store, account = ctx.store, ctx.caller.account
    users = store.list_entities(account.id, Kind.USER)
    policies = store.list_entities(account.id, Kind.POLICY)
    mfa = sum(_mfa_devices(u) for u in users)
    summary = {
        "Users": len(users),
        "Groups": len(store.list_entities(account.id, Kind.GROUP)),
        "Roles": len(store.list_entities(account.id, Kind.ROLE)),
        "Policies": len(policies),
        "PolicyVersionsInUse": sum(len(store.attached_to(p)) for p in policies),
        "InstanceProfiles": 0,
        "ServerCertificates": 0,
        "Providers": len(store.list_entities(account.id, Kind.OIDC_PROVIDER))
        + len(store.list_entities(account.id, Kind.SAML_PROVIDER)),
        "MFADevices": mfa,
        "MFADevicesInUse": mfa,
        "AccountMFAEnabled": 0,
        "AccountAccessKeysPresent": int(bool(store.list_access_keys(account.id, None))),
        "AccountPasswordPresent": int(bool(account.root_password_hash)),
        "AccountSigningCertificatesPresent": 0,
        "AccessKeysPerUserQuota": MAX_KEYS_PER_USER,
        "AttachedPoliciesPerUserQuota": MAX_ATTACHED,
        "AttachedPoliciesPerGroupQuota": MAX_ATTACHED,
        "AttachedPoliciesPerRoleQuota": MAX_ATTACHED,
        "VersionsPerPolicyQuota": MAX_VERSIONS,
        "UserPolicySizeQuota": PolicyKind.INLINE_USER.rules.max_chars,
        "GroupPolicySizeQuota": PolicyKind.INLINE_GROUP.rules.max_chars,
        "RolePolicySizeQuota": PolicyKind.INLINE_ROLE.rules.max_chars,
        "PolicySizeQuota": PolicyKind.MANAGED.rules.max_chars,
        "AssumeRolePolicySizeQuota": PolicyKind.TRUST.rules.max_chars,
        **QUOTAS,
    }
    return {"SummaryMap": XmlMap(summary)}
