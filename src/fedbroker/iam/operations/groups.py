"""Groups: Create/Get/Update/Delete/List, membership, ListGroupsForUser."""

from __future__ import annotations

from typing import Any

from fedbroker.directory.model import Kind
from fedbroker.iam.api import page_result, paginate
from fedbroker.iam.context import CallContext
from fedbroker.iam.operations.common import (
    arn_for,
    entity_dict,
    list_resource,
    named,
    new_entity,
    refuse_delete_while,
    rename_or_move,
)
from fedbroker.iam.params import Params
from fedbroker.iam.registry import operation


@operation("CreateGroup", arn_for(Kind.GROUP))
def create_group(ctx: CallContext, params: Params) -> dict[str, Any]:
    name = params.name("GroupName", 128)
    assert name is not None
    group = new_entity(ctx, Kind.GROUP, name, params.path() or "/", {})
    return {"Group": entity_dict(group)}


@operation("GetGroup", arn_for(Kind.GROUP), read_only=True)
def get_group(ctx: CallContext, params: Params) -> dict[str, Any]:
    group = named(ctx, params, Kind.GROUP)
    members = ctx.store.members_of(group)
    page, marker = paginate(members, params, key=lambda u: u.name.lower())
    users = []
    for user in page:
        shape = entity_dict(user)
        shape.pop("Tags", None)
        users.append(shape)
    result = page_result("Users", users, marker)
    result["Group"] = entity_dict(group)
    return result


@operation("UpdateGroup", arn_for(Kind.GROUP))
def update_group(ctx: CallContext, params: Params) -> dict[str, Any]:
    rename_or_move(ctx, params, Kind.GROUP)
    return {}


@operation("DeleteGroup", arn_for(Kind.GROUP))
def delete_group(ctx: CallContext, params: Params) -> dict[str, Any]:
    group = named(ctx, params, Kind.GROUP)
    refuse_delete_while(
        group,
        [
            (ctx.store.members_of(group), "users"),
            (ctx.store.list_inline(group), "inline policies"),
            (ctx.store.attached(group), "attached policies"),
        ],
    )
    ctx.store.delete_entity(group)
    return {}


@operation("ListGroups", list_resource(Kind.GROUP), read_only=True)
def list_groups(ctx: CallContext, params: Params) -> dict[str, Any]:
    groups = ctx.store.list_entities(ctx.account_id, Kind.GROUP, params.path("PathPrefix") or "/")
    page, marker = paginate(groups, params, key=lambda g: g.name.lower())
    return page_result("Groups", [entity_dict(g) for g in page], marker)


@operation("AddUserToGroup", arn_for(Kind.GROUP))
def add_user_to_group(ctx: CallContext, params: Params) -> dict[str, Any]:
    group = named(ctx, params, Kind.GROUP)
    user = named(ctx, params, Kind.USER)
    ctx.store.add_member(group, user)
    return {}


@operation("RemoveUserFromGroup", arn_for(Kind.GROUP))
def remove_user_from_group(ctx: CallContext, params: Params) -> dict[str, Any]:
    group = named(ctx, params, Kind.GROUP)
    user = named(ctx, params, Kind.USER)
    ctx.store.remove_member(group, user)
    return {}


@operation("ListGroupsForUser", arn_for(Kind.USER), read_only=True)
def list_groups_for_user(ctx: CallContext, params: Params) -> dict[str, Any]:
    user = named(ctx, params, Kind.USER)
    page, marker = paginate(ctx.store.groups_of(user), params, key=lambda g: g.name.lower())
    return page_result("Groups", [entity_dict(g) for g in page], marker)
