"""Console passwords: CreateLoginProfile, GetLoginProfile, UpdateLoginProfile,
DeleteLoginProfile and ChangePassword (IAM API Reference; "Managing passwords for IAM users").

Passwords are checked against the account password policy and hashed with scrypt by
:mod:`fedbroker.credentials.console`. A password never appears in a response, an error
message or an audit event (the audit layer hides ``Password``, ``OldPassword`` and
``NewPassword``; validation errors here never echo the value).
"""

from __future__ import annotations

import re
from typing import Any

from fedbroker.credentials import console
from fedbroker.credentials.password_policy import custom_policy, effective_policy
from fedbroker.directory.model import Entity, Kind
from fedbroker.errors import (
    AccessDeniedError,
    EntityAlreadyExistsError,
    InvalidInputError,
    InvalidUserTypeError,
    NoSuchEntityError,
    ValidationError,
)
from fedbroker.iam.context import CallContext
from fedbroker.iam.operations.common import (
    arn_for,
    caller_or_named_user,
    named,
    user_resource_or_self,
)
from fedbroker.iam.params import Params
from fedbroker.iam.registry import operation

# IAM's passwordType: 1 to 128 characters, tab, line feed, carriage return, U+0020 to U+00FF.
PASSWORD = re.compile(r"[\t\n\r\x20-\xff]+")
MAX_PASSWORD = 128


def password_param(params: Params, name: str) -> str:
    """A required password parameter. Its errors never show the value."""
    value = params.form.get(name)
    if value is None:
        raise ValidationError(
            f"1 validation error detected: value null at `{name}` failed to satisfy "
            "constraint: member must not be null"
        )
    if not 1 <= len(value) <= MAX_PASSWORD or not PASSWORD.fullmatch(value):
        raise ValidationError(
            f"1 validation error detected: value at `{name}` failed to satisfy constraint: "
            f"member must be 1 to {MAX_PASSWORD} characters from tab, line feed, carriage "
            "return and U+0020 to U+00FF"
        )
    return value


def _profile(user: Entity) -> console.LoginProfile:
    profile = console.LoginProfile.of(user)
    if profile is None:
        raise NoSuchEntityError(f"login profile for user `{user.name}` cannot be found")
    return profile


def _shape(user: Entity, profile: console.LoginProfile) -> dict[str, Any]:
    return {
        "LoginProfile": {
            "UserName": user.name,
            "CreateDate": profile.created,
            "PasswordResetRequired": profile.reset_required,
        }
    }


def _audit(ctx: CallContext, user: Entity, profile: console.LoginProfile) -> None:
    ctx.response_elements = {
        "loginProfile": {
            "userName": user.name,
            "createDate": profile.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "passwordResetRequired": profile.reset_required,
        }
    }


def _user(ctx: CallContext, params: Params) -> Entity:
    """``UserName``, or the calling user; the root user's password is not a login profile."""
    user = caller_or_named_user(ctx, params)
    if user is None:
        raise InvalidInputError(
            "the root user has no login profile: name a user with `UserName` (the root "
            "password is set with `fedbroker init`)"
        )
    return user


@operation("CreateLoginProfile", user_resource_or_self)
def create_login_profile(ctx: CallContext, params: Params) -> dict[str, Any]:
    user = _user(ctx, params)
    password = password_param(params, "Password")
    reset = params.boolean("PasswordResetRequired")
    if console.LoginProfile.of(user) is not None:
        raise EntityAlreadyExistsError(f"login profile for user `{user.name}` already exists")
    account = ctx.store.get_account(ctx.account_id)
    updated = console.with_password(user, account, password, ctx.now, reset_required=reset)
    ctx.store.update_entity(updated)
    profile = _profile(updated)
    _audit(ctx, updated, profile)
    return _shape(updated, profile)


@operation("GetLoginProfile", user_resource_or_self, read_only=True)
def get_login_profile(ctx: CallContext, params: Params) -> dict[str, Any]:
    user = _user(ctx, params)
    return _shape(user, _profile(user))


@operation("UpdateLoginProfile", arn_for(Kind.USER))
def update_login_profile(ctx: CallContext, params: Params) -> dict[str, Any]:
    user = named(ctx, params, Kind.USER)
    password = password_param(params, "Password") if "Password" in params.form else None
    reset = (
        params.boolean("PasswordResetRequired") if "PasswordResetRequired" in params.form else None
    )
    profile = _profile(user)
    if password is not None:
        account = ctx.store.get_account(ctx.account_id)
        keep = profile.reset_required if reset is None else reset
        user = console.with_password(user, account, password, ctx.now, reset_required=keep)
    elif reset is not None:
        user = console.with_reset_required(user, profile, reset)
    ctx.store.update_entity(user)
    return {}


@operation("DeleteLoginProfile", user_resource_or_self)
def delete_login_profile(ctx: CallContext, params: Params) -> dict[str, Any]:
    user = _user(ctx, params)
    _profile(user)
    ctx.store.update_entity(console.without_login_profile(user))
    return {}


def _users_may_change_password(ctx: CallContext, params: Params) -> bool:
    """The password policy's AllowUsersToChangePassword lets every IAM user change its own
    password without a policy that allows it ("Permissions required to let IAM users change
    their own password")."""
    policy = custom_policy(ctx.store.get_account(ctx.account_id))
    return policy is not None and policy.allow_users_to_change


def _own_arn(ctx: CallContext, params: Params) -> str:
    return ctx.caller.arn


@operation("ChangePassword", _own_arn, implicit_grant=_users_may_change_password)
def change_password(ctx: CallContext, params: Params) -> dict[str, Any]:
    user = ctx.caller.user
    if user is None:
        raise InvalidUserTypeError(
            "only IAM users can change their own password with ChangePassword; the root "
            "user's password is managed by `fedbroker init`"
        )
    old = password_param(params, "OldPassword")
    new = password_param(params, "NewPassword")
    user = ctx.store.get_entity_by_id(user.id)  # the caller as stored now, not as cached
    profile = _profile(user)
    if not console.password_matches(profile, old):
        raise AccessDeniedError(
            f"user: {user.arn} is not authorized to perform: iam:ChangePassword: "
            "the old password is not correct"
        )
    account = ctx.store.get_account(ctx.account_id)
    policy = effective_policy(account)
    if policy.hard_expiry and console.is_expired(profile, policy, ctx.now):
        raise AccessDeniedError(
            f"user: {user.arn} is not authorized to perform: iam:ChangePassword: the password "
            "has expired and the password policy (HardExpiry) lets only an administrator "
            "reset it"
        )
    ctx.store.update_entity(
        console.with_password(user, account, new, ctx.now, reset_required=False)
    )
    return {}
