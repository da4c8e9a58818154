"""AssumeRoleWithSAML (AWS STS API Reference, 2011-06-15): a SAML response in, role
credentials out. Unsigned: the assertion is the proof.

Order matters for what a caller can learn: the provider is looked up and the response
verified first (:mod:`fedbroker.federation.saml_response`: one outward error for every
forged, altered, misaddressed, expired or replayed response), and only a verified assertion
gets as far as the role. What the assertion must say, as AWS defines it (IAM User Guide,
"Configure SAML assertions for the authentication response"):

- ``https://aws.amazon.com/SAML/Attributes/Role``: values ``role-arn,provider-arn`` (either
  order); one must pair the requested ``RoleArn`` with ``PrincipalArn``;
- ``.../RoleSessionName``: required, 2-64 characters of ``[\\w+=,.@-]``;
- ``.../SessionDuration``: optional, 900-43200 seconds; caps the session, as do the
  assertion's ``SessionNotOnOrAfter`` and the request's ``DurationSeconds`` (900 up to the
  role's ``MaxSessionDuration``, default 3600);
- ``.../PrincipalTag:<key>``: session tags; ``.../TransitiveTagKeys``: which of them pass on
  through role chaining; ``.../SourceIdentity``: the session's source identity.

An assertion that does not say what is needed is ``IDPRejectedClaim`` (the assertion is
genuine, so the reason is in the message too). The role's trust policy then decides, for
principal ``{"Federated": <provider ARN>}``, action ``sts:AssumeRoleWithSAML`` (plus
``sts:TagSession`` with tags and ``sts:SetSourceIdentity`` with a source identity), with the
context keys of IAM User Guide, "Available keys for SAML-based AWS STS federation":
``saml:aud`` (the Recipient, not the Audience), ``saml:iss``, ``saml:sub``, ``saml:sub_type``,
``saml:doc`` (``account/provider-name``), ``saml:namequalifier``
(``base64(sha1(issuer + account + "/" + provider-name))``, the STS API Reference's
pseudocode), the eduPerson/eduOrg and directory attribute keys below, ``sts:RoleSessionName``,
``sts:SourceIdentity``, ``aws:RequestTag/*``, ``aws:TagKeys`` and ``sts:TransitiveTagKeys``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from fedbroker.audit.events import UserIdentity
from fedbroker.credentials.session_token import issue_credentials
from fedbroker.directory.model import Entity, Kind
from fedbroker.errors import NoSuchEntityError
from fedbroker.federation.saml_metadata import IdpMetadata
from fedbroker.federation.saml_response import (
    INVALID,
    UNCHECKED,
    InvalidSamlResponseError,
    RejectedSamlClaimError,
    SamlAssertion,
    Unchecked,
    verify_saml_response,
)
from fedbroker.federation.saml_sp import ServiceProvider
from fedbroker.iam import saml_keys
from fedbroker.iam.params import Params
from fedbroker.iam.saml_options import options_of
from fedbroker.policy.request import principal_from_arn
from fedbroker.sts.api import StsContext, sts_operation
from fedbroker.sts.operations import (
    MAX_SESSION_TAGS,
    SESSION_NAME,
    SOURCE_IDENTITY,
    _ring,
    authorize_federated,
    credentials_shape,
    duration,
    find_role,
    packed_policy_percent,
    role_session,
    session_policies,
)

ATTRIBUTES = "https://aws.amazon.com/SAML/Attributes/"
ROLE = ATTRIBUTES + "Role"
ROLE_SESSION_NAME = ATTRIBUTES + "RoleSessionName"
SESSION_DURATION = ATTRIBUTES + "SessionDuration"
SOURCE_IDENTITY_ATTRIBUTE = ATTRIBUTES + "SourceIdentity"
TRANSITIVE_TAG_KEYS = ATTRIBUTES + "TransitiveTagKeys"
PRINCIPAL_TAG = ATTRIBUTES + "PrincipalTag:"
PROVIDER_ARN = re.compile(r"arn:aws:iam::(\d{12}):saml-provider/([\w._-]{1,128})", re.ASCII)
TAG_KEY = re.compile(r"[\w\s.:/=+\-@]{1,128}")
TAG_VALUE = re.compile(r"[\w\s.:/=+\-@]{0,256}")
MAX_SAML_DURATION = 43200
NAMEID_PREFIX = "urn:oasis:names:tc:SAML:2.0:nameid-format:"
# The attribute (by its Name, an OID URN) behind each SAML condition key.
EDU_PERSON = "urn:oid:1.3.6.1.4.1.5923.1.1.1."
EDU_ORG = "urn:oid:1.3.6.1.4.1.5923.1.2.1."
ATTRIBUTE_KEYS: dict[str, tuple[str, ...]] = {
    EDU_PERSON + "1": ("saml:edupersonaffiliation",),
    EDU_PERSON + "2": ("saml:edupersonnickname",),
    EDU_PERSON + "3": ("saml:edupersonorgdn",),
    EDU_PERSON + "4": ("saml:edupersonorgunitdn",),
    EDU_PERSON + "5": ("saml:edupersonprimaryaffiliation",),
    EDU_PERSON + "6": ("saml:edupersonprincipalname",),
    EDU_PERSON + "7": ("saml:edupersonentitlement",),
    EDU_PERSON + "8": ("saml:edupersonprimaryorgunitdn",),
    EDU_PERSON + "9": ("saml:edupersonscopedaffiliation",),
    EDU_PERSON + "10": ("saml:edupersontargetedid",),
    EDU_PERSON + "11": ("saml:edupersonassurance",),
    EDU_ORG + "2": ("saml:eduorghomepageuri",),
    EDU_ORG + "3": ("saml:eduorgidentityauthnpolicyuri",),
    EDU_ORG + "4": ("saml:eduorglegalname",),
    EDU_ORG + "5": ("saml:eduorgsuperioruri",),
    EDU_ORG + "6": ("saml:eduorgwhitepagesuri",),
    "urn:oid:2.5.4.3": ("saml:cn", "saml:commonName"),
    "urn:oid:2.5.4.4": ("saml:surname",),
    "urn:oid:2.5.4.41": ("saml:name",),
    "urn:oid:2.5.4.42": ("saml:givenName",),
    "urn:oid:2.5.4.45": ("saml:x500UniqueIdentifier",),
    "urn:oid:0.9.2342.19200300.100.1.1": ("saml:uid",),
    "urn:oid:0.9.2342.19200300.100.1.3": ("saml:mail",),
    "urn:oid:0.9.2342.19200300.100.1.45": ("saml:organizationStatus",),
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/primarygroupsid": (
        "saml:primaryGroupSID",
    ),
}


@sts_operation("AssumeRoleWithSAML", signed=False)
def assume_role_with_saml(ctx: StsContext, params: Params) -> dict[str, Any]:
    ctx.identity = UserIdentity("SAMLUser")
    role_arn = params.req("RoleArn", min_len=20, max_len=2048)
    provider_arn = params.req("PrincipalArn", min_len=20, max_len=2048)
    encoded = params.req("SAMLAssertion", min_len=4, max_len=100_000)
    provider = saml_provider(ctx, provider_arn)
    assertion = verify_with_provider(ctx, provider, encoded)
    qualifier = name_qualifier(assertion.issuer, provider.account_id, provider.name)
    ctx.identity = UserIdentity(
        "SAMLUser",
        principal_id=f"{qualifier}:{assertion.subject}",
        user_name=assertion.subject,
        identity_provider=qualifier,
    )

    _require_role_pair(assertion, role_arn, provider_arn)
    claims_said = session_claims(assertion)
    session_name, source_identity = claims_said.session_name, claims_said.source_identity
    tags, transitive = claims_said.tags, claims_said.transitive_tag_keys

    denied = f"Not authorized to perform sts:AssumeRoleWithSAML on resource: {role_arn}"
    role = find_role(ctx, role_arn, denied)
    max_duration = int(str(role.attrs.get("max_session_duration", 3600)))
    seconds = duration(params, 3600, 900, max_duration, "the MaxSessionDuration set for this role")
    expires = session_end(
        claims_said.session_duration, assertion.session_not_on_or_after, ctx.now, seconds
    )
    policy, arns = session_policies(ctx, params, role.account_id)

    context = _request_context(ctx)
    context.update(trust_context(assertion, provider, qualifier, session_name))
    actions = ["sts:AssumeRoleWithSAML"]
    if tags:
        actions.append("sts:TagSession")
        context.update({f"aws:RequestTag/{k}": v for k, v in tags.items()})
        context["aws:TagKeys"] = list(tags)
        if transitive:
            context["sts:TransitiveTagKeys"] = list(transitive)
    if source_identity is not None:
        actions.append("sts:SetSourceIdentity")
        context["sts:SourceIdentity"] = source_identity
    authorize_federated(ctx, role, principal_from_arn(provider_arn), actions, context, denied)

    claims = role_session(
        role,
        session_name,
        ctx.now,
        expires,
        source_identity=source_identity,
        tags=tags,
        transitive_tag_keys=transitive,
        session_policy=policy,
        session_policy_arns=arns,
        provider=provider_arn,
        subject=assertion.subject,
    )
    creds = issue_credentials(_ring(ctx), claims, ctx.now)
    subject_type = subject_type_of(assertion.subject_format)
    saml = {
        "Subject": assertion.subject,
        "SubjectType": subject_type,
        "Issuer": assertion.issuer,
        "Audience": assertion.recipient,
        "NameQualifier": qualifier,
    }
    ctx.response_elements = {
        "credentials": {
            "accessKeyId": creds.access_key_id,
            "expiration": creds.expiration.isoformat(),
        },
        "assumedRoleUser": {"assumedRoleId": claims.principal_id, "arn": claims.principal_arn},
        **{key[0].lower() + key[1:]: value for key, value in saml.items()},
    }
    result: dict[str, Any] = {
        "Credentials": credentials_shape(creds),
        "AssumedRoleUser": {"AssumedRoleId": claims.principal_id, "Arn": claims.principal_arn},
        "PackedPolicySize": packed_policy_percent(creds.session_token),
        **saml,
    }
    if source_identity is not None:
        result["SourceIdentity"] = source_identity
    return result


def verify_with_provider(
    ctx: StsContext,
    provider: Entity,
    encoded: str,
    in_response_to: str | Literal[Unchecked.UNCHECKED] | None = UNCHECKED,
) -> SamlAssertion:
    """Verify ``encoded`` as a response of ``provider``, with its settings (SHA-1, clock
    skew, assertion encryption and its private keys); raises ``SamlResponseError``."""
    options = options_of(provider)
    keys = saml_keys.open_private_keys(ctx.services.master_key, provider)
    return verify_saml_response(
        encoded,
        IdpMetadata.from_json(_mapping(provider.attrs["idp"])),
        ctx.services.saml if in_response_to is UNCHECKED else browser_sp(ctx, provider),
        now=ctx.now,
        replay=ctx.services.store,
        allow_sha1=options.allow_sha1,
        decryption_keys=keys,
        require_encryption=options.require_encryption,
        in_response_to=in_response_to,
        clock_skew=options.clock_skew,
    )


def browser_sp(ctx: StsContext, provider: Entity) -> ServiceProvider:
    """The broker as the SP of browser sign-in through ``provider``: entity id its metadata
    URL, ACS its own, both under the broker's public URL (setting ``issuer_url``)."""
    base = f"{(ctx.services.issuer or '').rstrip('/')}/sso/saml/{provider.name}"
    return ServiceProvider(
        entity_id=f"{base}/metadata", acs_url=f"{base}/acs", sls_url=f"{base}/sls"
    )


