"""Role credentials for a signed-in person: the roles on offer, why none is, and issuing.

Shared by the browser sign-in (``web/sso.py``, ``web/sso_saml.py``) and the CLI's session
exchange. The proof (ID token, SAML assertion) was verified once, at sign-in, and turned into a
:class:`SignedIn`; each issue evaluates the role's trust policy again, for the federated
principal and with the context keys of the API call (``AssumeRoleWithWebIdentity`` /
``AssumeRoleWithSAML``), so a changed or revoked trust takes effect at once. Credentials are
minted by the API's own :func:`role_session` and :func:`issue_credentials`, and
:func:`issue_audited` writes one CloudTrail-shaped event per issue or refusal, named after the
API call, with ``additionalEventData.via`` telling where it came from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from fedbroker.audit.events import UserIdentity
from fedbroker.credentials.session_token import TemporaryCredentials, issue_credentials
from fedbroker.directory.model import Entity, Kind
from fedbroker.errors import (
    AccessDeniedError,
    FedbrokerError,
    InvalidIdentityTokenError,
    NoSuchEntityError,
)
from fedbroker.federation.oidc import INVALID, VerifiedToken
from fedbroker.iam.api import RequestMeta
from fedbroker.iam.context import Services
from fedbroker.iam.params import Params
from fedbroker.policy import Decision, Effect, Principal, PrincipalType, make_request
from fedbroker.sso.claims import ClaimMapping, ClaimMappingError, apply_mapping
from fedbroker.sso.identity import SignedIn
from fedbroker.sts.api import StsContext, run_audited
from fedbroker.sts.operations import duration, find_role, role_session
from fedbroker.sts.web_identity import token_session_data, token_trust_context

ACTIONS = {"oidc": "sts:AssumeRoleWithWebIdentity", "saml": "sts:AssumeRoleWithSAML"}
EVENT_NAMES = {"oidc": "AssumeRoleWithWebIdentity", "saml": "AssumeRoleWithSAML"}
DEFAULT_DURATION = 3600
MIN_DURATION = 900
DURATION_LIMIT = "the MaxSessionDuration set for this role"
# Context keys that belong to one request, not to the sign-in: added afresh on each issue.
PER_REQUEST_KEYS = frozenset(
    {
        "aws:SourceIp",
        "aws:CurrentTime",
        "aws:EpochTime",
        "aws:SecureTransport",
        "aws:RequestedRegion",
        "sts:RoleSessionName",
    }
)
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
_UNSAFE = re.compile(r"[^\w+=,.@-]")
_DISPLAY_CLAIMS = ("email", "name", "preferred_username")

Via = Literal["broker-session", "cli-session"]


@dataclass(frozen=True)
class OfferedRole:
    arn: str
    name: str
    account_id: str
    account_alias: str | None
    description: str
    max_session_duration: int


@dataclass(frozen=True)
class FailedCondition:
    """A trust-policy condition that did not hold: the operator, the key, and the signed-in
    person's own value for it (``None``: the sign-in did not carry the key). Never the values
    the policy expects."""

    operator: str
    key: str
    your_value: str | tuple[str, ...] | None


@dataclass(frozen=True)
class Refusal:
    """Why a role whose trust policy names the signed-in person's provider is not offered."""

    role_arn: str
    role_name: str
    account_id: str
    reason: str
    conditions: tuple[FailedCondition, ...] = ()


@dataclass(frozen=True)
class Issued:
    credentials: TemporaryCredentials
    role_arn: str
    assumed_role_arn: str
    assumed_role_id: str
    expiration: datetime
    source_identity: str | None
    session_name: str


# --- sign-in ---------------------------------------------------------------------------------


def default_session_name(claims: Mapping[str, Any], subject: str) -> str:
    """The RoleSessionName of a browser or CLI session: the ``email`` claim when it is a valid
    session name, else the subject with every other character replaced by ``-``."""
    email = claims.get("email")
    if isinstance(email, str) and _SESSION_NAME.fullmatch(email):
        return email
    name = _UNSAFE.sub("-", subject)[:64]
    return name if len(name) >= 2 else f"{name}--"


