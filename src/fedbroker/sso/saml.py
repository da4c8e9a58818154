"""What a verified SAML assertion proves, as a :class:`~fedbroker.sso.SignedIn` identity.

The attributes mean what they mean to ``AssumeRoleWithSAML`` (IAM User Guide, "Configure SAML
assertions for the authentication response"), read by the same code
(:func:`fedbroker.sts.saml.session_claims`, :func:`fedbroker.sts.saml.trust_context`):

- ``.../Role``: when sent, only the roles it pairs with *this* provider are offered (none, if
  it names only other providers); when absent, every role whose trust policy allows the
  provider;
- ``.../RoleSessionName``: the session name; a browser sign-in without one uses the ``mail``
  attribute (``urn:oid:0.9.2342.19200300.100.1.3``) or else the NameID, made safe;
- ``.../SessionDuration`` and the assertion's ``SessionNotOnOrAfter``: no session issued from
  this sign-in outlives either (``session_ends_by``);
- ``.../PrincipalTag:*``, ``.../TransitiveTagKeys``, ``.../SourceIdentity``: as the API;
  then the provider's claim mapping (:mod:`fedbroker.sso.claims`, attribute names as claim
  names: ``fedbroker sso configure-saml --tag-attribute ATTR=TAG``) on top.

The trust context holds the ``saml:*`` keys of the API call (``saml:aud`` is the broker's
ACS URL for this provider, the Recipient the assertion was verified against).
"""

from __future__ import annotations

from datetime import timedelta

from fedbroker.directory.model import Entity
from fedbroker.errors import FedbrokerError
from fedbroker.federation.saml_response import RejectedSamlClaimError, SamlAssertion
from fedbroker.sso.claims import ClaimMapping, ClaimMappingError, apply_mapping
from fedbroker.sso.identity import SignedIn
from fedbroker.sso.service import default_session_name
from fedbroker.sts.api import StsContext
from fedbroker.sts.saml import (
    ROLE,
    SessionClaims,
    name_qualifier,
    session_claims,
    trust_context,
)

MAIL = "urn:oid:0.9.2342.19200300.100.1.3"
DISPLAY_NAME = "urn:oid:2.16.840.1.113730.3.1.241"


def signed_in_from_saml(ctx: StsContext, provider: Entity, assertion: SamlAssertion) -> SignedIn:
    """The identity a verified ``assertion`` of ``provider`` proves (``IDPRejectedClaim``
    for attributes that cannot make a session, as the API call)."""
    mail = assertion.values(MAIL)
    fallback = default_session_name({"email": mail[0]} if mail else {}, assertion.subject)
    claims = session_claims(assertion, default_session_name=fallback)
    qualifier = name_qualifier(assertion.issuer, provider.account_id, provider.name)
    allowed: tuple[str, ...] | None = None
    if assertion.values(ROLE):
        allowed = tuple(
            dict.fromkeys(role for role, named in claims.role_pairs if named == provider.arn)
        )
    tags, transitive, source_identity = _mapped(provider, assertion, claims)
    ends = assertion.session_not_on_or_after
    if claims.session_duration is not None:
        by_duration = ctx.now + timedelta(seconds=claims.session_duration)
        ends = by_duration if ends is None else min(ends, by_duration)
    display = {"name": assertion.subject[:256]}
    if mail:
        display["email"] = mail[0][:256]
    names = assertion.values(DISPLAY_NAME)
    if names:
        display["name"] = names[0][:256]
    return SignedIn(
        kind="saml",
        account_id=provider.account_id,
        provider_name=provider.name,
        provider_arn=provider.arn,
        subject=assertion.subject,
        session_name=claims.session_name,
        trust_context=trust_context(assertion, provider, qualifier, claims.session_name),
        authenticated_at=ctx.now,
        tags=tags,
        transitive_tag_keys=transitive,
        source_identity=source_identity,
        allowed_roles=allowed,
        display=display,
        session_ends_by=ends,
        name_id_format=assertion.subject_format,
        name_qualifier=assertion.name_qualifier,
        sp_name_qualifier=assertion.sp_name_qualifier,
        session_index=assertion.session_index,
    )


def _mapped(
    provider: Entity, assertion: SamlAssertion, claims: SessionClaims
) -> tuple[dict[str, str], tuple[str, ...], str | None]:
    """Tags, transitive keys and source identity after the provider's claim mapping."""
    try:
        mapping = ClaimMapping.from_attr(provider.attrs.get("sso_claims"))
    except ValueError as error:  # the stored mapping itself: a configuration problem
        raise FedbrokerError(
            "sign-in through this provider is misconfigured", f"claim mapping: {error}"
        ) from None
    values = {
        name: (found[0] if len(found) == 1 else list(found))
        for name, found in assertion.attributes.items()
        if found
    }
    try:
        return apply_mapping(
            mapping, values, claims.tags, claims.transitive_tag_keys, claims.source_identity
        )
    except ClaimMappingError as error:
        raise RejectedSamlClaimError(str(error), f"claim mapping: {error}") from None
