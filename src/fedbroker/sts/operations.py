"""STS operations for signed callers: GetCallerIdentity, GetAccessKeyInfo, GetSessionToken,
AssumeRole (AWS STS API Reference, 2011-06-15)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from fedbroker.credentials.access_key_ids import account_of_temporary_key_id
from fedbroker.credentials.caller import Caller
from fedbroker.credentials.keyring import KeyRing
from fedbroker.credentials.mfa import verify_mfa_code
from fedbroker.credentials.session_token import (
    PrincipalType as SessionType,
)
from fedbroker.credentials.session_token import (
    SessionClaims,
    TemporaryCredentials,
    issue_credentials,
    new_session_id,
)
from fedbroker.directory.model import Entity, Kind
from fedbroker.errors import (
    AccessDeniedError,
    FedbrokerError,
    InvalidAuthenticationCodeError,
    NoSuchEntityError,
    ValidationError,
)
from fedbroker.iam.params import Params
from fedbroker.policy import Effect, PolicyKind, PolicySet, Principal, make_request, parse_policy
from fedbroker.sts.api import StsContext, sts_operation

SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
SOURCE_IDENTITY = re.compile(r"[\w+=,.@-]{2,64}")
ROLE_ARN = re.compile(r"arn:aws:iam::(\d{12}):role/(?:[\x21-\x7e]*/)?([\w+=,.@-]{1,64})")
MAX_SESSION_POLICY = 2048
MAX_POLICY_ARNS = 10
MAX_SESSION_TAGS = 50
CHAINED_MAX = 3600


def _caller(ctx: StsContext) -> Caller:
    assert ctx.caller is not None  # signed operations only
    return ctx.caller


def _ring(ctx: StsContext) -> KeyRing:
    ring = ctx.services.keyring
    if ring is None:
        raise FedbrokerError("the key ring is not configured")
    return ring


def credentials_shape(creds: TemporaryCredentials) -> dict[str, Any]:
    return {
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "SessionToken": creds.session_token,
        "Expiration": creds.expiration,
    }


def duration(params: Params, default: int, low: int, high: int, limit_text: str) -> int:
    raw = params.form.get("DurationSeconds")
    if raw is None:
        return min(default, high)
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(
            f"1 validation error detected: value `{raw}` at `durationSeconds` "
            "failed to satisfy constraint: member must be an integer"
        ) from None
    if value < low:
        raise ValidationError(
            f"1 validation error detected: value `{value}` at "
            f"`durationSeconds` failed to satisfy constraint: member must have "
            f"value greater than or equal to {low}"
        )
    if value > high:
        raise ValidationError(
            f"the requested DurationSeconds ({value}) exceeds {limit_text} ({high} seconds)"
        )
    return value


# --- who am I ---------------------------------------------------------------------------------


@sts_operation("GetCallerIdentity", read_only=True)
def get_caller_identity(ctx: StsContext, params: Params) -> dict[str, Any]:
    """Needs no permission: AWS answers it even when every policy denies."""
    caller = _caller(ctx)
    if caller.session is not None:
        user_id = caller.session.principal_id
    elif caller.user is not None:
        user_id = caller.user.id
    else:
        user_id = caller.account.id
    return {"UserId": user_id, "Account": caller.account.id, "Arn": caller.arn}


@sts_operation("GetAccessKeyInfo", read_only=True)
def get_access_key_info(ctx: StsContext, params: Params) -> dict[str, Any]:
    caller = _caller(ctx)
    key_id = params.req("AccessKeyId", min_len=16, max_len=128)
    if key_id == caller.access_key_id:
        return {"Account": caller.account.id}
    try:
        key = ctx.services.store.get_access_key(key_id)
    except NoSuchEntityError:
        # Temporary keys are stored nowhere, but their ids carry the account (AWS's layout).
        if (account := account_of_temporary_key_id(key_id)) is not None:
            return {"Account": account}
        raise ValidationError(f"the access key `{key_id}` is not known to this broker") from None
    return {"Account": key.account_id}


# --- GetSessionToken --------------------------------------------------------------------------


def _verified_mfa(ctx: StsContext, params: Params, user: Entity | None) -> bool:
    serial = params.opt("SerialNumber", min_len=9, max_len=256)
    code = params.opt("TokenCode", min_len=6, max_len=6)
    if serial is None and code is None:
        return False
    if serial is None or code is None or user is None:
        raise ValidationError("`SerialNumber` and `TokenCode` go together, for an IAM user")
    try:
        verify_mfa_code(
            ctx.services.store, ctx.services.master_key, serial, code, ctx.now, user=user
        )
    except InvalidAuthenticationCodeError as exc:
        # STS's wording and code for a failed MFA check; the reason stays in the audit log.
        raise AccessDeniedError(
            "MultiFactorAuthentication failed with invalid MFA one time pass code.", exc.detail
        ) from None
    return True


@sts_operation("GetSessionToken")
def get_session_token(ctx: StsContext, params: Params) -> dict[str, Any]:
    caller = _caller(ctx)
    if caller.session is not None:
        raise AccessDeniedError("cannot call GetSessionToken with session credentials")
    if caller.user is None:
        seconds = duration(params, 3600, 900, 3600, "the limit for the root user")
    else:
        seconds = duration(params, 43200, 900, 129600, "the limit for IAM users")
    mfa = _verified_mfa(ctx, params, caller.user)
    arn = caller.arn
    principal_id = caller.user.id if caller.user is not None else caller.account.id
    claims = SessionClaims(
        account_id=caller.account.id,
        principal_type=SessionType.IAM_USER,
        principal_arn=arn,
        principal_id=principal_id,
        mfa_authenticated=mfa,
        mfa_time=ctx.now if mfa else None,
        issued=ctx.now,
        expires=ctx.now + timedelta(seconds=seconds),
        session_id=new_session_id(),
    )
    creds = issue_credentials(_ring(ctx), claims, ctx.now)
    ctx.response_elements = {
        "credentials": {
            "accessKeyId": creds.access_key_id,
            "expiration": creds.expiration.isoformat(),
        }
    }
    return {"Credentials": credentials_shape(creds)}


# --- AssumeRole -------------------------------------------------------------------------------


def find_role(ctx: StsContext, role_arn: str, denied: str) -> Entity:
    """The role named by ``role_arn``; a missing role reads as access denied, as in AWS (so
    callers cannot probe for role names)."""
    match = ROLE_ARN.fullmatch(role_arn)
    if match is None:
        raise ValidationError(f"`{role_arn}` is not a role ARN")
    try:
        role = ctx.services.directory.get_entity(match.group(1), Kind.ROLE, match.group(2))
    except NoSuchEntityError:
        raise AccessDeniedError(denied) from None
    if role.arn != role_arn:
        raise AccessDeniedError(denied)
    return role


def session_tags(
    params: Params, carried: dict[str, str], transitive: tuple[str, ...]
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Request tags and transitive keys, merged with what a chained session carries."""
    tags = params.tags()
    if len(tags) > MAX_SESSION_TAGS:
        raise ValidationError(f"at most {MAX_SESSION_TAGS} session tags are allowed")
    for key in tags:
        if any(key.lower() == k.lower() for k in transitive):
            raise ValidationError(
                f"the session tag `{key}` is transitive from the calling "
                "session and cannot be changed"
            )
    merged = {k: v for k, v in carried.items() if k in transitive}
    merged.update(tags)
    keys = tuple(params.members("TransitiveTagKeys"))
    unknown = [k for k in keys if k not in tags]
    if unknown:
        raise ValidationError(f"transitive tag key `{unknown[0]}` is not one of the session tags")
    return merged, tuple(dict.fromkeys([*transitive, *keys]))