def signed_in_from_oidc(
    ctx: StsContext,
    verified: VerifiedToken,
    session_name: str,
    userinfo: Mapping[str, Any] | None = None,
) -> SignedIn:
    """What a verified ID token proved (the caller checked ``nonce`` and the provider).

    Trust context, tags and source identity are those AssumeRoleWithWebIdentity would derive
    from the same token, then the provider's claim mapping (:mod:`fedbroker.sso.claims`)
    applies, to the token's claims and, under them, the ``userinfo`` claims the caller fetched
    for the same subject (OpenID Connect Core 1.0 §5.3; they never become trust-policy keys,
    which stay the API call's). ``InvalidIdentityToken`` when the claims cannot make a
    session."""
    claims: dict[str, Any] = {**(userinfo or {}), **verified.claims}
    if not _SESSION_NAME.fullmatch(session_name):
        raise ValueError("a session name is 2-64 characters of [\\w+=,.@-]")
    provider, context = token_trust_context(ctx, verified, session_name)
    tags, transitive, source_identity = token_session_data(verified)
    try:
        mapping = ClaimMapping.from_attr(provider.attrs.get("sso_claims"))
        tags, transitive, source_identity = apply_mapping(
            mapping, claims, tags, transitive, source_identity
        )
    except ClaimMappingError as error:
        raise InvalidIdentityTokenError(INVALID, detail=f"claim mapping: {error}") from None
    except ValueError as error:  # the stored mapping itself: a configuration problem
        raise FedbrokerError(
            "sign-in through this provider is misconfigured", f"claim mapping: {error}"
        ) from None
    display = {
        name: value[:256]
        for name in _DISPLAY_CLAIMS
        if isinstance(value := claims.get(name), str) and value
    }
    return SignedIn(
        kind="oidc",
        account_id=provider.account_id,
        provider_name=provider.name,
        provider_arn=provider.arn,
        subject=verified.subject,
        session_name=session_name,
        trust_context={k: v for k, v in context.items() if k not in PER_REQUEST_KEYS},
        authenticated_at=ctx.now,
        tags=tags,
        transitive_tag_keys=transitive,
        source_identity=source_identity,
        display=display,
    )


# --- the request a role would see ------------------------------------------------------------


def _request(ctx: StsContext, who: SignedIn) -> tuple[list[str], dict[str, object]]:
    """The actions and context keys of the API call for ``who``: the sign-in's own keys, this
    request's ``aws:*`` keys, and the tags and source identity the session would carry."""
    context: dict[str, object] = dict(who.trust_context)
    context.update(
        {
            "aws:SourceIp": ctx.meta.source_ip,
            "aws:CurrentTime": ctx.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "aws:EpochTime": str(int(ctx.now.timestamp())),
            "aws:SecureTransport": "true" if ctx.meta.secure_transport else "false",
            "aws:RequestedRegion": ctx.services.region,
            "sts:RoleSessionName": who.session_name,
        }
    )
    actions = [ACTIONS[who.kind]]
    if who.tags:
        actions.append("sts:TagSession")
        context.update({f"aws:RequestTag/{k}": v for k, v in who.tags.items()})
        context["aws:TagKeys"] = list(who.tags)
        if who.transitive_tag_keys:
            context["sts:TransitiveTagKeys"] = list(who.transitive_tag_keys)
    if who.source_identity is not None:
        actions.append("sts:SetSourceIdentity")
        context["sts:SourceIdentity"] = who.source_identity
    return actions, context


def _principal(who: SignedIn) -> Principal:
    return Principal(who.provider_arn, PrincipalType.FEDERATED)


def _first_refusal(
    ctx: StsContext, role: Entity, who: SignedIn, actions: list[str], context: dict[str, object]
) -> tuple[str, Decision] | None:
    """The first action the role's trust policy does not allow, with its decision."""
    policies = ctx.services.policies.trust_only(role)
    principal = _principal(who)
    for action in actions:
        decision = policies.authorize(
            make_request(action, role.arn, principal, context, role.account_id)
        )
        if decision.effect is not Effect.ALLOW:
            return action, decision
    return None


def _roles(ctx: StsContext, who: SignedIn) -> list[Entity]:
    roles = ctx.services.store.list_entities(who.account_id, Kind.ROLE)
    return sorted(roles, key=lambda r: r.name.lower())


def _max_duration(role: Entity) -> int:
    return int(str(role.attrs.get("max_session_duration", DEFAULT_DURATION)))


