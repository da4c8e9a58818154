"""The account password policy ("Set an account password policy for IAM users", IAM User
Guide) and the rules a new console password is checked against.

A custom policy is kept in ``Account.settings["password_policy"]`` under IAM's member names
(``MinimumPasswordLength``, ``RequireSymbols``, …). Without one, IAM applies its default
policy: at least 8 characters, at least three of the four character types, and not the
account's name or email address.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fedbroker.directory.model import Account
from fedbroker.errors import PasswordPolicyViolationError

SETTINGS_KEY = "password_policy"
# The non-alphanumeric characters IAM counts as symbols.
SYMBOLS = frozenset("!@#$%^&*()_+-=[]{}|'")
SYMBOLS_SHOWN = " ".join(sorted(SYMBOLS))
MIN_LENGTH, MAX_LENGTH = 6, 128
MAX_AGE_DAYS = 1095
MAX_REUSE_PREVENTION = 24


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    minimum_length: int = MIN_LENGTH
    require_symbols: bool = False
    require_numbers: bool = False
    require_uppercase: bool = False
    require_lowercase: bool = False
    allow_users_to_change: bool = False
    max_age_days: int | None = None
    reuse_prevention: int | None = None
    hard_expiry: bool = False
    # Only the default policy: how many of the four character types a password needs, and
    # whether it may equal the account's name or email address.
    min_character_types: int = 0
    custom: bool = True

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any]) -> PasswordPolicy:
        return cls(
            minimum_length=int(raw.get("MinimumPasswordLength", MIN_LENGTH)),
            require_symbols=bool(raw.get("RequireSymbols", False)),
            require_numbers=bool(raw.get("RequireNumbers", False)),
            require_uppercase=bool(raw.get("RequireUppercaseCharacters", False)),
            require_lowercase=bool(raw.get("RequireLowercaseCharacters", False)),
            allow_users_to_change=bool(raw.get("AllowUsersToChangePassword", False)),
            max_age_days=_positive(raw.get("MaxPasswordAge")),
            reuse_prevention=_positive(raw.get("PasswordReusePrevention")),
            hard_expiry=bool(raw.get("HardExpiry", False)),
        )

    def to_settings(self) -> dict[str, object]:
        """The stored form (IAM's member names); also the body of GetAccountPasswordPolicy."""
        out: dict[str, object] = {
            "MinimumPasswordLength": self.minimum_length,
            "RequireSymbols": self.require_symbols,
            "RequireNumbers": self.require_numbers,
            "RequireUppercaseCharacters": self.require_uppercase,
            "RequireLowercaseCharacters": self.require_lowercase,
            "AllowUsersToChangePassword": self.allow_users_to_change,
            "ExpirePasswords": self.max_age_days is not None,
        }
        if self.max_age_days is not None:
            out["MaxPasswordAge"] = self.max_age_days
        if self.reuse_prevention is not None:
            out["PasswordReusePrevention"] = self.reuse_prevention
        out["HardExpiry"] = self.hard_expiry
        return out

    def problems(self, password: str, account: Account) -> list[str]:
        """The rules ``password`` breaks, as short phrases that never include it."""
        found: list[str] = []
        if len(password) < self.minimum_length:
            found.append(f"at least {self.minimum_length} characters")
        types = {
            "uppercase": any("A" <= c <= "Z" for c in password),
            "lowercase": any("a" <= c <= "z" for c in password),
            "number": any("0" <= c <= "9" for c in password),
            "symbol": any(c in SYMBOLS for c in password),
        }
        if self.require_uppercase and not types["uppercase"]:
            found.append("at least one uppercase letter (A-Z)")
        if self.require_lowercase and not types["lowercase"]:
            found.append("at least one lowercase letter (a-z)")
        if self.require_numbers and not types["number"]:
            found.append("at least one number (0-9)")
        if self.require_symbols and not types["symbol"]:
            found.append(f"at least one of the symbols {SYMBOLS_SHOWN}")
        if sum(types.values()) < self.min_character_types:
            found.append(
                f"at least {self.min_character_types} of: uppercase letters, lowercase "
                f"letters, numbers, symbols ({SYMBOLS_SHOWN})"
            )
        if not self.custom:
            names = {account.id, account.root_email.lower(), (account.alias or "").lower()}
            if password.lower() in names - {""}:
                found.append("not the account's name or email address")
        return found

    def check(self, password: str, account: Account) -> None:
        """Raises :class:`PasswordPolicyViolationError` naming every rule ``password``
        breaks."""
        found = self.problems(password, account)
        if found:
            raise violation(found)

    def expiry(self, changed: datetime) -> datetime | None:
        """When a password set at ``changed`` expires (``None``: never)."""
        if self.max_age_days is None:
            return None
        return changed + timedelta(days=self.max_age_days)


# IAM's default policy, in force while the account has no custom one.
DEFAULT_POLICY = PasswordPolicy(minimum_length=8, min_character_types=3, custom=False)


def violation(rules: list[str]) -> PasswordPolicyViolationError:
    return PasswordPolicyViolationError(
        "password does not conform to the account password policy: it needs " + "; ".join(rules)
    )


def custom_policy(account: Account) -> PasswordPolicy | None:
    """The account's custom password policy, ``None`` when it has none."""
    raw = account.settings.get(SETTINGS_KEY)
    if not isinstance(raw, Mapping):
        return None
    return PasswordPolicy.from_settings(raw)


def effective_policy(account: Account) -> PasswordPolicy:
    """The policy new passwords are checked against: the custom one, else IAM's default."""
    return custom_policy(account) or DEFAULT_POLICY


def _positive(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value
