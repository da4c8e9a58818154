"""The account password policy: UpdateAccountPasswordPolicy, GetAccountPasswordPolicy,
DeleteAccountPasswordPolicy (IAM API Reference; "Set an account password policy for IAM
users").

Kept in ``Account.settings["password_policy"]``. As in IAM, an update replaces the whole
policy (a parameter left out takes its default), Get answers NoSuchEntity while the account
has no custom policy (IAM's default policy then applies), and Delete returns to the default.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fedbroker.credentials.password_policy import (
    MAX_AGE_DAYS,
    MAX_LENGTH,
    MAX_REUSE_PREVENTION,
    MIN_LENGTH,
    SETTINGS_KEY,
    PasswordPolicy,
    custom_policy,
)
from fedbroker.errors import NoSuchEntityError
from fedbroker.iam.context import CallContext
from fedbroker.iam.params import Params
from fedbroker.iam.registry import operation


def _account_wide(ctx: CallContext, params: Params) -> str:
    return "*"  # these actions have no resource type ("Service Authorization Reference")


def _optional_int(params: Params, name: str, low: int, high: int) -> int | None:
    return params.integer(name, 0, low, high) if name in params.form else None


@operation("UpdateAccountPasswordPolicy", _account_wide)
def update_account_password_policy(ctx: CallContext, params: Params) -> dict[str, Any]:
    policy = PasswordPolicy(
        minimum_length=params.integer("MinimumPasswordLength", MIN_LENGTH, MIN_LENGTH, MAX_LENGTH),
        require_symbols=params.boolean("RequireSymbols"),
        require_numbers=params.boolean("RequireNumbers"),
        require_uppercase=params.boolean("RequireUppercaseCharacters"),
        require_lowercase=params.boolean("RequireLowercaseCharacters"),
        allow_users_to_change=params.boolean("AllowUsersToChangePassword"),
        max_age_days=_optional_int(params, "MaxPasswordAge", 1, MAX_AGE_DAYS),
        reuse_prevention=_optional_int(params, "PasswordReusePrevention", 1, MAX_REUSE_PREVENTION),
        hard_expiry=params.boolean("HardExpiry"),
    )
    account = ctx.store.get_account(ctx.account_id)
    settings = {**account.settings, SETTINGS_KEY: policy.to_settings()}
    ctx.store.update_account(replace(account, settings=settings))
    return {}


def _users_may_read_policy(ctx: CallContext, params: Params) -> bool:
    """AllowUsersToChangePassword also lets every IAM user read the policy it must meet."""
    policy = custom_policy(ctx.store.get_account(ctx.account_id))
    return policy is not None and policy.allow_users_to_change


@operation(
    "GetAccountPasswordPolicy",
    _account_wide,
    read_only=True,
    implicit_grant=_users_may_read_policy,
)
def get_account_password_policy(ctx: CallContext, params: Params) -> dict[str, Any]:
    policy = custom_policy(ctx.store.get_account(ctx.account_id))
    if policy is None:
        raise NoSuchEntityError(
            f"the password policy with domain name `{ctx.account_id}` cannot be found"
        )
    return {"PasswordPolicy": policy.to_settings()}


@operation("DeleteAccountPasswordPolicy", _account_wide)
def delete_account_password_policy(ctx: CallContext, params: Params) -> dict[str, Any]:
    account = ctx.store.get_account(ctx.account_id)
    if SETTINGS_KEY not in account.settings:
        raise NoSuchEntityError(
            f"the password policy with domain name `{ctx.account_id}` cannot be found"
        )
    settings = {k: v for k, v in account.settings.items() if k != SETTINGS_KEY}
    ctx.store.update_account(replace(account, settings=settings))
    return {}
