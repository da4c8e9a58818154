"""AssumeRoleWithWebIdentity (AWS STS API Reference, 2011-06-15): an OIDC token in, role
credentials out. Unsigned: the token is the proof.

The token is verified first (:mod:`fedbroker.federation.oidc`, against the JWKS of the
provider registered in the role's account for the token's ``iss``), and only a verified
token gets as far as the role, so a missing role and a refused trust policy both read as
``AccessDenied`` to a genuine token holder and as ``InvalidIdentityToken`` to everyone else.
``ProviderId`` is ignored, as AWS ignores it for OIDC providers.

The role's trust policy then decides, for principal ``{"Federated": <provider ARN>}``, action
``sts:AssumeRoleWithWebIdentity`` (plus ``sts:TagSession`` when the token carries session
tags and ``sts:SetSourceIdentity`` when it carries a source identity), with the context keys
of IAM User Guide, "Available keys for AWS web identity federation", named after the provider
(its URL without the scheme):

- ``<provider>:aud``: ``azp`` when the token has one, else the ``aud`` value that matched a
  client id; ``<provider>:oaud``: the ``aud`` claim (one value or several);
- ``<provider>:sub``; ``<provider>:amr`` (multivalued) when the token has ``amr``;
- ``aws:FederatedProvider`` (the provider ARN, as for IAM OIDC providers), ``sts:RoleSessionName``;
- session tags from the ``https://aws.amazon.com/tags`` claim (IAM User Guide, "Passing session
  tags using AssumeRoleWithWebIdentity": ``principal_tags`` maps a key to a one-value list,
  ``transitive_tag_keys`` lists keys) as ``aws:RequestTag/<key>``, ``aws:TagKeys`` and
  ``sts:TransitiveTagKeys``; the source identity from ``https://aws.amazon.com/source_identity``
  as ``sts:SourceIdentity`` (the API has no parameter for either);
- fedbroker's extension: when the provider entity's ``attrs["expose_claims"]`` is true, every
  other top-level claim whose value is a string or a list of strings is exposed as
  ``<provider>:<claim>`` (e.g. GitHub's ``job_workflow_ref``). The AWS keys above keep their
  AWS meaning, whatever the token's own claims of those names.

Token problems are ``InvalidIdentityToken`` (``ExpiredTokenException`` for a genuine token past
its ``exp``, ``IDPCommunicationError`` when the provider's keys cannot be fetched); the audit
event has the precise reason and never the token.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fedbroker.audit.events import UserIdentity
from fedbroker.credentials.session_token import issue_credentials
from fedbroker.directory.model import Entity, Kind
from fedbroker.errors import (
    InvalidIdentityTokenError,
    NoSuchEntityError,
    ValidationError,
)
from fedbroker.federation.oidc import INVALID, ProviderLookup, TrustedProvider, VerifiedToken
from fedbroker.iam.params import Params, validated_tags
from fedbroker.policy.request import Principal, PrincipalType
from fedbroker.sts.api import StsContext, sts_operation
from fedbroker.sts.operations import (
    MAX_SESSION_TAGS,
    ROLE_ARN,
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

ACTION = "sts:AssumeRoleWithWebIdentity"
TAGS_CLAIM = "https://aws.amazon.com/tags"
SOURCE_IDENTITY_CLAIM = "https://aws.amazon.com/source_identity"
MAX_TOKEN_PARAMETER = 20_000  # AWS's limit on WebIdentityToken; the verifier's own is lower
# Claims AWS defines keys for (with their own meaning) and claims that are no condition keys.
_AWS_KEYS = frozenset({"aud", "oaud", "sub", "amr", "azp"})
_CLAIM_NAME = re.compile(r"[A-Za-z0-9_.\-/]{1,128}")
TAG_KEY = re.compile(r"[\w\s.:/=+\-@]{1,128}")
TAG_VALUE = re.compile(r"[\w\s.:/=+\-@]{0,256}")


@sts_operation("AssumeRoleWithWebIdentity", signed=False)
def assume_role_with_web_identity(ctx: StsContext, params: Params) -> dict[str, Any]:
    ctx.identity = UserIdentity("WebIdentityUser")
    role_arn = params.req("RoleArn", min_len=20, max_len=2048)
    session_name = params.req("RoleSessionName", min_len=2, max_len=64, pattern=SESSION_NAME)
    token = params.req("WebIdentityToken", min_len=4, max_len=MAX_TOKEN_PARAMETER)
    params.opt("ProviderId", min_len=4, max_len=2048)  # checked like AWS, then ignored
    match = ROLE_ARN.fullmatch(role_arn)
    if match is None:
        raise ValidationError(f"`{role_arn}` is not a role ARN")
    account_id = match.group(1)

    verifier = ctx.services.web_identity
    verified = verifier.verify(token, lambda name: _lookup(ctx, account_id, name), ctx.now)
    provider = _entity(verified)
    provider_arn = provider.arn
    ctx.identity = UserIdentity(
        "WebIdentityUser",
        principal_id=f"{provider_arn}:{verified.audience}:{verified.subject}",
        user_name=verified.subject,
        identity_provider=provider_arn,
    )
    tags, transitive = _session_tags(verified)
    source_identity = _source_identity(verified)

    denied = f"Not authorized to perform {ACTION}"
    role = find_role(ctx, role_arn, denied)
    max_duration = int(str(role.attrs.get("max_session_duration", 3600)))
    seconds = duration(params, 3600, 900, max_duration, "the MaxSessionDuration set for this role")
    policy, arns = session_policies(ctx, params, role.account_id)

    context = _trust_context(ctx, verified, provider, session_name)
    actions = [ACTION]
    if tags:
        actions.append("sts:TagSession")
        context.update({f"aws:RequestTag/{k}": v for k, v in tags.items()})
        context["aws:TagKeys"] = list(tags)
        if transitive:
            context["sts:TransitiveTagKeys"] = list(transitive)
    if source_identity is not None:
        actions.append("sts:SetSourceIdentity")
        context["sts:SourceIdentity"] = source_identity
    authorize_federated(
        ctx, role, Principal(provider_arn, PrincipalType.FEDERATED), actions, context, denied
    )

    claims = role_session(
        role,
        session_name,
        ctx.now,
        ctx.now + timedelta(seconds=seconds),
        source_identity=source_identity,
        tags=tags,
        transitive_tag_keys=transitive,
        session_policy=policy,
        session_policy_arns=arns,
        provider=provider_arn,
        subject=verified.subject,
    )
    creds = issue_credentials(_ring(ctx), claims, ctx.now)
    assumed = {"AssumedRoleId": claims.principal_id, "Arn": claims.principal_arn}
    ctx.response_elements = {
        "credentials": {
            "accessKeyId": creds.access_key_id,
            "expiration": creds.expiration.isoformat(),
        },
        "assumedRoleUser": {"assumedRoleId": claims.principal_id, "arn": claims.principal_arn},
        "subjectFromWebIdentityToken": verified.subject,
        "provider": provider_arn,
        "audience": verified.audience,
    }
    result: dict[str, Any] = {
        "Credentials": credentials_shape(creds),
        "SubjectFromWebIdentityToken": verified.subject,
        "AssumedRoleUser": assumed,
        "PackedPolicySize": packed_policy_percent(creds.session_token),
        "Provider": provider_arn,
        "Audience": verified.audience,
    }
    if source_identity is not None:
        result["SourceIdentity"] = source_identity
    return result


# --- steps --------------------------------------------------------------------------------


def _lookup(ctx: StsContext, account_id: str, name: str) -> TrustedProvider | None:
    """The OIDC provider ``name`` of the role's account, as the verifier needs it."""
    try:
        entity = ctx.services.directory.get_entity(account_id, Kind.OIDC_PROVIDER, name)
    except NoSuchEntityError:
        return None
    ids = entity.attrs.get("client_ids")
    client_ids = tuple(str(i) for i in ids) if isinstance(ids, list) else ()
    url = str(entity.attrs.get("url") or f"https://{entity.name}")
    return TrustedProvider(entity.name, url, client_ids, ref=entity)


