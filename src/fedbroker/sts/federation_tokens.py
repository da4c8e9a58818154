"""GetFederationToken and GetWebIdentityToken (AWS STS API Reference).

GetFederationToken gives an IAM user's application credentials for a named federated user:
the session may do what both the user's policies and the session policies allow, and nothing
at all without a session policy. GetWebIdentityToken is outbound federation: a JWT signed by
the broker's key ring describing the caller, verifiable by anyone through
``/.well-known/openid-configuration`` and the JWKS it names.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from fedbroker.credentials.caller import Caller
from fedbroker.credentials.session_token import PrincipalType as SessionType
from fedbroker.credentials.session_token import SessionClaims, issue_credentials, new_session_id
from fedbroker.errors import AccessDeniedError, ValidationError
from fedbroker.iam.params import Params
from fedbroker.policy import Effect, make_request
from fedbroker.sts.api import StsContext, sts_operation
from fedbroker.sts.operations import (
    credentials_shape,
    duration,
    packed_policy_percent,
    session_policies,
    session_tags,
)

FEDERATED_NAME = re.compile(r"[\w+=,.@-]{2,32}")
TOKEN_ALGORITHMS = ("RS256", "ES384")


def _caller(ctx: StsContext) -> Caller:
    assert ctx.caller is not None
    return ctx.caller


def authorize_self(
    ctx: StsContext, action: str, resource: str, extra: dict[str, object] | None = None
) -> None:
    """The caller's own policies must allow ``action`` (the root user always may)."""
    caller = _caller(ctx)
    policies = caller.policy_set(ctx.services.policies)
    if policies is None:
        return
    context = caller.request_context(
        ctx.now, ctx.meta.source_ip, ctx.meta.secure_transport, ctx.services.region
    )
    context.update(extra or {})
    decision = policies.authorize(
        make_request(action, resource, caller.principal, context, caller.account.id)
    )
    if decision.effect is not Effect.ALLOW:
        raise AccessDeniedError(
            f"user: {caller.arn} is not authorized to perform: {action} on "
            f"resource: {resource} because {decision.reason}"
        )


@sts_operation("GetFederationToken")
def get_federation_token(ctx: StsContext, params: Params) -> dict[str, Any]:
    caller = _caller(ctx)
    if caller.session is not None or caller.user is None:
        raise AccessDeniedError("GetFederationToken needs the long-term access key of an IAM user")
    name = params.req("Name", min_len=2, max_len=32, pattern=FEDERATED_NAME)
    arn = f"arn:aws:sts::{caller.account.id}:federated-user/{name}"
    seconds = duration(params, 43200, 900, 129600, "the limit for federated users")
    tags, transitive = session_tags(params, {}, ())
    policy, arns = session_policies(ctx, params)
    extra: dict[str, object] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    if tags:
        extra["aws:TagKeys"] = list(tags)
    authorize_self(ctx, "sts:GetFederationToken", arn, extra)
    if tags:
        authorize_self(ctx, "sts:TagSession", arn, extra)
    claims = SessionClaims(
        account_id=caller.account.id,
        principal_type=SessionType.FEDERATED_USER,
        principal_arn=arn,
        principal_id=f"{caller.account.id}:{name}",
        tags=tags,
        transitive_tag_keys=transitive,
        session_policy=policy,
        session_policy_arns=arns,
        issued=ctx.now,
        expires=ctx.now + timedelta(seconds=seconds),
        subject=caller.user.arn,  # the IAM user the federated user acts for
        session_id=new_session_id(),
    )
    ring = ctx.services.keyring
    assert ring is not None
    creds = issue_credentials(ring, claims, ctx.now)
    ctx.response_elements = {
        "credentials": {
            "accessKeyId": creds.access_key_id,
            "expiration": creds.expiration.isoformat(),
        },
        "federatedUser": {"federatedUserId": claims.principal_id, "arn": arn},
    }
    return {
        "Credentials": credentials_shape(creds),
        "FederatedUser": {"FederatedUserId": claims.principal_id, "Arn": arn},
        "PackedPolicySize": packed_policy_percent(creds.session_token),
    }


@sts_operation("GetWebIdentityToken")
def get_web_identity_token(ctx: StsContext, params: Params) -> dict[str, Any]:
    caller = _caller(ctx)
    audiences = params.members("Audience")
    if not audiences or any(not 1 <= len(a) <= 1000 for a in audiences):
        raise ValidationError("`Audience` needs 1 or more values of 1 to 1000 characters")
    algorithm = params.req("SigningAlgorithm")
    if algorithm not in TOKEN_ALGORITHMS:
        raise ValidationError(f"`SigningAlgorithm` must be one of {', '.join(TOKEN_ALGORITHMS)}")
    lifetime = params.integer("DurationSeconds", 300, 60, 3600)
    tags = params.tags()
    scope = params.opt("Scope", max_len=2048)
    authorize_self(
        ctx, "sts:GetWebIdentityToken", "*", {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    )
    issuer = ctx.services.issuer
    if issuer is None:
        raise ValidationError("this broker has no issuer URL configured for outbound tokens")
    expires = ctx.now + timedelta(seconds=lifetime)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": caller.arn,
        "aud": audiences[0] if len(audiences) == 1 else audiences,
        "iat": int(ctx.now.timestamp()),
        "nbf": int(ctx.now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": str(uuid.uuid4()),
        "principal_id": caller.arn,
        "account_id": caller.account.id,
    }
    if caller.session is not None and caller.session.source_identity:
        claims["source_identity"] = caller.session.source_identity
    if tags:
        claims["https://aws.amazon.com/tags"] = {"principal_tags": tags}
    if scope is not None:
        claims["scope"] = scope
    ring = ctx.services.keyring
    assert ring is not None
    token = ring.sign_jwt(claims, algorithm, now=ctx.now)
    ctx.response_elements = {"expiration": expires.isoformat(), "audience": audiences}
    return {"WebIdentityToken": token, "Expiration": expires}
