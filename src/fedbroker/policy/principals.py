"""The ``Principal`` and ``NotPrincipal`` elements: parsing, and matching the caller.

IAM User Guide, "AWS JSON policy elements: Principal" and "NotPrincipal". A principal may be
named by account (``123456789012`` or ``arn:aws:iam::123456789012:root``), user, role,
assumed-role session, federated user, web-identity or SAML provider, service, or canonical
user. Wildcards other than a lone ``*`` are not allowed.

How a statement matched matters for evaluation: a grant to a user or session ARN applies to
that principal directly; a grant to a role ARN is limited by the session's boundary and session
policies; a grant to an account delegates to the account's identity policies.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from enum import Enum

from fedbroker.policy.request import Principal, PrincipalType

PRINCIPAL_KEYS = ("AWS", "Federated", "Service", "CanonicalUser")

_ACCOUNT = re.compile(r"\d{12}")
_IAM_ARN = re.compile(
    r"arn:[a-z\-]+:(?:iam::\d{12}:(?:root|user/.+|role/.+|saml-provider/.+|oidc-provider/.+)"
    r"|sts::\d{12}:(?:assumed-role/[^/]+/.+|federated-user/.+))"
)


class Via(Enum):
    """How the caller matched a ``Principal`` element."""

    EVERYONE = "everyone"
    DIRECT = "principal"
    ROLE = "role"
    ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class PrincipalSpec:
    everyone: bool
    arns: frozenset[str]
    accounts: frozenset[str]
    federated: frozenset[str]
    services: frozenset[str]
    canonical: frozenset[str]

    def match(self, principal: Principal | None) -> Via | None:
        """How the caller matches, or ``None``. An unknown caller matches only ``*``."""
        if self.everyone:
            return Via.EVERYONE
        if principal is None:
            return None
        ptype = principal.type
        if ptype is PrincipalType.FEDERATED:
            return Via.DIRECT if principal.arn in self.federated else None
        if ptype is PrincipalType.SERVICE:
            return Via.DIRECT if principal.arn in self.services else None
        if ptype is PrincipalType.CANONICAL_USER:
            return Via.DIRECT if principal.arn in self.canonical else None
        if ptype is PrincipalType.ANONYMOUS:
            return None
        if principal.arn in self.arns:
            return Via.ROLE if ptype is PrincipalType.ROLE else Via.DIRECT
        if principal.role_arn is not None and principal.role_arn in self.arns:
            return Via.ROLE
        if principal.account is not None and principal.account in self.accounts:
            return Via.ACCOUNT
        return None

    def excludes(self, principal: Principal | None) -> bool:
        """For ``NotPrincipal``: the caller is excluded only if every identity it has is listed.

        An assumed-role session is its session ARN, its role ARN and its account; AWS's
        documented examples list all three to exempt one session.
        """
        if self.everyone:
            return True
        if principal is None or principal.type is PrincipalType.ANONYMOUS:
            return False
        ptype = principal.type
        if ptype is PrincipalType.FEDERATED:
            return principal.arn in self.federated
        if ptype is PrincipalType.SERVICE:
            return principal.arn in self.services
        if ptype is PrincipalType.CANONICAL_USER:
            return principal.arn in self.canonical
        facets_listed = [principal.account is not None and principal.account in self.accounts]
        if ptype is not PrincipalType.ROOT:
            facets_listed.append(principal.arn in self.arns)
        if ptype is PrincipalType.ASSUMED_ROLE and principal.role_arn is not None:
            facets_listed.append(principal.role_arn in self.arns)
        return all(facets_listed)


def parse_principal(raw: object) -> tuple[PrincipalSpec | None, list[str]]:
    """The spec, or the problems with it (safe messages)."""
    problems: list[str] = []
    if raw == "*":
        return PrincipalSpec(
            True, frozenset(), frozenset(), frozenset(), frozenset(), frozenset()
        ), []
    if not isinstance(raw, dict):
        return None, [
            'must be `"*"` or an object with `AWS`, `Federated`, `Service` or `CanonicalUser`'
        ]
    if not raw:
        return None, ["must name at least one principal"]
    everyone = False
    arns: set[str] = set()
    accounts: set[str] = set()
    federated: set[str] = set()
    services: set[str] = set()
    canonical: set[str] = set()
    for key, value in raw.items():
        if key not in PRINCIPAL_KEYS:
            hint = difflib.get_close_matches(key, PRINCIPAL_KEYS, n=1, cutoff=0.5)
            exact = [k for k in PRINCIPAL_KEYS if k.lower() == key.lower()]
            hint = exact or hint
            problems.append(
                f"unknown principal type `{key}`" + (f"; did you mean `{hint[0]}`?" if hint else "")
            )
            continue
        items = value if isinstance(value, list) else [value]
        if not items:
            problems.append(f"`{key}` must not be empty")
        for item in items:
            if not isinstance(item, str) or not item:
                problems.append(f"`{key}` entries must be non-empty strings")
                continue
            if item == "*":
                if key == "AWS":
                    everyone = True
                else:
                    problems.append(f'`{key}` does not accept `*`; use `"Principal": "*"`')
                continue
            if "*" in item or "?" in item:
                problems.append(
                    f"invalid principal `{item}`: wildcards are not allowed in principals; "
                    "match with a condition on `aws:PrincipalArn` (ArnLike) instead"
                )
                continue
            if key == "AWS":
                if _ACCOUNT.fullmatch(item):
                    accounts.add(item)
                elif _IAM_ARN.fullmatch(item):
                    if item.endswith(":root"):
                        accounts.add(item.split(":")[4])
                    else:
                        arns.add(item)
                else:
                    problems.append(
                        f"invalid principal `{item}`: expected an account id or the "
                        "ARN of a root user, user, role or session"
                    )
            elif key == "Federated":
                federated.add(item)
            elif key == "Service":
                services.add(item)
            else:
                canonical.add(item)
    if problems:
        return None, problems
    return PrincipalSpec(
        everyone,
        frozenset(arns),
        frozenset(accounts),
        frozenset(federated),
        frozenset(services),
        frozenset(canonical),
    ), []