@dataclass(frozen=True, slots=True)
class SessionClaims:
    """What a verified assertion says about the session, as AWS defines its attributes."""

    session_name: str
    source_identity: str | None
    tags: dict[str, str]
    transitive_tag_keys: tuple[str, ...]
    role_pairs: tuple[tuple[str, str], ...]  # (role ARN, provider ARN) of the Role attribute
    session_duration: int | None


def session_claims(
    assertion: SamlAssertion, default_session_name: str | None = None
) -> SessionClaims:
    """RoleSessionName (required unless ``default_session_name``), SourceIdentity,
    PrincipalTag:*, TransitiveTagKeys, Role and SessionDuration; ``IDPRejectedClaim`` for
    one that is malformed."""
    session_name = _single(assertion, ROLE_SESSION_NAME, required=default_session_name is None)
    if session_name is None:
        session_name = default_session_name
    if session_name is None or not SESSION_NAME.fullmatch(session_name):
        raise _rejected(
            f"the RoleSessionName attribute `{session_name}` is not 2-64 of [\\w+=,.@-]"
        )
    source_identity = _single(assertion, SOURCE_IDENTITY_ATTRIBUTE)
    if source_identity is not None and not SOURCE_IDENTITY.fullmatch(source_identity):
        raise _rejected(
            f"the SourceIdentity attribute `{source_identity}` is not 2-64 of [\\w+=,.@-]"
        )
    tags, transitive = _session_tags(assertion)
    return SessionClaims(
        session_name,
        source_identity,
        tags,
        transitive,
        role_pairs(assertion),
        _session_duration(assertion),
    )


