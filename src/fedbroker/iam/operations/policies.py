"""Policies: inline (users, groups, roles), managed with versions, attachments.

Every document is validated by the policy engine before it is stored, with the grammar and
size limit of where it is used.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from fedbroker.directory.model import Entity, Kind, PolicyVersion
from fedbroker.errors import DeleteConflictError, LimitExceededError, NoSuchEntityError
from fedbroker.iam.api import page_result, paginate
from fedbroker.iam.context import CallContext
from fedbroker.iam.operations.boundaries import managed_policy_by_arn
from fedbroker.iam.operations.common import (
    PARAM,
    arn_for,
    list_resource,
    named,
    new_entity,
    tags_list,
)
from fedbroker.iam.params import MAX_DESCRIPTION, NAME, Params
from fedbroker.iam.registry import operation
from fedbroker.policy import PolicyKind, parse_policy
from fedbroker.policy.kinds import policy_size

MAX_VERSIONS = 5
MAX_ATTACHED = 10
INLINE_KIND = {
    Kind.USER: PolicyKind.INLINE_USER,
    Kind.GROUP: PolicyKind.INLINE_GROUP,
    Kind.ROLE: PolicyKind.INLINE_ROLE,
}


def validated(document: str, kind: PolicyKind) -> str:
    """``document`` if the engine accepts it for ``kind``; raises IAM's error otherwise."""
    parse_policy(document, kind)
    return document


def check_inline_total(kind: Kind, owner_name: str, documents: Iterable[str]) -> None:
    """IAM limits the inline policies of one user, group or role together ("IAM and AWS STS
    quotas"); raises :class:`LimitExceededError` when ``documents`` are over that limit."""
    rules = INLINE_KIND[kind].rules
    total = sum(policy_size(document, rules.count_whitespace) for document in documents)
    if total > rules.max_chars:
        raise LimitExceededError(
            f"maximum policy size of {rules.max_chars} characters "
            f"exceeded for {kind.resource_type} `{owner_name}` "
            "(all inline policies together)"
        )


def _encoded(document: str) -> str:
    # IAM returns documents URL-encoded (RFC 3986); botocore decodes them.
    return urllib.parse.quote(document)


# --- inline policies --------------------------------------------------------------------------


def register_inline(kind: Kind, noun: str) -> None:
    resource = arn_for(kind)
    owner_param = PARAM[kind]

    def put(ctx: CallContext, params: Params) -> dict[str, Any]:
        owner = named(ctx, params, kind)
        name = params.req("PolicyName", max_len=128, pattern=NAME)
        document = validated(params.req("PolicyDocument", max_len=131072), INLINE_KIND[kind])
        others = [
            p.document for p in ctx.store.list_inline(owner) if p.name.lower() != name.lower()
        ]
        check_inline_total(kind, owner.name, [document, *others])
        ctx.store.put_inline(owner, name, document)
        return {}

    def get(ctx: CallContext, params: Params) -> dict[str, Any]:
        owner = named(ctx, params, kind)
        policy = ctx.store.get_inline(owner, params.req("PolicyName", max_len=128, pattern=NAME))
        return {
            owner_param: owner.name,
            "PolicyName": policy.name,
            "PolicyDocument": _encoded(policy.document),
        }

    def delete(ctx: CallContext, params: Params) -> dict[str, Any]:
        owner = named(ctx, params, kind)
        ctx.store.delete_inline(owner, params.req("PolicyName", max_len=128, pattern=NAME))
        return {}

    def list_names(ctx: CallContext, params: Params) -> dict[str, Any]:
        owner = named(ctx, params, kind)
        names = [p.name for p in ctx.store.list_inline(owner)]
        page, marker = paginate(names, params, key=str.lower)
        return page_result("PolicyNames", page, marker)

    operation(f"Put{noun}Policy", resource)(put)
    operation(f"Get{noun}Policy", resource, read_only=True)(get)
    operation(f"Delete{noun}Policy", resource)(delete)
    operation(f"List{noun}Policies", resource, read_only=True)(list_names)


# --- attachments ------------------------------------------------------------------------------