def session_policies(
    ctx: StsContext, params: Params, account_id: str | None = None
) -> tuple[str | None, tuple[str, ...]]:
    """``Policy`` and ``PolicyArns``; managed policies are looked up in ``account_id`` (the
    caller's account when not given)."""
    policy = params.opt("Policy", max_len=100_000)
    if policy is not None:
        if len(policy) > MAX_SESSION_POLICY:
            raise ValidationError(
                f"the session policy is {len(policy)} characters; the limit is {MAX_SESSION_POLICY}"
            )
        parse_policy(policy, PolicyKind.SESSION)
    arns = tuple(
        params.form[k]
        for k in sorted(params.form)
        if k.startswith("PolicyArns.member.") and k.endswith(".arn")
    )
    if len(arns) > MAX_POLICY_ARNS:
        raise ValidationError(f"at most {MAX_POLICY_ARNS} session policy ARNs are allowed")
    account = account_id or _caller(ctx).account.id
    for arn in arns:
        name = arn.rsplit("/", 1)[-1]
        try:
            found = ctx.services.store.get_entity(account, Kind.POLICY, name)
        except NoSuchEntityError:
            found = None
        if found is None or found.arn != arn:
            raise NoSuchEntityError(f"the session policy `{arn}` does not exist")
    return policy, arns


