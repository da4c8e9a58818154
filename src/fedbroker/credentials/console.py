"""Console passwords: the login profile kept on a user, setting a new password under the
account password policy, and the check a browser sign-in makes.

Framework-free: the IAM operations (``CreateLoginProfile``, ``ChangePassword``, …) and the
future browser sign-in both call this module. Stored on the user entity:

- ``attrs["login_profile"]``: ``{"password_hash", "created", "changed", "reset_required"}``
  (scrypt hash, ISO 8601 times);
- ``attrs["password_history"]``: the hashes of the last passwords set, newest first, as many
  as the policy's ``PasswordReusePrevention`` asks to remember (none without it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum

from fedbroker.credentials.mfa import enabled_serials
from fedbroker.credentials.password_policy import PasswordPolicy, effective_policy, violation
from fedbroker.credentials.passwords import hash_password, verify_password
from fedbroker.directory.model import Account, Entity, Kind
from fedbroker.directory.store import Store
from fedbroker.errors import NoSuchEntityError

PROFILE_KEY = "login_profile"
HISTORY_KEY = "password_history"
# Verified against when there is no hash to verify, so that an unknown user or a user without
# a password takes as long to refuse as a wrong password.
_DUMMY_HASH = hash_password("fedbroker: no such password")


@dataclass(frozen=True, slots=True)
class LoginProfile:
    password_hash: str
    created: datetime
    changed: datetime
    reset_required: bool

    @classmethod
    def of(cls, user: Entity) -> LoginProfile | None:
        """The user's login profile, ``None`` when it has none."""
        raw = user.attrs.get(PROFILE_KEY)
        if not isinstance(raw, dict) or not isinstance(raw.get("password_hash"), str):
            return None
        created = datetime.fromisoformat(str(raw["created"]))
        return cls(
            raw["password_hash"],
            created,
            datetime.fromisoformat(str(raw.get("changed") or raw["created"])),
            bool(raw.get("reset_required", False)),
        )

    def to_attrs(self) -> dict[str, object]:
        return {
            "password_hash": self.password_hash,
            "created": self.created.isoformat(),
            "changed": self.changed.isoformat(),
            "reset_required": self.reset_required,
        }


def with_password(
    user: Entity, account: Account, password: str, now: datetime, *, reset_required: bool
) -> Entity:
    """``user`` with ``password`` as its console password, created or replaced.

    Checks the account password policy and its reuse prevention first: raises
    :class:`~fedbroker.errors.PasswordPolicyViolationError` (naming the rules, never the
    password) and changes nothing when the password is refused.
    """
    policy = effective_policy(account)
    problems = policy.problems(password, account)
    current = LoginProfile.of(user)
    previous = _history(user)
    if current is not None and current.password_hash not in previous:
        previous.insert(0, current.password_hash)
    remembered = policy.reuse_prevention or 0
    if remembered and any(verify_password(password, old) for old in previous[:remembered]):
        problems.append(f"to differ from the last {remembered} passwords")
    if problems:
        raise violation(problems)
    new_hash = hash_password(password)
    profile = LoginProfile(
        new_hash, current.created if current else now, now, reset_required
    ).to_attrs()
    attrs = {**user.attrs, PROFILE_KEY: profile}
    kept = [new_hash, *previous][:remembered]
    if kept:
        attrs[HISTORY_KEY] = kept
    else:
        attrs.pop(HISTORY_KEY, None)
    return replace(user, attrs=attrs)


def with_reset_required(user: Entity, profile: LoginProfile, reset_required: bool) -> Entity:
    changed = replace(profile, reset_required=reset_required)
    return replace(user, attrs={**user.attrs, PROFILE_KEY: changed.to_attrs()})


def without_login_profile(user: Entity) -> Entity:
    """``user`` without a console password. The reuse history stays with the user."""
    return replace(user, attrs={k: v for k, v in user.attrs.items() if k != PROFILE_KEY})


def password_matches(profile: LoginProfile | None, password: str) -> bool:
    """Whether ``password`` is the profile's password; as slow when there is no profile."""
    if profile is None:
        verify_password(password, _DUMMY_HASH)
        return False
    return verify_password(password, profile.password_hash)


def is_expired(profile: LoginProfile, policy: PasswordPolicy, now: datetime) -> bool:
    expiry = policy.expiry(profile.changed)
    return expiry is not None and now >= expiry


class SignInOutcome(Enum):
    OK = "ok"
    WRONG = "wrong"  # no such user, no console password, or not the password
    RESET_REQUIRED = "reset_required"  # right password; a new one must be set first
    EXPIRED = "expired"  # right password, older than MaxPasswordAge


@dataclass(frozen=True, slots=True)
class SignInCheck:
    """What a console sign-in learned. Only ``OK`` lets the user in; ``RESET_REQUIRED`` and
    ``EXPIRED`` lead to a change-password form instead, unless ``may_change_password`` is
    false (an expired password under ``HardExpiry``: only an administrator can reset it)."""

    outcome: SignInOutcome
    user: Entity | None = None
    may_change_password: bool = False
    # Serial numbers of the user's MFA devices: a sign-in asks for a code when there are any.
    mfa_devices: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome is SignInOutcome.OK


def verify_console_password(
    store: Store, account: Account, user_name: str, password: str, now: datetime
) -> SignInCheck:
    """Check an IAM user's console password ("Managing passwords for IAM users").

    An unknown user, a user without a login profile and a wrong password look the same
    (``WRONG``) and take as long. With the right password, an expired password (the policy's
    ``MaxPasswordAge``) comes first, then ``PasswordResetRequired``; with ``HardExpiry`` an
    expired password can only be reset by an administrator.
    """
    try:
        user: Entity | None = store.get_entity(account.id, Kind.USER, user_name)
    except NoSuchEntityError:
        user = None
    profile = LoginProfile.of(user) if user is not None else None
    if user is None or not password_matches(profile, password):
        return SignInCheck(SignInOutcome.WRONG)
    assert profile is not None
    devices = tuple(enabled_serials(user))
    policy = effective_policy(account)
    if is_expired(profile, policy, now):
        return SignInCheck(SignInOutcome.EXPIRED, user, not policy.hard_expiry, devices)
    if profile.reset_required:
        return SignInCheck(SignInOutcome.RESET_REQUIRED, user, True, devices)
    return SignInCheck(SignInOutcome.OK, user, True, devices)


def _history(user: Entity) -> list[str]:
    raw = user.attrs.get(HISTORY_KEY)
    return [h for h in raw if isinstance(h, str)] if isinstance(raw, list) else []