def register_attachments(kind: Kind, noun: str) -> None:
    resource = arn_for(kind)

    def policy_context(ctx: CallContext, params: Params) -> dict[str, object]:
        return {"iam:PolicyARN": params.form.get("PolicyArn", "")}

    def attach(ctx: CallContext, params: Params) -> dict[str, Any]:
        owner = named(ctx, params, kind)
        policy = managed_policy_by_arn(ctx, params.arn("PolicyArn"))
        attached = ctx.store.attached(owner)
        if policy.id not in {p.id for p in attached} and len(attached) >= MAX_ATTACHED:
            raise LimitExceededError(f"cannot exceed quota for PoliciesPer{noun}: {MAX_ATTACHED}")
        ctx.store.attach(owner, policy)
        return {}

    def detach(ctx: CallContext, params: Params) -> dict[str, Any]:
        owner = named(ctx, params, kind)
        ctx.store.detach(owner, managed_policy_by_arn(ctx, params.arn("PolicyArn")))
        return {}

    def list_attached(ctx: CallContext, params: Params) -> dict[str, Any]:
        owner = named(ctx, params, kind)
        prefix = params.path("PathPrefix") or "/"
        policies = [p for p in ctx.store.attached(owner) if p.path.startswith(prefix)]
        page, marker = paginate(policies, params, key=lambda p: p.name.lower())
        return page_result(
            "AttachedPolicies", [{"PolicyName": p.name, "PolicyArn": p.arn} for p in page], marker
        )

    operation(f"Attach{noun}Policy", resource, extra_context=policy_context)(attach)
    operation(f"Detach{noun}Policy", resource, extra_context=policy_context)(detach)
    operation(f"ListAttached{noun}Policies", resource, read_only=True)(list_attached)


for _kind, _noun in ((Kind.USER, "User"), (Kind.GROUP, "Group"), (Kind.ROLE, "Role")):
    register_inline(_kind, _noun)
    register_attachments(_kind, _noun)


# --- managed policies and versions -----------------------------------------------------------


def _policy_resource(ctx: CallContext, params: Params) -> str:
    return params.form.get("PolicyArn") or ctx.arn("policy/*")


def _create_resource(ctx: CallContext, params: Params) -> str:
    return ctx.arn(f"policy{params.form.get('Path', '/') or '/'}{params.form.get('PolicyName')}")


def _boundary_users(ctx: CallContext, policy: Entity) -> int:
    return sum(
        1
        for kind in (Kind.USER, Kind.ROLE)
        for e in ctx.store.list_entities(ctx.account_id, kind)
        if e.attrs.get("permissions_boundary") == policy.arn
    )


def policy_dict(ctx: CallContext, policy: Entity, full: bool = True) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "PolicyName": policy.name,
        "PolicyId": policy.id,
        "Arn": policy.arn,
        "Path": policy.path,
        "DefaultVersionId": policy.attrs.get("default_version", "v1"),
        "AttachmentCount": len(ctx.store.attached_to(policy)),
        "PermissionsBoundaryUsageCount": _boundary_users(ctx, policy),
        "IsAttachable": True,
        "CreateDate": policy.created,
        "UpdateDate": policy.attrs.get("updated", policy.created),
    }
    if full and policy.attrs.get("description"):
        shape["Description"] = policy.attrs["description"]
    if full and policy.tags:
        shape["Tags"] = tags_list(policy.tags)
    return shape


def _version_dict(version: PolicyVersion, with_document: bool) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "VersionId": version.version_id,
        "IsDefaultVersion": version.is_default,
        "CreateDate": version.created,
    }
    if with_document:
        shape["Document"] = _encoded(version.document)
    return shape


@operation("CreatePolicy", _create_resource)
def create_policy(ctx: CallContext, params: Params) -> dict[str, Any]:
    name = params.req("PolicyName", max_len=128, pattern=NAME)
    document = validated(params.req("PolicyDocument", max_len=131072), PolicyKind.MANAGED)
    attrs: dict[str, object] = {"default_version": "v1", "next_version": 2, "tags": params.tags()}
    description = params.opt("Description", max_len=MAX_DESCRIPTION)
    if description:
        attrs["description"] = description
    policy = new_entity(ctx, Kind.POLICY, name, params.path() or "/", attrs, document)
    ctx.response_elements = {"policy": {"policyName": policy.name, "arn": policy.arn}}
    return {"Policy": policy_dict(ctx, policy)}


@operation("GetPolicy", _policy_resource, read_only=True)
def get_policy(ctx: CallContext, params: Params) -> dict[str, Any]:
    return {"Policy": policy_dict(ctx, managed_policy_by_arn(ctx, params.arn("PolicyArn")))}