def offered_roles(ctx: StsContext, who: SignedIn) -> list[OfferedRole]:
    """The roles of ``who.account_id`` whose trust policy allows the federated principal every
    action the issue would need (``sts:AssumeRoleWith…``, plus ``sts:TagSession`` and
    ``sts:SetSourceIdentity`` when the sign-in carries tags or a source identity), with the
    context keys of the API call; intersected with ``who.allowed_roles`` when set."""
    actions, context = _request(ctx, who)
    alias = _alias(ctx, who.account_id)
    offered: list[OfferedRole] = []
    for role in _roles(ctx, who):
        if who.allowed_roles is not None and role.arn not in who.allowed_roles:
            continue
        try:
            if _first_refusal(ctx, role, who, actions, context) is not None:
                continue
        except FedbrokerError:  # a trust policy that cannot be compiled never allows
            continue
        offered.append(
            OfferedRole(
                arn=role.arn,
                name=role.name,
                account_id=role.account_id,
                account_alias=alias,
                description=str(role.attrs.get("description") or ""),
                max_session_duration=_max_duration(role),
            )
        )
    return offered


def _alias(ctx: StsContext, account_id: str) -> str | None:
    try:
        return ctx.services.store.get_account(account_id).alias
    except NoSuchEntityError:
        return None


def _names_provider(ctx: StsContext, role: Entity, provider_arn: str) -> bool:
    try:
        trust = ctx.services.policies.trust(role)
    except FedbrokerError:
        return False
    return any(
        s.principal is not None and not s.not_principal and provider_arn in s.principal.federated
        for s in trust.statements
    )


def _your_value(value: object) -> str | tuple[str, ...] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return str(value)


def explain_refusals(ctx: StsContext, who: SignedIn) -> list[Refusal]:
    """For the "no role" page: for each role whose trust policy names ``who``'s provider as a
    ``Federated`` principal and is not offered, the engine's reason, with the conditions that
    did not hold (operator, key, the person's own value). Roles that do not name the provider
    are not mentioned, and no policy's expected values are ever given."""
    actions, context = _request(ctx, who)
    refusals: list[Refusal] = []
    for role in _roles(ctx, who):
        if not _names_provider(ctx, role, who.provider_arn):
            continue
        if who.allowed_roles is not None and role.arn not in who.allowed_roles:
            refusals.append(
                Refusal(
                    role.arn,
                    role.name,
                    role.account_id,
                    "your identity provider did not list this role for you",
                )
            )
            continue
        found = _first_refusal(ctx, role, who, actions, context)
        if found is None:
            continue
        action, decision = found
        conditions: list[FailedCondition] = []
        denied = False
        for outcome in decision.outcomes:
            denied = denied or bool(outcome.denies)
            for miss in outcome.misses:
                failed = FailedCondition(
                    miss.condition.operator,
                    miss.condition.key,
                    _your_value(miss.condition.request_value),
                )
                if failed not in conditions:
                    conditions.append(failed)
        if denied:
            reason = f"the role's trust policy denies {action} to this sign-in"
        elif conditions:
            reason = f"conditions of the role's trust policy for {action} did not hold"
        else:
            reason = f"the role's trust policy does not allow {action} for this provider"
        refusals.append(Refusal(role.arn, role.name, role.account_id, reason, tuple(conditions)))
    return refusals


# --- issuing ---------------------------------------------------------------------------------


def audit_identity(who: SignedIn) -> UserIdentity:
    """The audit event's ``userIdentity``, as the API call would record it."""
    if who.kind == "saml":
        qualifier = str(who.trust_context.get("saml:namequalifier") or who.provider_arn)
        return UserIdentity(
            "SAMLUser",
            principal_id=f"{qualifier}:{who.subject}",
            user_name=who.subject,
            identity_provider=qualifier,
        )
    audience = who.trust_context.get(f"{who.provider_name}:aud")
    return UserIdentity(
        "WebIdentityUser",
        principal_id=f"{who.provider_arn}:{audience}:{who.subject}",
        user_name=who.subject,
        identity_provider=who.provider_arn,
    )


