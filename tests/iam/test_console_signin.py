"""Console passwords: the account password policy, setting passwords under it, and
``verify_console_password`` as the browser sign-in will call it. A fixed clock throughout."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from fedbroker.clock import FixedClock
from fedbroker.credentials.console import (
    LoginProfile,
    SignInOutcome,
    verify_console_password,
    with_password,
)
from fedbroker.credentials.password_policy import (
    DEFAULT_POLICY,
    PasswordPolicy,
    effective_policy,
)
from fedbroker.directory.model import Account, Kind
from fedbroker.directory.store import Store
from fedbroker.errors import FedbrokerError, PasswordPolicyViolationError
from fedbroker.iam.api import RequestMeta, execute
from fedbroker.iam.context import Caller, Services
from tests.iam.conftest import T0

GOOD = "Correct-Horse-7"
OTHER = "Battery-Staple-8"


def iam(services: Services, account: Account, action: str, **form: Any) -> dict[str, Any]:
    caller = Caller(account, None, "AKIAEXAMPLEROOTKEY00")
    meta = RequestMeta("req", "192.0.2.1", "test", True)
    return execute(services, caller, meta, action, {k: str(v) for k, v in form.items()})


def clock_of(services: Services) -> FixedClock:
    assert isinstance(services.clock, FixedClock)
    return services.clock


def refused(services: Services, account: Account, action: str, **form: Any) -> FedbrokerError:
    with pytest.raises(FedbrokerError) as caught:
        iam(services, account, action, **form)
    return caught.value


def signed_in(store: Store, account: Account, name: str, password: str, clock: FixedClock) -> Any:
    return verify_console_password(
        store, store.get_account(account.id), name, password, clock.now()
    )


# --- the policy itself ------------------------------------------------------------------------


def test_default_policy_is_iams() -> None:
    account = Account("123456789012", "acme", "ops@example.com", "x", T0)
    assert effective_policy(account) is DEFAULT_POLICY
    assert DEFAULT_POLICY.problems("Abcdefg1", account) == []
    assert DEFAULT_POLICY.problems("abcdefg1", account) != []  # two character types only
    assert DEFAULT_POLICY.problems("Ab1!", account) == ["at least 8 characters"]
    assert DEFAULT_POLICY.problems("OPS@example.com", account) == [
        "not the account's name or email address"
    ]


def test_custom_policy_round_trips_and_names_every_broken_rule() -> None:
    policy = PasswordPolicy(
        minimum_length=12,
        require_symbols=True,
        require_numbers=True,
        require_uppercase=True,
        require_lowercase=True,
        max_age_days=90,
        reuse_prevention=3,
    )
    assert PasswordPolicy.from_settings(policy.to_settings()) == policy
    assert policy.to_settings()["ExpirePasswords"] is True
    account = Account("123456789012", None, "ops@example.com", "x", T0)
    problems = policy.problems("xylophone", account)
    assert problems == [
        "at least 12 characters",
        "at least one uppercase letter (A-Z)",
        "at least one number (0-9)",
        "at least one of the symbols ! # $ % & ' ( ) * + - = @ [ ] ^ _ { | }",
    ]
    with pytest.raises(PasswordPolicyViolationError) as caught:
        policy.check("xylophone", account)
    assert "xylophone" not in caught.value.message
    assert caught.value.status == 400 and caught.value.code == "PasswordPolicyViolation"


# --- setting passwords ------------------------------------------------------------------------


def test_reuse_prevention_remembers_the_last_n_passwords(
    store: Store, account: Account, services: Services
) -> None:
    iam(services, account, "UpdateAccountPasswordPolicy", PasswordReusePrevention=2)
    iam(services, account, "CreateUser", UserName="rita")
    iam(services, account, "CreateLoginProfile", UserName="rita", Password=GOOD)
    current = store.get_account(account.id)
    user = store.get_entity(account.id, Kind.USER, "rita")
    with pytest.raises(PasswordPolicyViolationError, match="differ from the last 2 passwords"):
        with_password(user, current, GOOD, T0, reset_required=False)
    user = with_password(user, current, OTHER, T0, reset_required=False)
    with pytest.raises(PasswordPolicyViolationError):
        with_password(user, current, GOOD, T0, reset_required=False)
    user = with_password(user, current, "Third-Password-9", T0, reset_required=False)
    assert len(user.attrs["password_history"]) == 2  # type: ignore[arg-type]
    # GOOD is now three passwords back: allowed again.
    user = with_password(user, current, GOOD, T0, reset_required=False)
    profile = LoginProfile.of(user)
    assert profile is not None and profile.created == T0


def test_refused_password_changes_nothing(
    store: Store, account: Account, services: Services
) -> None:
    iam(services, account, "CreateUser", UserName="sam")
    error = refused(services, account, "CreateLoginProfile", UserName="sam", Password="weakpass")
    assert error.code == "PasswordPolicyViolation"
    assert "weakpass" not in error.message
    assert "login_profile" not in store.get_entity(account.id, Kind.USER, "sam").attrs
    audited = services.audit.events[-1]  # type: ignore[attr-defined]
    assert audited.to_record()["requestParameters"]["Password"] == "HIDDEN_DUE_TO_SECURITY_REASONS"


def test_root_user_cannot_change_password_here(account: Account, services: Services) -> None:
    error = refused(services, account, "ChangePassword", OldPassword=GOOD, NewPassword=OTHER)
    assert error.code == "InvalidUserType" and error.status == 400


# --- signing in -------------------------------------------------------------------------------


def test_sign_in_outcomes(store: Store, account: Account, services: Services) -> None:
    clock = clock_of(services)
    iam(services, account, "CreateUser", UserName="ursula")
    iam(services, account, "CreateUser", UserName="nopass")
    iam(services, account, "CreateLoginProfile", UserName="ursula", Password=GOOD)
    ok = signed_in(store, account, "URSULA", GOOD, clock)
    assert ok.ok and ok.outcome is SignInOutcome.OK and ok.user.name == "ursula"
    assert ok.mfa_devices == ()
    for name, password in (("ursula", OTHER), ("nobody", GOOD), ("nopass", GOOD)):
        check = signed_in(store, account, name, password, clock)
        assert check.outcome is SignInOutcome.WRONG and check.user is None and not check.ok


def test_reset_required_until_the_user_changes_it(
    store: Store, account: Account, services: Services
) -> None:
    clock = clock_of(services)
    iam(services, account, "CreateUser", UserName="vera")
    iam(
        services,
        account,
        "CreateLoginProfile",
        UserName="vera",
        Password=GOOD,
        PasswordResetRequired="true",
    )
    assert signed_in(store, account, "vera", OTHER, clock).outcome is SignInOutcome.WRONG
    check = signed_in(store, account, "vera", GOOD, clock)
    assert check.outcome is SignInOutcome.RESET_REQUIRED and check.may_change_password
    iam(services, account, "UpdateLoginProfile", UserName="vera", PasswordResetRequired="false")
    assert signed_in(store, account, "vera", GOOD, clock).ok


def test_expiry_and_hard_expiry(store: Store, account: Account, services: Services) -> None:
    clock = clock_of(services)
    iam(services, account, "UpdateAccountPasswordPolicy", MaxPasswordAge=30)
    iam(services, account, "CreateUser", UserName="walt")
    iam(services, account, "CreateLoginProfile", UserName="walt", Password=GOOD)
    clock.advance(timedelta(days=30) - timedelta(seconds=1))
    assert signed_in(store, account, "walt", GOOD, clock).ok
    clock.advance(timedelta(seconds=1))
    expired = signed_in(store, account, "walt", GOOD, clock)
    assert expired.outcome is SignInOutcome.EXPIRED and expired.may_change_password
    assert signed_in(store, account, "walt", OTHER, clock).outcome is SignInOutcome.WRONG
    iam(services, account, "UpdateAccountPasswordPolicy", MaxPasswordAge=30, HardExpiry="true")
    hard = signed_in(store, account, "walt", GOOD, clock)
    assert hard.outcome is SignInOutcome.EXPIRED and not hard.may_change_password
    # An administrator's new password starts a new age.
    iam(services, account, "UpdateLoginProfile", UserName="walt", Password=OTHER)
    assert signed_in(store, account, "walt", OTHER, clock).ok
    # Without a maximum age nothing expires.
    iam(services, account, "DeleteAccountPasswordPolicy")
    clock.advance(timedelta(days=3650))
    assert signed_in(store, account, "walt", OTHER, clock).ok


def test_sign_in_reports_the_users_mfa_devices(
    store: Store, account: Account, services: Services
) -> None:
    clock = clock_of(services)
    iam(services, account, "CreateUser", UserName="xena")
    iam(services, account, "CreateLoginProfile", UserName="xena", Password=GOOD)
    user = store.get_entity(account.id, Kind.USER, "xena")
    serial = f"arn:aws:iam::{account.id}:mfa/xena"
    devices = [{"serial": serial, "enabled": T0.isoformat()}]
    store.update_entity(replace(user, attrs={**user.attrs, "mfa_devices": devices}))
    assert signed_in(store, account, "xena", GOOD, clock).mfa_devices == (serial,)