@operation("ListPolicies", list_resource(Kind.POLICY), read_only=True)
def list_policies(ctx: CallContext, params: Params) -> dict[str, Any]:
    scope = params.opt("Scope") or "All"
    policies: list[Entity] = []
    if scope in ("All", "Local"):
        policies = ctx.store.list_entities(
            ctx.account_id, Kind.POLICY, params.path("PathPrefix") or "/"
        )
    if params.boolean("OnlyAttached"):
        policies = [p for p in policies if ctx.store.attached_to(p)]
    page, marker = paginate(policies, params, key=lambda p: p.name.lower())
    return page_result("Policies", [policy_dict(ctx, p, full=False) for p in page], marker)


@operation("DeletePolicy", _policy_resource)
def delete_policy(ctx: CallContext, params: Params) -> dict[str, Any]:
    policy = managed_policy_by_arn(ctx, params.arn("PolicyArn"))
    if ctx.store.attached_to(policy):
        raise DeleteConflictError("cannot delete a policy attached to entities; detach it first")
    if _boundary_users(ctx, policy):
        raise DeleteConflictError("cannot delete a policy used as a permissions boundary")
    if len(ctx.store.list_versions(policy)) > 1:
        raise DeleteConflictError(
            "this policy has more than one version; delete the non-default versions first"
        )
    ctx.store.delete_entity(policy)
    return {}


@operation("CreatePolicyVersion", _policy_resource)
def create_policy_version(ctx: CallContext, params: Params) -> dict[str, Any]:
    policy = managed_policy_by_arn(ctx, params.arn("PolicyArn"))
    document = validated(params.req("PolicyDocument", max_len=131072), PolicyKind.MANAGED)
    if len(ctx.store.list_versions(policy)) >= MAX_VERSIONS:
        raise LimitExceededError(
            f"a managed policy can have up to {MAX_VERSIONS} versions; "
            "delete a version before creating a new one"
        )
    number = int(str(policy.attrs.get("next_version", 2)))
    version_id = f"v{number}"
    default = params.boolean("SetAsDefault")
    attrs = {**policy.attrs, "next_version": number + 1, "updated": ctx.now.isoformat()}
    if default:
        attrs["default_version"] = version_id
    version = PolicyVersion(policy.arn, version_id, document, default, ctx.now)
    ctx.store.add_version(policy, version)
    ctx.store.update_entity(replace(policy, attrs=attrs))
    return {"PolicyVersion": _version_dict(version, with_document=False)}


@operation("GetPolicyVersion", _policy_resource, read_only=True)
def get_policy_version(ctx: CallContext, params: Params) -> dict[str, Any]:
    policy = managed_policy_by_arn(ctx, params.arn("PolicyArn"))
    version_id = params.req("VersionId", max_len=16)
    for version in ctx.store.list_versions(policy):
        if version.version_id == version_id:
            return {"PolicyVersion": _version_dict(version, with_document=True)}
    raise NoSuchEntityError(f"policy `{policy.arn}` version `{version_id}` does not exist")


@operation("ListPolicyVersions", _policy_resource, read_only=True)
def list_policy_versions(ctx: CallContext, params: Params) -> dict[str, Any]:
    policy = managed_policy_by_arn(ctx, params.arn("PolicyArn"))
    versions = ctx.store.list_versions(policy)
    return {
        "Versions": [_version_dict(v, with_document=False) for v in versions],
        "IsTruncated": False,
    }


@operation("SetDefaultPolicyVersion", _policy_resource)
def set_default_policy_version(ctx: CallContext, params: Params) -> dict[str, Any]:
    policy = managed_policy_by_arn(ctx, params.arn("PolicyArn"))
    version_id = params.req("VersionId", max_len=16)
    ctx.store.set_default_version(policy, version_id)
    ctx.store.update_entity(replace(policy, attrs={**policy.attrs, "default_version": version_id}))
    return {}


@operation("DeletePolicyVersion", _policy_resource)
def delete_policy_version(ctx: CallContext, params: Params) -> dict[str, Any]:
    policy = managed_policy_by_arn(ctx, params.arn("PolicyArn"))
    version_id = params.req("VersionId", max_len=16)
    if policy.attrs.get("default_version") == version_id:
        raise DeleteConflictError("cannot delete the default version of a policy")
    ctx.store.delete_version(policy, version_id)
    return {}