def issue(ctx: StsContext, who: SignedIn, role_arn: str, duration_seconds: int | None) -> Issued:
    """Credentials for ``role_arn``, as the API call would issue them for the same proof.

    The role's trust policy decides again (``AccessDenied``, with the reason in ``detail``);
    ``duration_seconds`` is 900 up to the role's MaxSessionDuration (``ValidationError``
    stating the limit otherwise), 3600 (or the role's maximum if lower) when ``None``; a SAML
    sign-in's ``session_ends_by`` caps the expiry. Sets ``ctx.identity`` and
    ``ctx.response_elements`` for the audit event."""
    ctx.identity = audit_identity(who)
    action = ACTIONS[who.kind]
    denied = f"Not authorized to perform {action}"
    role = find_role(ctx, role_arn, denied)
    if role.account_id != who.account_id:
        raise AccessDeniedError(denied, "the role is not in the provider's account")
    if who.allowed_roles is not None and role.arn not in who.allowed_roles:
        raise AccessDeniedError(denied, "the role is not in the assertion's Role attribute")
    form = {} if duration_seconds is None else {"DurationSeconds": str(duration_seconds)}
    seconds = duration(
        Params(form), DEFAULT_DURATION, MIN_DURATION, _max_duration(role), DURATION_LIMIT
    )
    expires = ctx.now + timedelta(seconds=seconds)
    if who.session_ends_by is not None:
        if who.session_ends_by <= ctx.now:
            raise AccessDeniedError(denied, "the sign-in's session end has passed")
        expires = min(expires, who.session_ends_by)
    actions, context = _request(ctx, who)
    found = _first_refusal(ctx, role, who, actions, context)
    if found is not None:
        raise AccessDeniedError(denied, f"{found[0]}: {found[1].reason}")

    claims = role_session(
        role,
        who.session_name,
        ctx.now,
        expires,
        source_identity=who.source_identity,
        tags=dict(who.tags),
        transitive_tag_keys=who.transitive_tag_keys,
        provider=who.provider_arn,
        subject=who.subject,
    )
    ring = ctx.services.keyring
    if ring is None:
        raise FedbrokerError("the key ring is not configured")
    creds = issue_credentials(ring, claims, ctx.now)
    ctx.response_elements = {
        "credentials": {
            "accessKeyId": creds.access_key_id,
            "expiration": creds.expiration.isoformat(),
        },
        "assumedRoleUser": {"assumedRoleId": claims.principal_id, "arn": claims.principal_arn},
        **_federation_elements(who),
    }
    return Issued(
        credentials=creds,
        role_arn=role.arn,
        assumed_role_arn=claims.principal_arn,
        assumed_role_id=claims.principal_id,
        expiration=creds.expiration,
        source_identity=who.source_identity,
        session_name=who.session_name,
    )


def _federation_elements(who: SignedIn) -> dict[str, object]:
    if who.kind == "saml":
        found = {
            "subject": who.subject,
            "issuer": who.trust_context.get("saml:iss"),
            "audience": who.trust_context.get("saml:aud"),
            "nameQualifier": who.trust_context.get("saml:namequalifier"),
        }
        return {k: v for k, v in found.items() if v is not None}
    return {
        "subjectFromWebIdentityToken": who.subject,
        "provider": who.provider_arn,
        "audience": who.trust_context.get(f"{who.provider_name}:aud"),
    }


def issue_parameters(who: SignedIn, role_arn: str, duration_seconds: int | None) -> dict[str, str]:
    """The audit event's ``requestParameters``: those of the API call, less the proof."""
    parameters = {"RoleArn": role_arn[:2048], "RoleSessionName": who.session_name}
    if who.kind == "saml":
        parameters["PrincipalArn"] = who.provider_arn
    if duration_seconds is not None:
        parameters["DurationSeconds"] = str(duration_seconds)
    return parameters


def issue_audited(
    services: Services,
    meta: RequestMeta,
    who: SignedIn,
    role_arn: str,
    duration_seconds: int | None,
    via: Via,
) -> Issued:
    """:func:`issue` as one audited STS call (``AssumeRoleWithWebIdentity`` /
    ``AssumeRoleWithSAML``, ``additionalEventData: {"via": via}``); raises the
    :class:`FedbrokerError` (already audited) on refusal."""
    return run_audited(
        services,
        meta,
        EVENT_NAMES[who.kind],
        issue_parameters(who, role_arn, duration_seconds),
        lambda ctx: issue(ctx, who, role_arn, duration_seconds),
        additional={"via": via},
    )
