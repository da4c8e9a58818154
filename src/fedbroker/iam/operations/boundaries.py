"""Permissions boundaries of users and roles: Put/Delete{User,Role}PermissionsBoundary."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fedbroker.directory.model import Entity, Kind
from fedbroker.errors import NoSuchEntityError
from fedbroker.iam.context import CallContext
from fedbroker.iam.operations.common import arn_for, named
from fedbroker.iam.params import Params
from fedbroker.iam.registry import operation


def managed_policy_by_arn(ctx: CallContext, arn: str) -> Entity:
    """A customer managed policy of the caller's account, by ARN (path included)."""
    prefix = ctx.arn("policy")
    if not arn.startswith(prefix + "/"):
        raise NoSuchEntityError(f"policy `{arn}` does not exist or is not attachable")
    policy = ctx.store.get_entity(ctx.account_id, Kind.POLICY, arn.rsplit("/", 1)[-1])
    if policy.arn != arn:
        raise NoSuchEntityError(f"policy `{arn}` does not exist or is not attachable")
    return policy


def register_boundary(kind: Kind, noun: str) -> None:
    resource = arn_for(kind)

    def boundary_context(ctx: CallContext, params: Params) -> dict[str, object]:
        return {"iam:PermissionsBoundary": params.form.get("PermissionsBoundary", "")}

    def put(ctx: CallContext, params: Params) -> dict[str, Any]:
        entity = named(ctx, params, kind)
        policy = managed_policy_by_arn(ctx, params.arn("PermissionsBoundary"))
        ctx.store.update_entity(
            replace(entity, attrs={**entity.attrs, "permissions_boundary": policy.arn})
        )
        return {}

    def delete(ctx: CallContext, params: Params) -> dict[str, Any]:
        entity = named(ctx, params, kind)
        attrs = {k: v for k, v in entity.attrs.items() if k != "permissions_boundary"}
        ctx.store.update_entity(replace(entity, attrs=attrs))
        return {}

    operation(f"Put{noun}PermissionsBoundary", resource, extra_context=boundary_context)(put)
    operation(f"Delete{noun}PermissionsBoundary", resource)(delete)
