"""The request an authorization decision is about: who, what action, on which resource, in
which context.

Context keys are case-insensitive (IAM User Guide, "Global condition context keys"), so the
context is stored with lower-cased keys; values are strings, or tuples of strings for
multi-valued keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from fedbroker.policy.conditions import ContextValue


class PrincipalType(Enum):
    USER = "User"
    ROLE = "Role"
    ASSUMED_ROLE = "AssumedRole"
    FEDERATED_USER = "FederatedUser"
    ROOT = "Root"
    FEDERATED = "Federated"  # a web-identity or SAML provider, before a role is assumed
    SERVICE = "Service"
    CANONICAL_USER = "CanonicalUser"
    ANONYMOUS = "Anonymous"

    @property
    def has_identity_policies(self) -> bool:
        """IAM principals of an account: identity policies, boundaries and SCPs apply to them."""
        return self in _IAM_TYPES


_IAM_TYPES = frozenset(
    {
        PrincipalType.USER,
        PrincipalType.ROLE,
        PrincipalType.ASSUMED_ROLE,
        PrincipalType.FEDERATED_USER,
        PrincipalType.ROOT,
    }
)

_ARN = re.compile(
    r"arn:(?P<partition>[^:]+):(?P<service>iam|sts)::(?P<account>\d{12}):(?P<rest>.+)"
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller. ``role_arn`` is the role behind an assumed-role session."""

    arn: str
    type: PrincipalType
    account: str | None = None
    role_arn: str | None = None


def principal_from_arn(
    arn: str, type_name: str | None = None, role_arn: str | None = None
) -> Principal:
    """Build a :class:`Principal`, inferring what the ARN does not say.

    ``ValueError`` (safe message) for an unknown ``principal_type``.
    """
    inferred, account, derived_role = _infer(arn)
    if type_name:
        try:
            ptype = PrincipalType(type_name)
        except ValueError:
            names = ", ".join(t.value for t in PrincipalType)
            raise ValueError(
                f"unknown principal_type `{type_name}` (expected one of {names})"
            ) from None
    else:
        ptype = inferred
    if ptype is PrincipalType.ASSUMED_ROLE and role_arn is None:
        role_arn = derived_role
    if ptype is PrincipalType.ROLE and role_arn is None:
        role_arn = arn
    return Principal(arn=arn, type=ptype, account=account, role_arn=role_arn)


def _infer(arn: str) -> tuple[PrincipalType, str | None, str | None]:
    if arn in {"*", ""}:
        return PrincipalType.ANONYMOUS, None, None
    if re.fullmatch(r"\d{12}", arn):
        return PrincipalType.ROOT, arn, None
    match = _ARN.fullmatch(arn)
    if match is None:
        if arn.endswith(".amazonaws.com") and ":" not in arn:
            return PrincipalType.SERVICE, None, None
        return PrincipalType.FEDERATED, None, None
    account, rest, partition = match["account"], match["rest"], match["partition"]
    if rest == "root":
        return PrincipalType.ROOT, account, None
    if rest.startswith("user/"):
        return PrincipalType.USER, account, None
    if rest.startswith("role/"):
        return PrincipalType.ROLE, account, arn
    if rest.startswith("assumed-role/"):
        parts = rest.split("/")
        role = f"arn:{partition}:iam::{account}:role/{parts[1]}" if len(parts) >= 3 else None
        return PrincipalType.ASSUMED_ROLE, account, role
    if rest.startswith("federated-user/"):
        return PrincipalType.FEDERATED_USER, account, None
    if rest.startswith(("saml-provider/", "oidc-provider/")):
        return PrincipalType.FEDERATED, account, None
    return PrincipalType.USER, account, None


def normalize_context(context: Mapping[str, object]) -> dict[str, ContextValue]:
    """Lower-case the keys and turn every value into a string or a tuple of strings.

    ``ValueError`` (safe message) for a value that is neither.
    """
    if all(type(v) is str for v in context.values()):
        return {str(k).lower(): v for k, v in context.items()}  # type: ignore[misc]
    out: dict[str, ContextValue] = {}
    for key, value in context.items():
        if not isinstance(key, str):
            raise ValueError("context keys must be strings")
        if isinstance(value, str):
            out[key.lower()] = value
        elif isinstance(value, bool):
            out[key.lower()] = "true" if value else "false"
        elif isinstance(value, int | float):
            out[key.lower()] = str(value)
        elif isinstance(value, Sequence):
            items: list[str] = []
            for item in value:
                if isinstance(item, bool):
                    items.append("true" if item else "false")
                elif isinstance(item, str | int | float):
                    items.append(str(item))
                else:
                    raise ValueError(f"context key `{key}` holds a list with a non-string item")
            out[key.lower()] = tuple(items)
        else:
            raise ValueError(f"context key `{key}` must be a string or a list of strings")
    return out


class Request(NamedTuple):
    """One authorization question. Build it with :func:`make_request`.

    A named tuple rather than a frozen dataclass: one is built per decision.
    """

    action: str
    action_key: str  # lower-cased, for matching
    resource: str
    principal: Principal | None
    resource_account: str | None
    context: Mapping[str, ContextValue]

    @property
    def same_account(self) -> bool:
        """Whether caller and resource are in one account (unknown counts as the same)."""
        if self.principal is None or self.principal.account is None:
            return True
        return self.resource_account is None or self.resource_account == self.principal.account


def make_request(
    action: str,
    resource: str = "*",
    principal: Principal | None = None,
    context: Mapping[str, object] | None = None,
    resource_account: str | None = None,
) -> Request:
    return Request(
        action=action,
        action_key=action.lower(),
        resource=resource,
        principal=principal,
        resource_account=resource_account,
        context=normalize_context(context) if context else {},
    )
