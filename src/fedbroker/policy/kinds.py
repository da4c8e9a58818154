"""Kinds of policy document and the rules that differ between them.

Sizes follow the IAM and Organizations quotas ("IAM and AWS STS quotas", "Quotas for AWS
Organizations"): IAM does not count white space for managed, inline and trust policies; the
session-policy limit applies to the plaintext as sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class KindRules:
    label: str
    max_chars: int
    count_whitespace: bool
    principal: str  # "required", "forbidden"
    resource: str  # "required", "forbidden", "optional"
    size_error_code: str
    size_error_status: int


class PolicyKind(Enum):
    """Where a policy document is used, which decides its grammar and size limit."""

    MANAGED = KindRules(
        "managed policy", 6144, False, "forbidden", "required", "LimitExceeded", 409
    )
    INLINE_USER = KindRules(
        "user inline policy", 2048, False, "forbidden", "required", "LimitExceeded", 409
    )
    INLINE_GROUP = KindRules(
        "group inline policy", 5120, False, "forbidden", "required", "LimitExceeded", 409
    )
    INLINE_ROLE = KindRules(
        "role inline policy", 10240, False, "forbidden", "required", "LimitExceeded", 409
    )
    TRUST = KindRules(
        "role trust policy", 2048, False, "required", "forbidden", "LimitExceeded", 409
    )
    SESSION = KindRules(
        "session policy", 2048, True, "forbidden", "required", "ValidationError", 400
    )
    # Each service validates its own resource policies; a statement without a resource element
    # applies to the resource the policy is attached to (as in a role trust policy).
    RESOURCE = KindRules(
        "resource-based policy", 20480, True, "required", "optional", "LimitExceeded", 409
    )
    SCP = KindRules(
        "service control policy", 5120, True, "forbidden", "required", "LimitExceeded", 409
    )
    RCP = KindRules(
        "resource control policy", 5120, True, "required", "required", "LimitExceeded", 409
    )

    @property
    def rules(self) -> KindRules:
        return self.value

    @classmethod
    def from_name(cls, name: str) -> PolicyKind:
        """``managed``, ``inline-user``, ``trust`` ... as used on the command line."""
        key = name.strip().lower().replace("-", "_")
        for kind in cls:
            if kind.name.lower() == key:
                return kind
        raise ValueError(name)

    @classmethod
    def cli_names(cls) -> list[str]:
        return [k.name.lower().replace("_", "-") for k in cls]


def policy_size(text: str, count_whitespace: bool) -> int:
    """Characters counted against a size limit."""
    if count_whitespace:
        return len(text)
    return sum(1 for ch in text if not ch.isspace())