def role_pairs(assertion: SamlAssertion) -> tuple[tuple[str, str], ...]:
    """The Role attribute's ``role-arn,provider-arn`` values (either order), as (role,
    provider); values that are not such a pair are left out."""
    pairs: list[tuple[str, str]] = []
    for value in assertion.values(ROLE):
        parts = [p.strip() for p in value.split(",")]
        if len(parts) != 2:
            continue
        role, provider = (parts[1], parts[0]) if ":saml-provider/" in parts[0] else parts
        if ":role/" in role and ":saml-provider/" in provider:
            pairs.append((role, provider))
    return tuple(pairs)


def name_qualifier(issuer: str, account_id: str, provider_name: str) -> str:
    """AWS's ``NameQualifier``: ``BASE64(SHA1(issuer + account + "/" + provider-name))``."""
    digest = hashlib.sha1(f"{issuer}{account_id}/{provider_name}".encode(), usedforsecurity=False)
    return base64.b64encode(digest.digest()).decode("ascii")


def subject_type_of(name_id_format: str | None) -> str:
    """``persistent``/``transient`` for SAML 2.0's formats; any other format unchanged."""
    if name_id_format is None:
        return "unspecified"
    if name_id_format.startswith(NAMEID_PREFIX):
        return name_id_format[len(NAMEID_PREFIX) :]
    return name_id_format


