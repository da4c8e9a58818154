"""Signed-in people and their role credentials (issue 5's browser pages, issue 6's CLI).

Framework-free: :mod:`fedbroker.web` and :mod:`fedbroker.cli` adapt requests to it.
"""

from fedbroker.sso.audit import InvalidCsrfTokenError, audit_sign_in, refuse_audited
from fedbroker.sso.claims import ClaimMapping
from fedbroker.sso.identity import SignedIn
from fedbroker.sso.saml import signed_in_from_saml
from fedbroker.sso.service import (
    FailedCondition,
    Issued,
    OfferedRole,
    Refusal,
    audit_identity,
    default_session_name,
    explain_refusals,
    issue,
    issue_audited,
    offered_roles,
    signed_in_from_oidc,
)

__all__ = [
    "ClaimMapping",
    "FailedCondition",
    "InvalidCsrfTokenError",
    "Issued",
    "OfferedRole",
    "Refusal",
    "SignedIn",
    "audit_identity",
    "audit_sign_in",
    "default_session_name",
    "explain_refusals",
    "issue",
    "issue_audited",
    "offered_roles",
    "refuse_audited",
    "signed_in_from_oidc",
    "signed_in_from_saml",
]