def authorize_assume(
    ctx: StsContext, caller: Caller, role: Entity, actions: list[str], extra: dict[str, object]
) -> None:
    """The caller's identity side (policies, boundary, session) and the role's trust policy,
    decided together by the engine, for every action the request needs."""
    trust = ctx.services.policies.trust(role)
    own = caller.policy_set(ctx.services.policies)
    policies = PolicySet(
        identity=own.identity if own is not None else (),
        boundary=own.boundary if own is not None else None,
        session=own.session if own is not None else None,
        resource=trust,
        resource_required=True,
    )
    context = caller.request_context(
        ctx.now, ctx.meta.source_ip, ctx.meta.secure_transport, ctx.services.region
    )
    context.update(extra)
    for action in actions:
        decision = policies.authorize(
            make_request(action, role.arn, caller.principal, context, role.account_id)
        )
        if decision.effect is not Effect.ALLOW:
            raise AccessDeniedError(
                f"user: {caller.arn} is not authorized to perform: {action} "
                f"on resource: {role.arn} because {decision.reason}"
            )


def role_session(
    role: Entity, session_name: str, issued: datetime, expires: datetime, **claims: Any
) -> SessionClaims:
    """The claims of a session of ``role`` (AssumeRole, AssumeRoleWithWebIdentity,
    AssumeRoleWithSAML); ``claims`` adds what differs between them."""
    return SessionClaims(
        account_id=role.account_id,
        principal_type=SessionType.ASSUMED_ROLE,
        principal_arn=f"arn:aws:sts::{role.account_id}:assumed-role/{role.name}/{session_name}",
        principal_id=f"{role.id}:{session_name}",
        role_arn=role.arn,
        role_session_name=session_name,
        issued=issued,
        expires=expires,
        session_id=new_session_id(),
        **claims,
    )


def authorize_federated(
    ctx: StsContext,
    role: Entity,
    principal: Principal,
    actions: list[str],
    context: dict[str, object],
    denied: str,
) -> None:
    """For a federated caller (a web-identity or SAML provider, not an IAM principal) the
    role's trust policy alone decides; no identity policy of the account takes part."""
    policies = ctx.services.policies.trust_only(role)
    for action in actions:
        decision = policies.authorize(
            make_request(action, role.arn, principal, context, role.account_id)
        )
        if decision.effect is not Effect.ALLOW:
            raise AccessDeniedError(denied, f"{action}: {decision.reason}")


