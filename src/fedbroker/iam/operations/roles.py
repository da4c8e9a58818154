"""Roles: Create/Get/Update/Delete/List, UpdateAssumeRolePolicy, tags, permissions boundary."""

from __future__ import annotations

import urllib.parse
from dataclasses import replace
from typing import Any

from fedbroker.directory.model import Entity, Kind
from fedbroker.iam.api import page_result, paginate
from fedbroker.iam.context import CallContext
from fedbroker.iam.operations.boundaries import managed_policy_by_arn, register_boundary
from fedbroker.iam.operations.common import (
    arn_for,
    entity_dict,
    list_resource,
    named,
    new_entity,
    refuse_delete_while,
    request_tag_context,
)
from fedbroker.iam.operations.policies import validated
from fedbroker.iam.operations.tagging import register_tagging
from fedbroker.iam.params import MAX_DESCRIPTION, Params
from fedbroker.iam.registry import operation
from fedbroker.policy import PolicyKind

# MaxSessionDuration bounds, in seconds (CreateRole).
MIN_SESSION_DURATION = 3600
MAX_SESSION_DURATION = 43200


def role_dict(role: Entity, full: bool = True) -> dict[str, Any]:
    shape = entity_dict(role)
    # IAM returns the trust policy URL-encoded; botocore decodes it back into a document.
    shape["AssumeRolePolicyDocument"] = urllib.parse.quote(str(role.attrs["trust_policy"]))
    shape["MaxSessionDuration"] = role.attrs.get("max_session_duration", 3600)
    if role.attrs.get("description"):
        shape["Description"] = role.attrs["description"]
    if not full:
        shape.pop("Tags", None)
        shape.pop("PermissionsBoundary", None)
    return shape


def _create_context(ctx: CallContext, params: Params) -> dict[str, object]:
    context = request_tag_context(params)
    if params.form.get("PermissionsBoundary"):
        context["iam:PermissionsBoundary"] = params.form["PermissionsBoundary"]
    return context


@operation("CreateRole", arn_for(Kind.ROLE), extra_context=_create_context)
def create_role(ctx: CallContext, params: Params) -> dict[str, Any]:
    name = params.name("RoleName", 64)
    assert name is not None
    trust = validated(params.req("AssumeRolePolicyDocument", max_len=131072), PolicyKind.TRUST)
    attrs: dict[str, object] = {
        "trust_policy": trust,
        "max_session_duration": params.integer(
            "MaxSessionDuration", MIN_SESSION_DURATION, MIN_SESSION_DURATION, MAX_SESSION_DURATION
        ),
        "tags": params.tags(),
    }
    description = params.opt("Description", max_len=MAX_DESCRIPTION)
    if description:
        attrs["description"] = description
    boundary = params.opt("PermissionsBoundary", max_len=2048)
    if boundary is not None:
        attrs["permissions_boundary"] = managed_policy_by_arn(ctx, boundary).arn
    role = new_entity(ctx, Kind.ROLE, name, params.path() or "/", attrs)
    ctx.response_elements = {"role": {"roleName": role.name, "roleId": role.id, "arn": role.arn}}
    return {"Role": role_dict(role)}


@operation("GetRole", arn_for(Kind.ROLE), read_only=True)
def get_role(ctx: CallContext, params: Params) -> dict[str, Any]:
    return {"Role": role_dict(named(ctx, params, Kind.ROLE))}


@operation("UpdateRole", arn_for(Kind.ROLE))
def update_role(ctx: CallContext, params: Params) -> dict[str, Any]:
    role = named(ctx, params, Kind.ROLE)
    attrs = dict(role.attrs)
    if "MaxSessionDuration" in params.form:
        attrs["max_session_duration"] = params.integer(
            "MaxSessionDuration", MIN_SESSION_DURATION, MIN_SESSION_DURATION, MAX_SESSION_DURATION
        )
    if "Description" in params.form:
        attrs["description"] = params.opt("Description", max_len=MAX_DESCRIPTION, min_len=0) or ""
    ctx.store.update_entity(replace(role, attrs=attrs))
    return {}


@operation("UpdateAssumeRolePolicy", arn_for(Kind.ROLE))
def update_assume_role_policy(ctx: CallContext, params: Params) -> dict[str, Any]:
    role = named(ctx, params, Kind.ROLE)
    trust = validated(params.req("PolicyDocument", max_len=131072), PolicyKind.TRUST)
    ctx.store.update_entity(replace(role, attrs={**role.attrs, "trust_policy": trust}))
    return {}


@operation("DeleteRole", arn_for(Kind.ROLE))
def delete_role(ctx: CallContext, params: Params) -> dict[str, Any]:
    role = named(ctx, params, Kind.ROLE)
    refuse_delete_while(
        role,
        [
            (ctx.store.list_inline(role), "inline policies"),
            (ctx.store.attached(role), "attached policies"),
        ],
    )
    ctx.store.delete_entity(role)
    return {}


@operation("ListRoles", list_resource(Kind.ROLE), read_only=True)
def list_roles(ctx: CallContext, params: Params) -> dict[str, Any]:
    roles = ctx.store.list_entities(ctx.account_id, Kind.ROLE, params.path("PathPrefix") or "/")
    page, marker = paginate(roles, params, key=lambda r: r.name.lower())
    return page_result("Roles", [role_dict(r, full=False) for r in page], marker)


register_tagging(Kind.ROLE, "Role")
register_boundary(Kind.ROLE, "Role")