# --- steps --------------------------------------------------------------------------------


def saml_provider(ctx: StsContext, provider_arn: str) -> Entity:
    """The SAML provider; any problem with it reads like a bad assertion (no oracle)."""
    match = PROVIDER_ARN.fullmatch(provider_arn)
    if match is None:
        raise InvalidSamlResponseError(
            INVALID, f"`{provider_arn[:200]}` is not a SAML provider ARN"
        )
    try:
        provider = ctx.services.directory.get_entity(
            match.group(1), Kind.SAML_PROVIDER, match.group(2)
        )
    except NoSuchEntityError:
        provider = None
    if provider is None or provider.arn != provider_arn or "idp" not in provider.attrs:
        raise InvalidSamlResponseError(INVALID, f"no SAML provider `{provider_arn}`")
    check_metadata_valid(provider, ctx.now)
    return provider


def check_metadata_valid(provider: Entity, now: datetime) -> None:
    """Refuse (as a bad assertion) a provider whose metadata's ``validUntil`` has passed."""
    valid_until = provider.attrs.get("valid_until")
    if isinstance(valid_until, str) and datetime.fromisoformat(valid_until) <= now:
        raise InvalidSamlResponseError(INVALID, f"the metadata of `{provider.arn}` has expired")


def _mapping(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidSamlResponseError(INVALID, "the SAML provider's stored facts are unreadable")
    return value


def _rejected(reason: str) -> RejectedSamlClaimError:
    return RejectedSamlClaimError(reason, reason)


def _single(assertion: SamlAssertion, name: str, *, required: bool = False) -> str | None:
    values = assertion.values(name)
    if not values:
        if required:
            raise _rejected(f"the assertion has no `{name}` attribute")
        return None
    if len(values) > 1:
        raise _rejected(f"the `{name}` attribute must have one value, not {len(values)}")
    return values[0]


def _require_role_pair(assertion: SamlAssertion, role_arn: str, provider_arn: str) -> None:
    if (role_arn, provider_arn) in role_pairs(assertion):
        return
    raise _rejected(
        f"the assertion's `{ROLE}` attribute does not pair `{role_arn}` with `{provider_arn}`"
    )


def _session_tags(assertion: SamlAssertion) -> tuple[dict[str, str], tuple[str, ...]]:
    tags: dict[str, str] = {}
    for name, values in assertion.attributes.items():
        if not name.startswith(PRINCIPAL_TAG):
            continue
        key = name[len(PRINCIPAL_TAG) :]
        if len(values) != 1 or not TAG_KEY.fullmatch(key) or not TAG_VALUE.fullmatch(values[0]):
            raise _rejected(f"the session tag attribute `{name[:200]}` is not a valid tag")
        if any(k.lower() == key.lower() for k in tags):
            raise _rejected(f"the session tag `{key}` is given twice")
        tags[key] = values[0]
    if len(tags) > MAX_SESSION_TAGS:
        raise _rejected(f"at most {MAX_SESSION_TAGS} session tags are allowed")
    transitive = tuple(dict.fromkeys(assertion.values(TRANSITIVE_TAG_KEYS)))
    unknown = [k for k in transitive if k not in tags]
    if unknown:
        raise _rejected(f"transitive tag key `{unknown[0]}` is not one of the session tags")
    return tags, transitive


def _session_duration(assertion: SamlAssertion) -> int | None:
    limit = _single(assertion, SESSION_DURATION)
    if limit is None:
        return None
    if not limit.isdigit() or not 900 <= int(limit) <= MAX_SAML_DURATION:
        raise _rejected(f"the SessionDuration attribute `{limit[:32]}` is not 900-43200")
    return int(limit)


def session_end(
    session_duration: int | None,
    session_not_on_or_after: datetime | None,
    now: datetime,
    seconds: int,
) -> datetime:
    """``now`` + the requested duration, capped by SessionDuration and SessionNotOnOrAfter."""
    if session_duration is not None:
        seconds = min(seconds, session_duration)
    end = now + timedelta(seconds=seconds)
    if session_not_on_or_after is not None:
        end = min(end, session_not_on_or_after)
    return end


def _request_context(ctx: StsContext) -> dict[str, object]:
    return {
        "aws:SourceIp": ctx.meta.source_ip,
        "aws:CurrentTime": ctx.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(ctx.now.timestamp())),
        "aws:SecureTransport": "true" if ctx.meta.secure_transport else "false",
        "aws:RequestedRegion": ctx.services.region,
    }


def trust_context(
    assertion: SamlAssertion, provider: Entity, qualifier: str, session: str
) -> dict[str, object]:
    """The SAML condition keys of a trust policy (``saml:*``, ``sts:RoleSessionName``), without
    the per-request ``aws:*`` keys."""
    context: dict[str, object] = {
        "saml:aud": assertion.recipient,
        "saml:iss": assertion.issuer,
        "saml:sub": assertion.subject,
        "saml:sub_type": subject_type_of(assertion.subject_format),
        "saml:doc": f"{provider.account_id}/{provider.name}",
        "saml:namequalifier": qualifier,
        "sts:RoleSessionName": session,
    }
    for name, keys in ATTRIBUTE_KEYS.items():
        values = assertion.values(name)
        if values:
            for key in keys:
                context[key] = values[0] if len(values) == 1 else list(values)
    return context
