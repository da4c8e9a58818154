"""Users: CreateUser, GetUser, UpdateUser, DeleteUser, ListUsers, tags, permissions boundary."""

from __future__ import annotations

from typing import Any

from fedbroker.directory.model import Kind
from fedbroker.iam.api import page_result, paginate
from fedbroker.iam.context import CallContext
from fedbroker.iam.operations.boundaries import managed_policy_by_arn, register_boundary
from fedbroker.iam.operations.common import (
    arn_for,
    caller_or_named_user,
    entity_dict,
    list_resource,
    named,
    new_entity,
    refuse_delete_while,
    rename_or_move,
    request_tag_context,
    user_resource_or_self,
)
from fedbroker.iam.operations.tagging import register_tagging
from fedbroker.iam.params import Params
from fedbroker.iam.registry import operation


def _create_context(ctx: CallContext, params: Params) -> dict[str, object]:
    context = request_tag_context(params)
    boundary = params.form.get("PermissionsBoundary")
    if boundary:
        context["iam:PermissionsBoundary"] = boundary
    return context


@operation("CreateUser", arn_for(Kind.USER), extra_context=_create_context)
def create_user(ctx: CallContext, params: Params) -> dict[str, Any]:
    name = params.name("UserName", 64)
    assert name is not None
    path = params.path() or "/"
    attrs: dict[str, object] = {"tags": params.tags()}
    boundary = params.opt("PermissionsBoundary", max_len=2048)
    if boundary is not None:
        attrs["permissions_boundary"] = managed_policy_by_arn(ctx, boundary).arn
    user = new_entity(ctx, Kind.USER, name, path, attrs)
    ctx.response_elements = {"user": {"userName": user.name, "userId": user.id, "arn": user.arn}}
    return {"User": entity_dict(user)}


@operation("GetUser", user_resource_or_self, read_only=True)
def get_user(ctx: CallContext, params: Params) -> dict[str, Any]:
    user = caller_or_named_user(ctx, params)
    if user is None:  # the root user asking about itself
        account = ctx.caller.account
        return {
            "User": {
                "UserId": account.id,
                "Arn": account.root_arn,
                "Path": "/",
                "UserName": account.alias or account.id,
                "CreateDate": account.created,
            }
        }
    return {"User": entity_dict(user)}


@operation("UpdateUser", arn_for(Kind.USER))
def update_user(ctx: CallContext, params: Params) -> dict[str, Any]:
    rename_or_move(ctx, params, Kind.USER)
    return {}


@operation("DeleteUser", arn_for(Kind.USER))
def delete_user(ctx: CallContext, params: Params) -> dict[str, Any]:
    user = named(ctx, params, Kind.USER)
    store = ctx.store
    refuse_delete_while(
        user,
        [
            (store.list_access_keys(ctx.account_id, user), "access keys"),
            (store.list_inline(user), "inline policies"),
            (store.attached(user), "attached policies"),
            (store.groups_of(user), "group memberships"),
            ([1] if user.attrs.get("login_profile") else [], "a login profile"),
            ([1] if user.attrs.get("mfa_devices") else [], "MFA devices"),
        ],
    )
    store.delete_entity(user)
    return {}


@operation("ListUsers", list_resource(Kind.USER), read_only=True)
def list_users(ctx: CallContext, params: Params) -> dict[str, Any]:
    prefix = params.path("PathPrefix") or "/"
    users = ctx.store.list_entities(ctx.account_id, Kind.USER, prefix)
    page, marker = paginate(users, params, key=lambda u: u.name.lower())
    listed = []
    for user in page:
        shape = entity_dict(user)
        shape.pop("Tags", None)  # ListUsers does not return tags
        listed.append(shape)
    return page_result("Users", listed, marker)


register_tagging(Kind.USER, "User")
register_boundary(Kind.USER, "User")