@sts_operation("AssumeRole")
def assume_role(ctx: StsContext, params: Params) -> dict[str, Any]:
    caller = _caller(ctx)
    role_arn = params.req("RoleArn", min_len=20, max_len=2048)
    session_name = params.req("RoleSessionName", min_len=2, max_len=64, pattern=SESSION_NAME)
    denied = (
        f"user: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
    )
    if caller.is_root:
        raise AccessDeniedError(f"{denied}: the root user cannot assume roles")
    role = find_role(ctx, role_arn, denied)
    previous = caller.session
    chained = previous is not None and previous.principal_type is SessionType.ASSUMED_ROLE
    max_duration = int(str(role.attrs.get("max_session_duration", 3600)))
    if chained:
        seconds = duration(params, 3600, 900, CHAINED_MAX, "the one-hour limit of role chaining")
    else:
        seconds = duration(
            params, 3600, 900, max_duration, "the MaxSessionDuration set for this role"
        )
    external_id = params.opt("ExternalId", min_len=2, max_len=1224)
    source_identity = params.opt("SourceIdentity", max_len=64, pattern=SOURCE_IDENTITY)
    carried_identity = previous.source_identity if previous is not None else None
    if carried_identity is not None and source_identity not in (None, carried_identity):
        raise ValidationError("the source identity of a session cannot be changed once set")
    carried_tags = dict(previous.tags) if previous is not None else {}
    carried_keys = previous.transitive_tag_keys if previous is not None else ()
    tags, transitive = session_tags(params, carried_tags, carried_keys)
    policy, arns = session_policies(ctx, params)
    mfa = _verified_mfa(ctx, params, caller.user if previous is None else None)
    mfa = mfa or (previous is not None and previous.mfa_authenticated)

    extra: dict[str, object] = {"sts:RoleSessionName": session_name}
    if external_id is not None:
        extra["sts:ExternalId"] = external_id
    if mfa:
        extra["aws:MultiFactorAuthPresent"] = "true"
    requested = params.tags()
    for key, value in requested.items():
        extra[f"aws:RequestTag/{key}"] = value
    if requested:
        extra["aws:TagKeys"] = list(requested)
    if params.members("TransitiveTagKeys"):
        extra["sts:TransitiveTagKeys"] = params.members("TransitiveTagKeys")
    if source_identity is not None:
        extra["sts:SourceIdentity"] = source_identity
    actions = ["sts:AssumeRole"]
    if requested:
        actions.append("sts:TagSession")
    if source_identity is not None and carried_identity is None:
        actions.append("sts:SetSourceIdentity")
    authorize_assume(ctx, caller, role, actions, extra)

    claims = role_session(
        role,
        session_name,
        ctx.now,
        ctx.now + timedelta(seconds=seconds),
        source_identity=source_identity or carried_identity,
        tags=tags,
        transitive_tag_keys=transitive,
        session_policy=policy,
        session_policy_arns=arns,
        mfa_authenticated=mfa,
        mfa_time=(
            previous.mfa_time
            if previous is not None and previous.mfa_time
            else (ctx.now if mfa else None)
        ),
        chained=chained,
    )
    creds = issue_credentials(_ring(ctx), claims, ctx.now)
    assumed = {"AssumedRoleId": claims.principal_id, "Arn": claims.principal_arn}
    ctx.response_elements = {
        "credentials": {
            "accessKeyId": creds.access_key_id,
            "expiration": creds.expiration.isoformat(),
        },
        "assumedRoleUser": {"assumedRoleId": claims.principal_id, "arn": claims.principal_arn},
    }
    result: dict[str, Any] = {
        "Credentials": credentials_shape(creds),
        "AssumedRoleUser": assumed,
        "PackedPolicySize": packed_policy_percent(creds.session_token),
    }
    if claims.source_identity is not None:
        result["SourceIdentity"] = claims.source_identity
    return result


def packed_policy_percent(token: str) -> int:
    """How much of the allowed packed size the session's policies and tags use (percent)."""
    from fedbroker.credentials.session_token import MAX_TOKEN_LENGTH

    return min(100, max(1, round(100 * len(token) / MAX_TOKEN_LENGTH)))
