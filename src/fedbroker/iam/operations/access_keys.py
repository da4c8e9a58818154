"""Access keys: Create/List/Update/Delete, GetAccessKeyLastUsed. At most two per user."""

from __future__ import annotations

from typing import Any

from fedbroker.credentials.sealing import access_key_context
from fedbroker.directory.ids import new_access_key_id, new_secret_access_key
from fedbroker.directory.model import AccessKey, Entity, KeyStatus
from fedbroker.errors import LimitExceededError, NoSuchEntityError, ValidationError
from fedbroker.iam.context import CallContext
from fedbroker.iam.operations.common import caller_or_named_user, user_resource_or_self
from fedbroker.iam.params import Params
from fedbroker.iam.registry import operation

MAX_KEYS_PER_USER = 2


def create_key(
    ctx_store: Any, master_key: Any, account_id: str, user: Entity | None, now: Any
) -> tuple[AccessKey, str]:
    """Make and store a new active key; returns it with the clear secret (shown once)."""
    existing = ctx_store.list_access_keys(account_id, user)
    if len(existing) >= MAX_KEYS_PER_USER:
        owner = f"user `{user.name}`" if user is not None else "the root user"
        raise LimitExceededError(
            f"cannot exceed quota for AccessKeysPerUser: {MAX_KEYS_PER_USER} ({owner})"
        )
    key_id = new_access_key_id()
    secret = new_secret_access_key()
    key = AccessKey(
        key_id,
        account_id,
        user.id if user else None,
        master_key.seal(secret.encode(), access_key_context(key_id)),
        KeyStatus.ACTIVE,
        now,
    )
    ctx_store.create_access_key(key)
    return key, secret


def _owned_key(ctx: CallContext, params: Params) -> tuple[AccessKey, Entity | None]:
    user = caller_or_named_user(ctx, params)
    key_id = params.req("AccessKeyId", min_len=16, max_len=128)
    try:
        key = ctx.store.get_access_key(key_id)
    except NoSuchEntityError:
        key = None
    owner_id = user.id if user is not None else None
    if key is None or key.account_id != ctx.account_id or key.user_id != owner_id:
        who = f"user `{user.name}`" if user is not None else "the root user"
        raise NoSuchEntityError(f"the access key with id `{key_id}` cannot be found for {who}")
    return key, user


def _user_name(user: Entity | None, ctx: CallContext) -> str:
    return user.name if user is not None else (ctx.caller.account.alias or ctx.account_id)


@operation("CreateAccessKey", user_resource_or_self)
def create_access_key(ctx: CallContext, params: Params) -> dict[str, Any]:
    user = caller_or_named_user(ctx, params)
    key, secret = create_key(ctx.store, ctx.services.master_key, ctx.account_id, user, ctx.now)
    ctx.response_elements = {
        "accessKey": {
            "accessKeyId": key.access_key_id,
            "status": key.status.value,
            "userName": _user_name(user, ctx),
        }
    }
    return {
        "AccessKey": {
            "UserName": _user_name(user, ctx),
            "AccessKeyId": key.access_key_id,
            "Status": key.status.value,
            "SecretAccessKey": secret,
            "CreateDate": key.created,
        }
    }


@operation("ListAccessKeys", user_resource_or_self, read_only=True)
def list_access_keys(ctx: CallContext, params: Params) -> dict[str, Any]:
    user = caller_or_named_user(ctx, params)
    keys = ctx.store.list_access_keys(ctx.account_id, user)
    return {
        "AccessKeyMetadata": [
            {
                "UserName": _user_name(user, ctx),
                "AccessKeyId": k.access_key_id,
                "Status": k.status.value,
                "CreateDate": k.created,
            }
            for k in keys
        ],
        "IsTruncated": False,
    }


@operation("UpdateAccessKey", user_resource_or_self)
def update_access_key(ctx: CallContext, params: Params) -> dict[str, Any]:
    key, _ = _owned_key(ctx, params)
    status = params.req("Status")
    try:
        ctx.store.set_access_key_status(key.access_key_id, KeyStatus(status))
    except ValueError:
        raise ValidationError(
            f"1 validation error detected: value `{status}` at `Status` failed "
            "to satisfy constraint: member must satisfy enum value set: "
            "[Active, Inactive]"
        ) from None
    return {}


@operation("DeleteAccessKey", user_resource_or_self)
def delete_access_key(ctx: CallContext, params: Params) -> dict[str, Any]:
    key, _ = _owned_key(ctx, params)
    ctx.store.delete_access_key(key.access_key_id)
    return {}


def _last_used_resource(ctx: CallContext, params: Params) -> str:
    try:
        key = ctx.store.get_access_key(params.form.get("AccessKeyId", ""))
    except NoSuchEntityError:
        return ctx.arn("user/*")
    if key.user_id is None or key.account_id != ctx.account_id:
        return ctx.caller.account.root_arn
    return ctx.store.get_entity_by_id(key.user_id).arn


@operation("GetAccessKeyLastUsed", _last_used_resource, read_only=True)
def get_access_key_last_used(ctx: CallContext, params: Params) -> dict[str, Any]:
    key_id = params.req("AccessKeyId", min_len=16, max_len=128)
    key = ctx.store.get_access_key(key_id)
    if key.account_id != ctx.account_id:
        raise NoSuchEntityError(f"the access key with id `{key_id}` cannot be found")
    user = ctx.store.get_entity_by_id(key.user_id) if key.user_id else None
    used: dict[str, Any] = {
        "ServiceName": key.last_used_service or "N/A",
        "Region": key.last_used_region or "N/A",
    }
    if key.last_used is not None:
        used["LastUsedDate"] = key.last_used
    return {"UserName": _user_name(user, ctx), "AccessKeyLastUsed": used}