def _entity(verified: VerifiedToken) -> Entity:
    entity = verified.provider.ref
    assert isinstance(entity, Entity)  # what _lookup put there
    return entity


def _claim_error(detail: str) -> InvalidIdentityTokenError:
    return InvalidIdentityTokenError(INVALID, detail=detail)


def _session_tags(verified: VerifiedToken) -> tuple[dict[str, str], tuple[str, ...]]:
    raw = verified.claims.get(TAGS_CLAIM)
    if raw is None:
        return {}, ()
    if not isinstance(raw, dict):
        raise _claim_error(f"the `{TAGS_CLAIM}` claim is not an object")
    principal_tags = raw.get("principal_tags", {})
    if not isinstance(principal_tags, dict):
        raise _claim_error("`principal_tags` is not an object")
    pairs: list[tuple[str, str]] = []
    for key, listed in principal_tags.items():
        # AWS's form is a one-value list; a bare string is read the same way.
        value = listed[0] if isinstance(listed, list) and len(listed) == 1 else listed
        if not isinstance(value, str):
            raise _claim_error(f"session tag `{key[:128]}` is not a one-string list")
        pairs.append((key, value))
    if len(pairs) > MAX_SESSION_TAGS:
        raise _claim_error(f"{len(pairs)} session tags; at most {MAX_SESSION_TAGS} are allowed")
    bad = next(
        (k for k, v in pairs if not TAG_KEY.fullmatch(k) or not TAG_VALUE.fullmatch(v)), None
    )
    if bad is not None:
        raise _claim_error(f"session tag `{bad[:128]}` is not a valid tag")
    try:
        tags = validated_tags(pairs)
    except ValidationError as error:  # the IdP's data: a token problem
        raise _claim_error(f"session tags: {error.message}") from None
    keys = raw.get("transitive_tag_keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _claim_error("`transitive_tag_keys` is not a list of strings")
    unknown = [k for k in keys if k not in tags]
    if unknown:
        raise _claim_error(f"transitive tag key `{unknown[0][:128]}` is not one of the tags")
    return tags, tuple(dict.fromkeys(keys))


def _source_identity(verified: VerifiedToken) -> str | None:
    value = verified.claims.get(SOURCE_IDENTITY_CLAIM)
    if value is None:
        return None
    if not isinstance(value, str) or not SOURCE_IDENTITY.fullmatch(value):
        raise _claim_error(f"`{SOURCE_IDENTITY_CLAIM}` is not 2-64 characters of [\\w+=,.@-]")
    return value


def _trust_context(
    ctx: StsContext, verified: VerifiedToken, provider: Entity, session_name: str
) -> dict[str, object]:
    prefix = provider.name
    context: dict[str, object] = {
        "aws:SourceIp": ctx.meta.source_ip,
        "aws:CurrentTime": ctx.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(ctx.now.timestamp())),
        "aws:SecureTransport": "true" if ctx.meta.secure_transport else "false",
        "aws:RequestedRegion": ctx.services.region,
        "aws:FederatedProvider": provider.arn,
        "sts:RoleSessionName": session_name,
    }
    if provider.attrs.get("expose_claims") is True:
        for name, value in verified.claims.items():
            if name in _AWS_KEYS or not _CLAIM_NAME.fullmatch(name):
                continue
            if isinstance(value, str):
                context[f"{prefix}:{name}"] = value
            elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                context[f"{prefix}:{name}"] = list(value)
    audiences = verified.audiences
    context[f"{prefix}:aud"] = verified.audience
    context[f"{prefix}:oaud"] = audiences[0] if len(audiences) == 1 else list(audiences)
    context[f"{prefix}:sub"] = verified.subject
    amr = verified.claims.get("amr")
    if isinstance(amr, str):
        context[f"{prefix}:amr"] = [amr]
    elif isinstance(amr, list) and all(isinstance(v, str) for v in amr):
        context[f"{prefix}:amr"] = list(amr)
    return context


# --- browser sign-in (web/sso.py) ---------------------------------------------------------


def provider_lookup(ctx: StsContext, account_id: str) -> ProviderLookup:
    """The verifier's provider lookup, restricted to ``account_id`` (as the API's)."""
    return lambda name: _lookup(ctx, account_id, name)


def token_trust_context(
    ctx: StsContext, verified: VerifiedToken, session_name: str
) -> tuple[Entity, dict[str, object]]:
    """The provider entity and the trust-policy context keys the API call would use for this
    verified token (:func:`_trust_context`); for :mod:`fedbroker.sso`."""
    provider = _entity(verified)
    return provider, _trust_context(ctx, verified, provider, session_name)


def token_session_data(
    verified: VerifiedToken,
) -> tuple[dict[str, str], tuple[str, ...], str | None]:
    """The session tags, transitive tag keys and source identity the token's AWS claims carry
    (``InvalidIdentityToken`` when they are malformed, as in the API call)."""
    tags, transitive = _session_tags(verified)
    return tags, transitive, _source_identity(verified)
