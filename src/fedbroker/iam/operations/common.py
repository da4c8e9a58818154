"""Shapes and look-ups shared by the operations."""

from __future__ import annotations

from collections.abc import Callable, Sized
from dataclasses import replace
from typing import Any

from fedbroker.directory.ids import new_unique_id
from fedbroker.directory.model import Entity, Kind, PolicyVersion
from fedbroker.errors import DeleteConflictError, NoSuchEntityError, ValidationError
from fedbroker.iam.context import CallContext
from fedbroker.iam.params import Params

NAME_LIMITS = {Kind.USER: 64, Kind.GROUP: 128, Kind.ROLE: 64, Kind.POLICY: 128}
PARAM = {
    Kind.USER: "UserName",
    Kind.GROUP: "GroupName",
    Kind.ROLE: "RoleName",
    Kind.POLICY: "PolicyName",
}


def tags_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def entity_dict(entity: Entity) -> dict[str, Any]:
    """The common members of User, Group and Role."""
    kind = entity.kind.resource_type.capitalize()
    out: dict[str, Any] = {
        "Path": entity.path,
        f"{kind}Name": entity.name,
        f"{kind}Id": entity.id,
        "Arn": entity.arn,
        "CreateDate": entity.created,
    }
    boundary = entity.attrs.get("permissions_boundary")
    if isinstance(boundary, str):
        out["PermissionsBoundary"] = {
            "PermissionsBoundaryType": "PermissionsBoundaryPolicy",
            "PermissionsBoundaryArn": boundary,
        }
    if entity.tags:
        out["Tags"] = tags_list(entity.tags)
    return out


def lookup(ctx: CallContext, kind: Kind, name: str) -> Entity:
    return ctx.store.get_entity(ctx.account_id, kind, name)


def named(ctx: CallContext, params: Params, kind: Kind) -> Entity:
    """The entity named by the operation's ``UserName``/``GroupName``/``RoleName``."""
    name = params.name(PARAM[kind], NAME_LIMITS[kind])
    assert name is not None
    found = ctx.prefetched.pop((kind.name, name.lower()), None)
    if isinstance(found, Entity):
        return found
    return lookup(ctx, kind, name)


def arn_for(kind: Kind) -> Callable[[CallContext, Params], str]:
    """Resource ARN of the entity named in the request (with its path when it exists)."""

    def resource(ctx: CallContext, params: Params) -> str:
        name = params.form.get(PARAM[kind], "")
        try:
            entity = lookup(ctx, kind, name)
            ctx.prefetched[(kind.name, name.lower())] = entity
            return entity.arn
        except (NoSuchEntityError, ValidationError):
            path = params.form.get("Path", "/") or "/"
            return ctx.arn(f"{kind.resource_type}{path}{name}")

    return resource


def caller_or_named_user(ctx: CallContext, params: Params) -> Entity | None:
    """``UserName`` if given, else the calling user (``None`` when the root user calls)."""
    if "UserName" in params.form:
        return named(ctx, params, Kind.USER)
    return ctx.caller.user


def user_resource_or_self(ctx: CallContext, params: Params) -> str:
    if "UserName" in params.form:
        return arn_for(Kind.USER)(ctx, params)
    return ctx.caller.arn


def list_resource(kind: Kind) -> Callable[[CallContext, Params], str]:
    def resource(ctx: CallContext, params: Params) -> str:
        return ctx.arn(f"{kind.resource_type}{params.form.get('PathPrefix', '/')}")

    return resource


def new_entity(
    ctx: CallContext,
    kind: Kind,
    name: str,
    path: str,
    attrs: dict[str, object],
    first_document: str | None = None,
) -> Entity:
    """Create an entity; a managed policy is created together with its first version."""
    entity = Entity(kind, ctx.account_id, name, new_unique_id(kind.id_prefix), path, ctx.now, attrs)
    first = None
    if first_document is not None:
        first = PolicyVersion(entity.arn, "v1", first_document, True, ctx.now)
    ctx.store.create_entity(entity, first)
    return entity


def request_tag_context(params: Params) -> dict[str, object]:
    """``aws:RequestTag/k`` and ``aws:TagKeys`` for operations that set tags."""
    tags = params.tags()
    context: dict[str, object] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    keys = list(tags) or params.members("TagKeys")
    if keys:
        context["aws:TagKeys"] = keys
    return context


def resource_tag_context(kind: Kind) -> Callable[[CallContext, Params], dict[str, object]]:
    def context(ctx: CallContext, params: Params) -> dict[str, object]:
        out = request_tag_context(params)
        try:
            entity = lookup(ctx, kind, params.form.get(PARAM[kind], ""))
        except (NoSuchEntityError, ValidationError):
            return out
        out.update({f"aws:ResourceTag/{k}": v for k, v in entity.tags.items()})
        return out

    return context


def rename_or_move(ctx: CallContext, params: Params, kind: Kind) -> None:
    """``Update{User,Group}``: ``New…Name`` and ``NewPath``, both optional."""
    entity = named(ctx, params, kind)
    noun = kind.resource_type.capitalize()
    new_name = params.name(f"New{noun}Name", NAME_LIMITS[kind], required=False) or entity.name
    new_path = params.path("NewPath", default=None) or entity.path
    ctx.store.update_entity(replace(entity, name=new_name, path=new_path))


def refuse_delete_while(entity: Entity, blockers: list[tuple[Sized, str]]) -> None:
    """IAM deletes nothing that still has parts: each must be removed first."""
    for items, what in blockers:
        if len(items):
            raise DeleteConflictError(
                f"cannot delete {entity.kind.resource_type} `{entity.name}`: remove its {what} "
                "first"
            )
